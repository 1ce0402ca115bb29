"""Several cameras in one worker process: shared models, a fair share of analysis under overload,
and a camera with a configuration error stopped without touching the others."""

from __future__ import annotations

import threading
import time

import pytest

from detector.config import validate_site
from detector.values import CameraState
from detector.worker import WorkerGroup


def site_of(cameras: list[dict], tmp_path, **sections):
    return validate_site(
        {
            "site": "g",
            "cameras": cameras,
            "privacy": {"evidence_dir": str(tmp_path / "evidence")},
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
            **sections,
        },
        "test",
    )


@pytest.mark.slow
@pytest.mark.footage
def test_overload_drops_frames_evenly_across_cameras(footage_dir, model_dir, tmp_path):
    """Four live 25-30 fps cameras asking for 30 analysed frames a second each (every frame), one analysis thread:
    far more than it can do. Every camera gets its turn (drops within 1.5x of each other), none starves."""
    clips = [
        "aboda_video4.avi",
        "intel_bottle-detection.mp4",
        "office_lobby_fisheye_cctv.mp4",
        "porch_bottle_drop_bad2.mp4",
    ]
    site = site_of(
        [{"name": f"c{i}", "url": str(footage_dir / c), "loop": True, "analysis_fps": 30} for i, c in enumerate(clips)],
        tmp_path,
        supervisor={"analysis_threads": 1},
    )
    reports: list = []
    stop = threading.Event()
    group = WorkerGroup(site, site.cameras, stop, report=reports.append, report_interval_s=0.5)
    runner = threading.Thread(target=group.run, daemon=True)
    runner.start()
    try:
        time.sleep(12)
        warm = {s.camera: s for s in reports[-1]}
        time.sleep(12)
        last = {s.camera: s for s in reports[-1]}
    finally:
        stop.set()
        runner.join(20)
    assert not runner.is_alive()
    analysed = {c: last[c].frames_analysed - warm[c].frames_analysed for c in last}
    dropped = {c: last[c].frames_dropped - warm[c].frames_dropped for c in last}
    print(f"\noverload: analysed {analysed}, dropped {dropped}")
    assert all(n > 0 for n in analysed.values()), analysed  # no camera starves
    assert min(dropped.values()) > 0, "the test must overload the group"
    assert max(dropped.values()) <= 1.5 * min(dropped.values()), dropped
    assert max(analysed.values()) <= 1.5 * min(analysed.values()), analysed
    assert {s.state for s in reports[-1]} == {CameraState.STOPPED}


@pytest.mark.footage
def test_a_camera_with_a_config_error_stops_alone(footage_dir, model_dir, tmp_path):
    site = site_of(
        [
            {"name": "ok", "url": str(footage_dir / "porch_bottle_drop_bad2.mp4"), "realtime": False},
            {"name": "dead", "url": str(tmp_path / "missing.mp4")},
        ],
        tmp_path,
    )
    reports: list = []
    assert WorkerGroup(site, site.cameras, report=reports.append).run() == 0
    final = {s.camera: s for s in reports[-1]}
    assert final["ok"].state == CameraState.FINISHED and final["ok"].frames_analysed == 64
    assert final["dead"].state == CameraState.ERROR and "clip not found" in final["dead"].last_error
    assert final["ok"].cpu_s > 0 and final["ok"].detector_s.count > 0
    # every camera with a configuration error: the worker exits 2 (the supervisor does not restart it)
    dead = site_of([{"name": "dead", "url": str(tmp_path / "missing.mp4")}], tmp_path)
    assert WorkerGroup(dead, dead.cameras).run() == 2
