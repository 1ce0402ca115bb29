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


@pytest.mark.slow
@pytest.mark.footage
@pytest.mark.parametrize(
    "clip,known_false_faces",
    [
        ("shopping_street_bags_people-walking.mp4", set()),
        ("office_lobby_fisheye_cctv.mp4", {(k, "dlib-hog", (85, 142, 121, 178)) for k in (94, 95, 104)}),
    ],
    ids=["crowd", "fisheye"],
)
def test_no_face_left_in_the_annotated_video(clip, known_false_faces, footage_dir, model_dir, tmp_path):
    """benchmarks/bench_privacy.py on the crowded street and the fisheye lobby: faces found in the
    source frames by checkers that share nothing with the redactor's settings (OpenCV's YuNet at
    1x and 2x, dlib's HOG where installed), none of them left in `detector replay --video`.

    On the lobby, dlib's HOG also fires on frames 94, 95 and 104 on one and the same patch of
    glass wall above the hair of a woman seated with her back to the camera: no face there (looked
    at by eye), the wall is rightly not blurred, and the rule counts it as left. Those three, and
    nothing else, are allowed; before this redactor the lobby had 84 faces left by the same rule."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_privacy.py"
    out = tmp_path / "privacy.json"
    r = subprocess.run(
        [sys.executable, str(bench), "--clips", clip, "--json", str(out), "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())["clips"][0]
    assert result["faces"] >= 300, "the source should show hundreds of faces, or this test proves nothing"
    left = {(f["frame"], f["found_by"], tuple(round(v) for v in f["box"])) for f in result["left_faces"]}
    assert left <= known_false_faces, sorted(left - known_false_faces)[:5]
