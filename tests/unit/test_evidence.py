"""Face blurring on real images and real footage, checked with the real YuNet model."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from detector.evidence import EvidenceStore


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def test_evidence_store_names_by_sha256_and_purges_old(tmp_path):
    import hashlib

    store = EvidenceStore(tmp_path / "ev", retention_days=1, purge_interval_s=3600)
    digest = store.put(b"jpeg-bytes-1")
    assert digest == hashlib.sha256(b"jpeg-bytes-1").hexdigest()
    assert store.path_of(digest).read_bytes() == b"jpeg-bytes-1"
    old = store.put(b"jpeg-bytes-2")
    two_days_ago = time.time() - 2 * 86400
    os.utime(store.path_of(old), (two_days_ago, two_days_ago))
    assert store.purge() == 1
    assert not store.path_of(old).exists() and store.path_of(digest).exists()
    # a purge also runs on start
    os.utime(store.path_of(digest), (two_days_ago, two_days_ago))
    EvidenceStore(tmp_path / "ev", retention_days=1)
    assert not store.path_of(digest).exists()


def test_a_half_written_snapshot_left_by_a_crash_ages_out_too(tmp_path):
    store = EvidenceStore(tmp_path / "ev", retention_days=1)
    leftover = store.dir / ("0" * 64 + ".tmp4242")
    leftover.write_bytes(b"partial jpeg")
    two_days_ago = time.time() - 2 * 86400
    os.utime(leftover, (two_days_ago, two_days_ago))
    assert store.purge() == 1 and not leftover.exists()
