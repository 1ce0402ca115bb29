"""Face blurring on real images and real footage, checked with the real YuNet model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="module")
def faces(model_dir):
    from detector.privacy import FaceDetector

    return FaceDetector("yunet-dynamic")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


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
    site = validate_site(
        {
            "site": "privacy",
            "cameras": [
                {"name": f"cam{i}", "url": str(footage_dir / clip), "analysis_fps": fps, "realtime": False}
                for i, (clip, fps) in enumerate(clips)
            ],
            "privacy": {"evidence_dir": str(tmp_path / "evidence"), "sample_every": every},
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
        },
        "test",
    )
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
    print(
        f"\nprivacy: {len(stored)} snapshots ({sampled} sampled frames holding {raw_faces} faces before "
        f"blurring, {acts} acts), 0 faces after"
    )
