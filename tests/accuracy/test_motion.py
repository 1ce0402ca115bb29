"""Motion gate on real frames, and the gated pipeline against the ungated one."""

from __future__ import annotations

from pathlib import Path

import cv2

from detector.config import Settings
from detector.motion import MotionGate
from detector.pipeline import Pipeline
from detector.sources import FileSource


def frames(path: Path, fps: float = 5.0):
    return list(FileSource(path, fps))


def test_quiet_street_is_inactive_and_walker_is_active(footage_dir):
    clip = frames(footage_dir / "aboda_video4.avi")
    gate = MotionGate()
    results = [(f.time_s, gate.update(f.image)) for f in clip]
    quiet = [r for t, r in results if 3.0 <= t <= 7.0]  # empty street before the man arrives
    assert quiet and not any(r.active for r in quiet)
    walking = [r for t, r in results if 19.5 <= t <= 21.5]  # the man walks off diagonally
    assert walking and all(r.active for r in walking)
    # The moving region lies where the person is (he is in the lower half of the frame then).
    boxes = [b for r in walking for b in r.boxes]
    assert any(b[3] > 240 for b in boxes)


def test_global_change_recalibrates_instead_of_waking(footage_dir):
    img = frames(footage_dir / "aboda_video4.avi")[20].image
    gate = MotionGate()
    for _ in range(5):
        gate.update(img)
    brighter = cv2.convertScaleAbs(img, alpha=1.0, beta=70)  # lights on / auto-exposure
    r = gate.update(brighter)
    assert r.recalibrated and not r.active
    assert not gate.update(brighter).active  # the new level is the background now


def test_gating_skips_detector_but_finds_the_same_acts(footage_dir, model_dir):
    clip = footage_dir / "aboda_video4.avi"
    runs = {}
    for enabled in (True, False):
        data = Settings().model_dump()
        data["motion"]["enabled"] = enabled
        pipeline = Pipeline(Settings.model_validate(data))
        acts = [a for f in FileSource(clip, 5.0) for a in pipeline.process(f).acts]
        runs[enabled] = (pipeline.detector_runs, pipeline.frames_seen, [(a.kind, a.box) for a in acts])
    gated, ungated = runs[True], runs[False]
    assert ungated[0] == ungated[1]  # ungated: the detector sees every analysed frame
    assert gated[0] < 0.8 * gated[1]  # the empty street does not wake it
    assert gated[2] == ungated[2] and gated[2]  # same acts, and there are some
