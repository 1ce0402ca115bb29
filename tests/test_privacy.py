"""Face blurring on real images and real footage, checked with the real YuNet model."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from detector.config import PrivacyConfig
from detector.evidence import EvidenceStore


@pytest.fixture(scope="module")
def faces(model_dir):
    from detector.privacy import FaceDetector

    return FaceDetector("yunet-dynamic")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def test_astronaut_face_found_before_and_not_after_blur(faces, astronaut):
    from detector.privacy import Redactor

    boxes, scores = faces.detect(astronaut)
    assert len(boxes) == 1 and scores[0] > 0.8
    x1, y1, x2, y2 = boxes[0]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face, not elsewhere
    redactor = Redactor(PrivacyConfig(), faces)
    original = astronaut.copy()
    jpeg = redactor.snapshot(astronaut)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert len(faces.detect(decoded)[0]) == 0
    # the blurred area really lost its detail (not just a slight smoothing)
    roi = lambda im: cv2.cvtColor(im[int(y1):int(y2), int(x1):int(x2)], cv2.COLOR_BGR2GRAY)  # noqa: E731
    assert cv2.Laplacian(roi(decoded), cv2.CV_64F).var() < 0.05 * cv2.Laplacian(roi(astronaut), cv2.CV_64F).var()
    # the input frame is never modified, not a pixel
    assert np.array_equal(astronaut, original)


def test_large_frame_is_downscaled_for_yunet(faces, astronaut):
    from detector.privacy import Redactor

    big = cv2.resize(astronaut, (2048, 2048))  # face ~ 400 px: beyond YuNet's training range
    assert len(faces.detect(big)[0]) == 1
    assert len(faces.detect(Redactor(PrivacyConfig(), faces).redact(big))[0]) == 0


def test_head_of_person_without_face_is_blurred(faces):
    from detector.privacy import Redactor

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # texture, no face
    person = np.array([[100, 40, 160, 200]], float)
    out = Redactor(PrivacyConfig(head_fraction=0.2), faces).redact(image, person)
    head = (slice(40, 72), slice(100, 160))
    assert np.abs(out[head].astype(int) - image[head]).mean() > 20  # head region changed
    assert np.array_equal(out[100:200, 100:160], image[100:200, 100:160])  # body untouched
    assert np.array_equal(out[:, :90], image[:, :90])


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


@pytest.mark.slow
@pytest.mark.footage
def test_no_face_in_any_stored_snapshot_of_real_footage(footage_dir, faces, tmp_path):
    """Snapshots stored by the camera worker (at every act, and every 5th analysed frame through
    the same code path) show no face that YuNet can find, although the raw frames do."""
    from detector.config import validate_site
    from detector.sources import FileSource
    from detector.worker import CameraWorker

    every = 5
    clips = [("porch_bottle_drop_bad2.mp4", 10), ("hall_bottle_drop_vid.mp4", 10), ("aboda_video4.avi", 5)]
    site = validate_site({
        "site": "privacy",
        "cameras": [{"name": f"cam{i}", "url": str(footage_dir / clip), "analysis_fps": fps, "realtime": False}
                    for i, (clip, fps) in enumerate(clips)],
        "privacy": {"evidence_dir": str(tmp_path / "evidence"), "sample_every": every},
        "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
    }, "test")
    raw_faces = sampled = acts = 0
    for cam, (clip, fps) in zip(site.cameras, clips, strict=True):
        stats = CameraWorker(site, cam).run()
        assert stats.state == "finished" and stats.frames_analysed > 0
        acts += stats.acts
        # what the sampled frames held before blurring (same decimation as the worker)
        for k, frame in enumerate(FileSource(footage_dir / clip, fps), 1):
            if k % every == 0:
                sampled += 1
                raw_faces += len(faces.detect(frame.image)[0])
    stored = sorted((tmp_path / "evidence").glob("*.jpg"))
    assert len(stored) >= sampled  # every sampled frame, plus one per act
    assert raw_faces >= 10, "the footage should show faces before blurring, or this test proves nothing"
    found = []
    for path in stored:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        boxes, scores = faces.detect(image)
        found += [(path.name, float(s)) for s in scores]
    assert found == [], f"faces visible in stored evidence: {found[:5]}"
    print(f"\nprivacy: {len(stored)} snapshots ({sampled} sampled frames holding {raw_faces} faces before "
          f"blurring, {acts} acts), 0 faces after")
