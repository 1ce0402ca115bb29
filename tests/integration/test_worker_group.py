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


def _ip_camera_copy(src, out, seconds: float = 10.0):
    """`src` re-encoded as H.264 like an IP camera's stream: I and P frames, a keyframe every second."""
    from fractions import Fraction

    import av

    from detector.sources import FileSource

    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        frames = FileSource(src, None, max_seconds=seconds)
        stream.width, stream.height, stream.pix_fmt = frames.info.width, frames.info.height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "bf": "0", "g": "25", "keyint_min": "25"}
        for k, frame in enumerate(frames):
            f = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
            f.pts, f.time_base = k, Fraction(1, 25)
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


@pytest.mark.slow
@pytest.mark.footage
@pytest.mark.parametrize("streams", ["clips", "ip_cameras"])
def test_overload_drops_frames_evenly_across_cameras(footage_dir, model_dir, tmp_path, streams):
    """Four live 25-30 fps cameras asking for 30 analysed frames a second each (every frame), one analysis thread:
    far more than it can do. Every camera gets its turn (drops within 1.5x of each other), none starves. The clips
    have keyframes 5-10 s apart, so their readers decode on; re-encoded with one a second (`ip_cameras`), a camera
    the analysis is behind passes over the frames up to its next keyframe undecoded, and the drops stay even."""
    clips = [
        footage_dir / "aboda_video4.avi",
        footage_dir / "intel_bottle-detection.mp4",
        footage_dir / "office_lobby_fisheye_cctv.mp4",
        footage_dir / "porch_bottle_drop_bad2.mp4",
    ]
    if streams == "ip_cameras":
        clips = [_ip_camera_copy(c, tmp_path / f"ip{i}.mp4") for i, c in enumerate(clips)]
    site = site_of(
        [{"name": f"c{i}", "url": str(c), "loop": True, "analysis_fps": 30} for i, c in enumerate(clips)],
        tmp_path,
        supervisor={"analysis_threads": 1},
        # The detector on every frame (no motion gate), so that the thread is far behind on any
        # box: with the gate skipping quiet frames a quiet box nearly kept up, and a few dozen
        # drops made the evenness checks noise (42-70 drops, 1.67x, in one CI run).
        pipeline={"motion": {"enabled": False}},
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
    # Passing over, a camera is analysed in bursts after its keyframes, so how many of its frames
    # are analysed depends on how its keyframes fall against the others' (56-96 in one run): the
    # drops, which count every tick either way, are what stays within 1.5x.
    spread = 1.5 if streams == "clips" else 2.0
    assert max(analysed.values()) <= spread * min(analysed.values()), analysed
    passed = {c: last[c].frames_passed_over - warm[c].frames_passed_over for c in last}
    decoded = {c: last[c].frames_read - warm[c].frames_read for c in last}
    print(f"passed over {passed}, decoded {decoded}")
    if streams == "ip_cameras":  # overload is no longer paid for by decoding every frame
        assert min(passed.values()) > 0, passed
        # Across the cameras; one camera alone can decode more than it passes over in 12 s,
        # by where its keyframes fall against the others' (141 passed, 160 decoded in one run).
        assert sum(passed.values()) > sum(decoded.values()), (passed, decoded)
    else:
        assert not any(passed.values()), passed
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
