"""Model and sample resolution: explicit path > env dir > cache > download (checked by sha256)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detector.assets import AssetEntry
from detector.models import get_spec
from detector.protocol.errors import UserError

PAYLOAD = b"pretend model bytes " * 100


def entry(url: str | None = None, sha: str | None = None) -> AssetEntry:
    return AssetEntry("model", "toy", "toy.onnx", sha or hashlib.sha256(PAYLOAD).hexdigest(), url, len(PAYLOAD))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TOY_DIR", raising=False)
    return tmp_path / "cache"


def test_models_list_shows_where_each_resolves(model_dir):
    r = subprocess.run([sys.executable, "-m", "detector", "models", "list"], capture_output=True, text=True, check=True)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("yolox-nano"))
    assert str(model_dir) in line and "(env)" in line


def test_replay_offline_without_models_is_one_line(tmp_path, footage_dir):
    # DETECTOR_OFFLINE=1: really offline, so the test runs (and can fail) on a connected machine too.
    env = {k: v for k, v in os.environ.items() if k != "DETECTOR_MODEL_DIR"}
    env["DETECTOR_CACHE_DIR"] = str(tmp_path / "empty-cache")
    env["DETECTOR_OFFLINE"] = "1"
    r = subprocess.run(
        [sys.executable, "-m", "detector", "replay", str(footage_dir / "aboda_video4.avi")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()[-1]
    assert "yolox-nano" in err and "DETECTOR_MODEL_DIR" in err and "https://" in err and "DETECTOR_OFFLINE" in err
    assert "Traceback" not in r.stderr


def test_sample_names_resolve_through_sample_dir(footage_dir):
    from detector.samples import resolve_clip

    assert resolve_clip("aboda_video4") == footage_dir / "aboda_video4.avi"
    assert resolve_clip("pets2009_vtest_480x360.avi").name == "pets2009_vtest_480x360.avi"
    with pytest.raises(UserError, match="not a file, nor a sample name"):
        resolve_clip("no_such_clip")


def test_manifest_entry_of_an_ultralytics_export(model_dir):
    """The entry `models export` prints, read from a real Ultralytics ONNX export, loads and detects."""
    import cv2
    from skimage import data

    from detector.detection.ultralytics import UltralyticsDetector
    from detector.model_export import manifest_entry
    from detector.models import ModelSpec

    onnx = next(model_dir.rglob("yolov8n_int8.onnx"))
    entry = manifest_entry(onnx, "yolov8n-int8-local", 640)
    assert entry["family"] == "ultralytics" and entry["input_size"] == [640, 640]
    assert entry["classes"][0] == "person" and len(entry["classes"]) == 80
    assert entry["sha256"] == get_spec("yolov8n-int8").sha256
    det = UltralyticsDetector(ModelSpec.model_validate(entry), onnx)
    r = det.detect(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    assert "cup" in [det.class_names[c] for c in r.class_id]


def test_models_fetch_fills_the_cache(tmp_path, model_dir):
    env = dict(os.environ, DETECTOR_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(
        [sys.executable, "-m", "detector", "models", "fetch", "yolox-nano"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    cached = tmp_path / "cache" / "models" / "yolox_nano.onnx"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == get_spec("yolox-nano").sha256
    env.pop("DETECTOR_MODEL_DIR")
    listing = subprocess.run(
        [sys.executable, "-m", "detector", "models", "list"], capture_output=True, text=True, env=env, check=True
    )
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("yolox-nano"))
    assert str(cached) in line and "(cache)" in line
    again = subprocess.run(
        [sys.executable, "-m", "detector", "models", "fetch", "yolox-nano"], capture_output=True, text=True, env=env
    )
    assert again.returncode == 0 and "already in the cache" in again.stdout
