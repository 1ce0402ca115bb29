"""Audit segmentation: the overlap rule, the plan, and merging segments' acts (pure)."""

from __future__ import annotations

import math

import pytest

from detector.audit.inputs import collect
from detector.audit.segments import Segment, SegmentRule, merge
from detector.config import Settings
from detector.protocol.errors import UserError


def test_overlap_rule_from_the_default_settings():
    s = Settings()
    rule = SegmentRule.from_settings(s, 15 * 60)
    story = s.acts.owner_lookback_s + s.scene.candidate_hold_s + s.scene.long_tau_s * math.log(255 / 20)
    expected = s.scene.warmup_s + s.acts.startup_s + story
    assert expected == pytest.approx(114.37, abs=0.01)
    # Rounded up to whole analysis intervals (0.2 s at 5 fps).
    assert rule.overlap_s == pytest.approx(114.4)
    assert rule.margin_s == pytest.approx(s.acts.dwell_s + s.acts.gone_s)
    assert rule.segment_s == 900.0


def test_overlap_follows_the_settings_and_segments_are_never_shorter_than_it():
    s = Settings.model_validate({"scene": {"long_tau_s": 10, "candidate_hold_s": 10}})
    rule = SegmentRule.from_settings(s, 1.0)  # asked for 1 s segments
    assert rule.overlap_s == pytest.approx(43.6)  # 43.46 rounded up
    assert rule.segment_s >= rule.overlap_s + 2 * rule.margin_s
    slow = SegmentRule.from_settings(Settings.model_validate({"scene": {"long_tau_s": 300}}), 60)
    assert slow.overlap_s > 600 and slow.segment_s > slow.overlap_s


@pytest.mark.parametrize("duration", [0.0, 30.0, 899.0, 1349.0, 1351.0, 3 * 3600 + 7.3])
def test_plan_covers_the_file_once_on_the_analysis_grid(duration):
    rule = SegmentRule.from_settings(Settings(), 15 * 60)
    segs = rule.plan(duration)
    assert segs[0].own_from == 0.0 and segs[0].start_s == 0.0
    assert segs[-1].own_to is None and segs[-1].end_s is None  # the last one reads to the real end
    for a, b in zip(segs, segs[1:]):
        assert a.own_to == b.own_from  # contiguous, no gap, no double ownership
        assert b.start_s == pytest.approx(max(0.0, b.own_from - rule.overlap_s))
        assert a.end_s == pytest.approx(a.own_to + rule.margin_s)
    for s in segs:
        for t in (s.start_s, s.own_from):
            assert abs(t / 0.2 - round(t / 0.2)) < 1e-6
    assert len(segs) == max(1, math.floor(duration / 900 + 0.5))
    assert rule.plan(duration) == segs  # nothing but the duration and the settings decide it


def _act(kind, t, box=(10, 10, 50, 50), lid=1, zone="all", **extra):
    return {
        "kind": kind,
        "camera": "cam",
        "zone": zone,
        "object_class": "unknown",
        "box": list(box),
        "severity": "bag",
        "t_release": max(0.0, t - 5),
        "t_notify": t,
        "litter_id": lid,
        "frame_index": int(t * 25),
    } | extra


SEGS = [Segment(0, 0.0, 0.0, 100.0, 102.0), Segment(1, 50.0, 100.0, None, None)]


def test_an_act_both_neighbours_found_is_kept_once_as_the_earlier_saw_it():
    early = [_act("littering", 99.0, lid=3)]
    late = [_act("littering", 99.4, box=(12, 10, 52, 50), lid=1)]  # its warm-up copy, a look later
    merged = merge(SEGS, [early, late], margin_s=2.0)
    assert len(merged) == 1
    assert merged[0]["t_notify"] == 99.0 and merged[0]["litter_id"] == 1


def test_an_act_just_past_a_boundary_found_by_both_is_kept_once():
    early = [_act("littering", 101.0)]  # in the margin the earlier segment runs on for
    late = [_act("littering", 100.8)]
    merged = merge(SEGS, [early, late], margin_s=2.0)
    assert [a["t_notify"] for a in merged] == [101.0]


def test_an_act_only_one_segment_found_counts_where_that_segment_owns_the_time():
    early = [_act("littering", 20.0), _act("littering", 101.5, box=(200, 200, 240, 240), lid=2)]
    late = [
        _act("littering", 60.0, box=(300, 300, 340, 340), lid=1),  # warm-up only: the earlier saw nothing
        _act("cleanup", 99.5, box=(400, 400, 440, 440), lid=2),  # before its own range, unpaired
        _act("cleanup", 150.0, box=(500, 500, 540, 540), lid=3),
    ]
    merged = merge(SEGS, [early, late], margin_s=2.0)
    assert [(a["kind"], a["t_notify"]) for a in merged] == [("littering", 20.0), ("cleanup", 150.0)]


def test_different_acts_at_one_time_are_not_merged():
    early = [_act("littering", 99.0)]
    late = [
        _act("cleanup", 99.2),  # other kind
        _act("littering", 100.5, box=(300, 300, 340, 340), lid=2),  # other place
        _act("littering", 100.2, zone="door", lid=3),  # other zone
    ]
    merged = merge(SEGS, [early, late], margin_s=2.0)
    assert [(a["kind"], a["t_notify"], a["zone"]) for a in merged] == [
        ("littering", 99.0, "all"),
        ("littering", 100.2, "door"),
        ("littering", 100.5, "all"),
    ]


def test_litter_ids_are_numbered_per_file_and_a_clean_up_finds_its_littering():
    whole = [
        _act("littering", 20.0, lid=1),
        _act("littering", 30.0, box=(100, 100, 140, 140), lid=2),
        _act("cleanup", 160.0, box=(100, 100, 140, 140), lid=2),
        _act("cleanup", 170.0, lid=1),
    ]
    one = merge([Segment(0, 0.0, 0.0, None, None)], [whole], margin_s=2.0)
    # In segments: the later one met litter 2 as its own litter 7 (through its warm-up copy of
    # the littering act) and litter 1 as existing litter (its id 9): a clean-up at the same place.
    early = whole[:2]
    late = [
        _act("littering", 30.0, box=(100, 100, 140, 140), lid=7),
        _act("cleanup", 160.0, box=(100, 100, 140, 140), lid=7),
        _act("cleanup", 170.0, lid=9),
    ]
    two = merge(SEGS, [early, late], margin_s=2.0)
    assert one == two
    assert [(a["kind"], a["litter_id"]) for a in one] == [
        ("littering", 1),
        ("littering", 2),
        ("cleanup", 2),
        ("cleanup", 1),
    ]


def test_a_clean_up_of_litter_nobody_saw_dropped_gets_a_new_id():
    merged = merge(SEGS, [[], [_act("cleanup", 120.0, lid=4, also=[{"litter_id": 5, "severity": "small"}])]], 2.0)
    assert merged[0]["litter_id"] == 1 and merged[0]["also"] == [{"litter_id": 2, "severity": "small"}]


# -- inputs --------------------------------------------------------------------------------------


def test_inputs_files_folders_patterns_and_notices(tmp_path):
    (tmp_path / "cam1").mkdir()
    (tmp_path / "cam1" / "b.mp4").write_bytes(b"x")
    (tmp_path / "cam1" / "a.AVI").write_bytes(b"x")
    (tmp_path / "cam1" / "notes.txt").write_text("x")
    (tmp_path / "cam1" / ".partial.mp4").write_bytes(b"x")
    (tmp_path / "c.mkv").write_bytes(b"x")
    found = collect([str(tmp_path / "cam1"), str(tmp_path / "*.mkv"), str(tmp_path / "cam1" / "b.mp4")])
    assert found.recordings == sorted(found.recordings, key=str)  # in path order, each once
    assert sorted(p.name for p in found.recordings) == ["a.AVI", "b.mp4", "c.mkv"]
    assert len(found.skipped) == 1 and "notes.txt: not a video file" in found.skipped[0]


def test_inputs_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        collect([str(tmp_path / "missing.mp4")])
    with pytest.raises(UserError, match="no file matches"):
        collect([str(tmp_path / "*.mp4")])
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(UserError, match="no video file found"):
        collect([str(tmp_path)])
