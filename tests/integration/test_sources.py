"""File sources on real clips: stream timestamps, decimation, GIF, portrait, bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.protocol.errors import UserError
from detector.sources import FileSource


def times(path: Path, fps: float | None) -> list[float]:
    return [f.time_s for f in FileSource(path, fps)]


def test_crowd_clip_uses_stream_timestamps(footage_dir):
    """OpenCV reports 50 fps for 25 fps content; frame/fps would give 6.8 s instead of ~13.8 s."""
    t = times(footage_dir / "crowd_overhead_vtest.avi", None)
    assert len(t) == 341
    assert 13.0 < t[-1] < 14.0
    assert all(b > a for a, b in zip(t, t[1:]))
    assert np.median(np.diff(t)) == pytest.approx(0.04, abs=0.002)


def test_decimation_to_analysis_rate(footage_dir):
    all_t = times(footage_dir / "aboda_video4.avi", None)
    five = times(footage_dir / "aboda_video4.avi", 5.0)
    assert len(all_t) == 1169
    assert all_t[0] == 0.0 and all_t[-1] == pytest.approx(38.97, abs=0.05)
    assert len(five) == pytest.approx(39 * 5, abs=2)
    assert np.median(np.diff(five)) == pytest.approx(0.2, abs=0.01)
    assert set(five) <= set(all_t)  # decimation picks frames, never invents times


def test_pets_avi_timestamps_are_monotonic(footage_dir):
    t = times(footage_dir / "pets2009_vtest_480x360.avi", None)
    assert len(t) == 795
    assert all(b > a for a, b in zip(t, t[1:]))
    assert t[-1] == pytest.approx(79.4, abs=0.2)


def test_gif_and_portrait(footage_dir):
    gif = list(FileSource(footage_dir / "indoor_bottle_throw_trash_0001.gif", 5.0))
    assert gif[0].image.shape == (150, 200, 3) and gif[0].image.dtype == np.uint8
    assert gif[-1].time_s == pytest.approx(8.2, abs=0.06)
    portrait = next(iter(FileSource(footage_dir / "porch_bottle_drop_bad2.mp4", 5.0)))
    assert portrait.image.shape == (850, 478, 3)
    assert portrait.size == (478, 850)


def test_max_seconds(footage_dir):
    t = times(footage_dir / "aboda_video4.avi", 5.0)
    short = [f.time_s for f in FileSource(footage_dir / "aboda_video4.avi", 5.0, max_seconds=3.0)]
    assert short == [x for x in t if x <= 3.0]


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="clip not found"):
        FileSource(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        FileSource(empty)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError):
        list(FileSource(junk))


def test_truncated_file_is_a_clear_error(tmp_path, footage_dir):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((footage_dir / "porch_bottle_drop_bad2.mp4").read_bytes()[:4000])
    with pytest.raises(UserError, match="cut.mp4"):
        list(FileSource(cut))


@pytest.mark.parametrize("content", [b"", b"garbage" * 1000])
def test_cli_bad_clip_exit_code_2_without_traceback(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    for clip in (bad, tmp_path / "missing.mp4"):
        r = subprocess.run([sys.executable, "-m", "detector", "replay", str(clip)], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("detector: error:")


# -- live file cameras (PyAV) -----------------------------------------------------------------
def _h264_with_b_frames(src: Path, out: Path, seconds: float = 4.0, bframes: int = 3, gop: int = 50) -> int:
    """A short H.264 MP4 with x264's default GOP (B-frames nothing refers to), like a re-encoded clip;
    `bframes=0`: I and P frames only, as many IP cameras send."""
    from fractions import Fraction

    import av

    container = av.open(str(out), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 720, 480, "yuv420p"
    stream.codec_context.options = {"preset": "ultrafast", "bf": str(bframes), "g": str(gop), "keyint_min": str(gop)}
    k = -1
    for k, frame in enumerate(FileSource(src, None, max_seconds=seconds)):
        f = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
        f.pts, f.time_base = k, Fraction(1, 25)
        for packet in stream.encode(f):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return k + 1


@pytest.mark.parametrize(
    "clip", ["aboda_video4.avi", "pets2009_vtest_480x360.avi", "flytip_truck_bag_10.mp4", "porch_bottle_drop_bad2.mp4"]
)
def test_live_file_hands_on_the_frames_replay_analyses(footage_dir, clip):
    """A file played like a camera (PyAV) analyses the very frames `detector replay` (OpenCV) does:
    same indexes, stream times and BGR pixels, so a live camera's acts can be checked by a replay."""
    from detector.sources import LiveFile

    replay = list(FileSource(footage_dir / clip, 5.0))
    live = list(LiveFile(footage_dir / clip, 5.0, realtime=False))
    assert [(f.index, f.time_s) for f in live] == [(f.index, f.time_s) for f in replay]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(live, replay, strict=True))
    assert all(f.received is not None for f in live)


def test_live_file_skips_decoding_frames_that_cannot_be_due(footage_dir, tmp_path):
    from detector.sources import LiveFile

    clip = tmp_path / "b.mp4"
    n = _h264_with_b_frames(footage_dir / "aboda_video4.avi", clip)
    every = LiveFile(clip, 5.0, realtime=False, skip_undue=False)
    skipping = LiveFile(clip, 5.0, realtime=False)
    a, b = list(every), list(skipping)
    assert [(f.index, f.time_s) for f in a] == [(f.index, f.time_s) for f in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert len(a) == pytest.approx(n / 5, abs=1)
    assert every.frames_read == n and skipping.frames_read <= 0.8 * n, (n, every.frames_read, skipping.frames_read)


def test_a_live_camera_nobody_keeps_up_with_decodes_little_and_counts_what_it_drops(footage_dir, tmp_path):
    """Backpressure: a camera played at its own pace whose frames nobody takes stops decoding once
    its queue is full (it drains packets until each keyframe and decodes that) instead of decoding
    every reference frame of its stream; every analysis tick it lets pass is counted as dropped,
    and what waits for the analysis is bounded: the newest keyframes, oldest first."""
    import time

    import av

    from detector.sources import QUEUE_DEPTH, LiveFile

    clip = tmp_path / "ip.mp4"
    n = _h264_with_b_frames(footage_dir / "aboda_video4.avi", clip, seconds=6.0, bframes=0, gop=10)
    with av.open(str(clip)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]  # I and P only: in presentation order
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert len(keys) == pytest.approx(n / 10, abs=1)

    src = LiveFile(clip, 5.0, realtime=True)
    src.start()  # nobody takes a frame
    deadline = time.monotonic() + 120  # a generous bound on a 6 s clip, not a speed check
    while not src._ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert src._ended and src.error is None and src.pending
    assert src.frames_read + src.frames_passed_over == n
    assert src.frames_read <= n / 3, (src.frames_read, n)  # every reference frame: n
    ticks = len([t for t in range(n) if t % 5 == 0])  # 25 fps analysed at 5: every 5th frame is due
    assert src.frames_dropped == ticks - QUEUE_DEPTH  # all but the frames waiting
    waiting = [src.take() for _ in range(QUEUE_DEPTH)]
    assert [f.index for f in waiting] == keys[-QUEUE_DEPTH:] and src.take() is None

    consumed = LiveFile(clip, 5.0, realtime=False)  # a consumer that keeps up: every frame decoded
    assert len(list(consumed)) == ticks and consumed.frames_read == n and consumed.frames_dropped == 0


def test_a_looped_camera_behind_the_analysis_keeps_its_video_time(footage_dir, tmp_path):
    """A looped file camera that passed over the end of one pass undecoded starts the next pass where
    the video goes on, not where its last decoded frame was: frame k is at k / 25 s in every pass."""
    import threading
    import time

    from detector.sources import LiveFile

    clip = tmp_path / "ip.mp4"
    n = _h264_with_b_frames(footage_dir / "aboda_video4.avi", clip, seconds=1.6, bframes=0, gop=10)
    stop = threading.Event()
    src = LiveFile(clip, 5.0, loop=True, stop=stop)
    src.start()  # nobody takes a frame: behind from the first pass on, so each pass ends passed over
    deadline = time.monotonic() + 120  # a generous bound on three passes of 2 s, not a speed check
    while time.monotonic() < deadline and not any(f.index >= 2 * n for f in list(src._queue)):
        time.sleep(0.05)
    stop.set()
    waiting = [src.take() for _ in range(3)]
    assert src.frames_passed_over > 0 and max(f.index for f in waiting) >= 2 * n
    assert all(f.time_s == pytest.approx(f.index / 25, abs=1e-3) for f in waiting), [
        (f.index, f.time_s) for f in waiting
    ]


def test_live_file_plays_at_its_own_pace_and_loops_on(footage_dir):
    import threading
    import time

    from detector.sources import LiveFile

    stop = threading.Event()
    src = LiveFile(footage_dir / "porch_bottle_drop_bad2.mp4", 5.0, loop=True, stop=stop)
    times, t0 = [], time.monotonic()
    for frame in src:
        times.append(frame.time_s)
        if len(times) == 10:
            wall = time.monotonic() - t0
            break
    assert wall >= times[-1] - 0.2, "a realtime file camera must not run ahead of its video time"
    fast = list(LiveFile(footage_dir / "porch_bottle_drop_bad2.mp4", 5.0, realtime=False))
    looped = []
    src = LiveFile(footage_dir / "porch_bottle_drop_bad2.mp4", 5.0, loop=True, realtime=False, stop=stop)
    stop.clear()
    for frame in src:
        looped.append(frame)
        if len(looped) == 2 * len(fast) + 3:
            stop.set()
    t = [f.time_s for f in looped]
    assert all(b > a for a, b in zip(t, t[1:])), "video time goes on across loops"
    every = list(FileSource(footage_dir / "porch_bottle_drop_bad2.mp4", None))
    n, length = len(every), every[-1].time_s + (every[-1].time_s - every[0].time_s) / (len(every) - 1)
    second = [f for f in looped if f.index >= n]
    assert second and all(f.index < 2 * n for f in second[:5])
    for f in second[:5]:  # the second pass shows the first one's frames, a pass later in video time
        first = every[f.index - n]
        assert np.array_equal(f.image, first.image) and f.time_s == pytest.approx(first.time_s + length, abs=1e-3)


def test_live_file_errors_are_user_errors(tmp_path, footage_dir):
    from detector.sources import LiveFile

    with pytest.raises(UserError, match="clip not found"):
        LiveFile(tmp_path / "nope.mp4", 5.0)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match="junk.mp4"):
        list(LiveFile(junk, 5.0, realtime=False))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((footage_dir / "porch_bottle_drop_bad2.mp4").read_bytes()[:4000])
    with pytest.raises(UserError, match="cut.mp4"):
        list(LiveFile(cut, 5.0, realtime=False))
