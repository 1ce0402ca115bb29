"""The live path's pure parts: analysis-rate picking, timestamp repair, histograms, site metrics."""

from __future__ import annotations

import pickle

import pytest

from detector.config import SiteCamera
from detector.metrics import DETECTOR_SECONDS, Histogram, SiteMetrics, detector_histogram
from detector.sources import Decimator, StreamClock
from detector.supervisor import groups_of
from detector.values import CameraState
from detector.worker import WorkerStats


def picks(times: list[float], fps: float) -> list[int]:
    picker, out = Decimator(fps), []
    for i, t in enumerate(times):
        if picker.is_due(t):
            picker.taken(t)
            out.append(i)
    return out


def test_decimator_picks_the_first_frame_at_or_after_each_tick():
    assert picks([i / 25 for i in range(26)], 5) == [0, 5, 10, 15, 20, 25]
    # 29.97 fps: ticks every 0.2 s fall between frames; each pick is the first frame after its tick
    times = [i * 1001 / 30000 for i in range(31)]
    assert picks(times, 5) == [0, 6, 12, 18, 24, 30]
    # a gap does not shift the grid: after a frame at 1.03 s the next is due at 1.2 s, not 1.23 s
    assert picks([0.0, 0.2, 1.03, 1.1, 1.2, 1.23], 5) == [0, 1, 2, 4]
    assert picks([0.0, 0.1, 0.2], None) == [0, 1, 2]


@pytest.mark.parametrize("stream_fps", [10, 12.5, 15, 24, 25, 30000 / 1001, 30, 50, 60])
@pytest.mark.parametrize("analysis_fps", [1, 2, 5, 7.5, 10])
def test_a_frame_skipped_undecoded_is_never_one_the_picker_would_take(stream_fps, analysis_fps):
    """Decoding may skip a frame only when it cannot be due; at 25 fps analysed at 5 most can."""
    tick = 1 / 90000  # an MP4 time base: times are whole ticks, as the container stores them
    times = [round(i / stream_fps / tick) * tick for i in range(600)]
    picker, taken, skippable = Decimator(analysis_fps), 0, 0
    for i, t in enumerate(times):
        previous = times[i - 1] if i else None
        may = picker.may_be_due(t, previous)
        if picker.is_due(t):
            assert may, f"frame {i} at {t} is due but would have been skipped"
            picker.taken(t)
            taken += 1
        skippable += not may
    assert taken == pytest.approx(600 / stream_fps * min(analysis_fps, stream_fps), abs=2)
    if stream_fps >= 2 * analysis_fps:  # most frames between picks need no decoding
        assert skippable >= 0.8 * (600 - taken)


def test_may_be_due_errs_towards_decoding_without_a_predecessor():
    assert Decimator(5).may_be_due(0.16, None)
    assert not Decimator(5).may_be_due(0.16, 0.12)
    assert Decimator(5).may_be_due(0.2, 0.16)


def test_stream_clock_starts_at_zero_and_repairs_missing_or_backward_times():
    clock = StreamClock(25.0)
    assert [round(clock.time(p), 3) for p in (10.0, 10.04, None, 10.04, 10.2, 10.1, 10.28)] == [
        0.0,
        0.04,
        0.08,
        0.12,  # repeated: the previous plus one frame
        0.2,
        0.24,  # backwards: repaired
        0.28,
    ]
    assert clock.index == 6


def test_histogram_buckets_are_upper_bounds_and_add_up():
    h = detector_histogram()
    for v in (0.005, 0.0051, 0.014, 2.0):
        h.observe(v)
    assert h.bounds == DETECTOR_SECONDS and h.count == 4 and h.total == pytest.approx(2.0241)
    cum = dict(h.cumulative())
    assert cum["0.005"] == 1 and cum["0.01"] == 2 and cum["0.015"] == 3 and cum["1"] == 3 and cum["+Inf"] == 4
    both = h + h
    assert both.count == 8 and h.count == 4
    assert (Histogram.of((1.0,)) + h).bounds == h.bounds  # other buckets: the newer histogram wins


def test_worker_stats_cross_a_pipe_as_themselves():
    st = WorkerStats("gate", state=CameraState.RUNNING, frames_analysed=7)
    st.detector_s.observe(0.02)
    back = pickle.loads(pickle.dumps(st))
    assert back == st and isinstance(back.state, CameraState) and back.detector_s.count == 1


def stats(name: str, analysed: int, dropped: int, state=CameraState.RUNNING, **kw) -> WorkerStats:
    return WorkerStats(name, state=state, frames_analysed=analysed, frames_dropped=dropped, **kw)


def test_counters_carry_over_a_worker_restart():
    m = SiteMetrics("s", ["a"])
    m.update(stats("a", 100, 3, acts=2, cpu_s=4.0))
    m.retire("a")
    m.update(stats("a", 10, 0, acts=1, cpu_s=0.5))
    v = m.camera_view("a")
    assert (v["frames_analysed"], v["frames_dropped"], v["acts"], v["cpu_s"]) == (110, 3, 3, 4.5)


def test_overload_is_judged_over_the_recent_window_and_shown_in_health():
    m = SiteMetrics("s", ["a", "b"], stale_after_s=1e9, overload_window_s=30)
    now = 1000.0
    for k in range(61):  # a: every frame analysed; b: one in five dropped, over the last minute
        m.update(stats("a", 5 * k, 0), now=now + k)
        m.update(stats("b", 4 * k, k), now=now + k)
    a, b = m.camera_view("a"), m.camera_view("b")
    assert a["analysed_fps"] == pytest.approx(5.0) and a["drop_ratio"] == 0 and not a["overloaded"]
    assert b["analysed_fps"] == pytest.approx(4.0) and b["drop_ratio"] == pytest.approx(0.2) and b["overloaded"]
    h = m.health()
    assert h["status"] == "overloaded" and h["overloaded"] == ["b"]
    assert h["cameras"]["b"]["frames_dropped"] == 60
    # drops that ended more than a window ago no longer count
    for k in range(61, 100):
        m.update(stats("b", 4 * 60 + 5 * (k - 60), 60), now=now + k)
    assert not m.camera_view("b")["overloaded"] and m.health()["status"] == "ok"


def test_a_camera_without_frames_goes_stale_and_degrades_the_site():
    m = SiteMetrics("s", ["a", "dead"], stale_after_s=0.0)
    m.update(stats("a", 5, 0, last_frame_wall=2e9))  # a frame "now" (in the future: never stale)
    m.update(stats("dead", 0, 0, state=CameraState.ERROR, last_error="camera 'dead': url: clip not found"))
    h = m.health()
    assert h["status"] == "degraded" and h["stale"] == ["dead"]
    assert h["cameras"]["dead"]["state"] == "error" and "clip not found" in h["cameras"]["dead"]["last_error"]


def test_prometheus_families_carry_the_histograms_and_the_overload_gauge():
    from prometheus_client import CollectorRegistry, generate_latest

    m = SiteMetrics("s", ["a"])
    st = stats("a", 3, 1)
    st.act_latency_s.observe(0.3)
    m.update(st)
    reg = CollectorRegistry()
    reg.register(m)
    text = generate_latest(reg).decode()
    assert 'detector_act_latency_seconds_bucket{camera="a",le="0.5",site="s"} 1.0' in text
    assert 'detector_inference_seconds_bucket{camera="a",le="+Inf",site="s"} 0.0' in text
    assert 'detector_site_overloaded{site="s"}' in text and "detector_camera_cpu_seconds_total" in text


def test_cameras_are_dealt_into_as_few_equal_groups_as_allowed():
    cams = [SiteCamera(name=f"c{i}", url=f"{i}.mp4") for i in range(24)]
    assert [len(g) for g in groups_of(cams, 32)] == [24]
    assert [len(g) for g in groups_of(cams, 16)] == [12, 12]
    assert [len(g) for g in groups_of(cams, 1)] == [1] * 24
    three = groups_of(cams[:3], 2)
    assert [[c.name for c in g] for g in three] == [["c0", "c2"], ["c1"]]
