"""detector bench: the IWDD-style matcher on constructed acts, truth loading, and the real CLI on real clips."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from detector.bench import (
    ActRecord,
    ClipRun,
    TruthClip,
    TruthEvent,
    build_result,
    load_truth,
    match_acts,
    prf,
    score_totals,
)
from detector.bench.plot import render_delay_plot, render_plot
from detector.bench.report import render_report
from detector.bench.scoring import delay_stats, grown, in_place, place_labels
from detector.config import Settings
from detector.protocol.errors import UserError
from detector.samples import SAMPLE_MANIFEST
from detector.values import Act

PROJECT = Path(__file__).resolve().parents[2]


def ev(type_: str, t: float, scored: bool = True, box: list[float] | None = None) -> TruthEvent:
    return TruthEvent(type=type_, t_start=t, scored=scored, where={"box": box} if box else None)


def act(kind: str, t: float, box: list[int] | None = None) -> ActRecord:
    return ActRecord(kind, t, t, box or [0, 0, 10, 10], "bottle")


def counts(score, kind: str) -> tuple[int, int, int]:
    c = score.by_kind[kind]
    return c.tp, c.fp, c.fn


# -- window edges: [t_start - 5 s, t_start + 10 s], both inclusive -----------------------------


@pytest.mark.parametrize(
    ("t_notify", "hit"),
    [(15.0, True), (5.0, True), (4.99, False), (20.0, True), (20.01, False), (10.0, True)],
)
def test_window_edges_inclusive(t_notify, hit):
    s = match_acts([ev("litter", 10.0)], [act("littering", t_notify)])
    assert counts(s, "littering") == ((1, 0, 0) if hit else (0, 1, 1))


def test_window_edge_survives_float_rounding():
    # 12.3 - 2.3 is 10.000000000000002 in binary floating point; it is still on the edge.
    s = match_acts([ev("litter", 2.3)], [act("littering", 12.3)])
    assert counts(s, "littering") == (1, 0, 0)
    assert s.delays == pytest.approx([10.0])


def test_real_act_values_are_accepted():
    a = Act("cleanup", "cam", "z", "bottle", (1, 2, 3, 4), "small", t_release=6.0, t_notify=7.5, litter_id=1)
    s = match_acts([ev("pickup", 6.0)], [a])
    assert counts(s, "cleanup") == (1, 0, 0)
    assert s.matches == [(0, 0, pytest.approx(1.5))]


# -- one-to-one --------------------------------------------------------------------------------


def test_second_act_on_same_event_is_false_positive():
    s = match_acts([ev("litter", 10.0)], [act("littering", 11.0), act("littering", 12.0)])
    assert counts(s, "littering") == (1, 1, 0)
    assert s.outcomes == ["tp", "fp"]


def test_optimal_assignment_maximises_matches():
    # Greedy by nearest would give the act at 14 to the event at 12 (2 s < 4 s), and the act
    # at 21 is 11 s after the event at 10: one match. The optimum matches both.
    events = [ev("litter", 10.0), ev("litter", 12.0)]
    acts = [act("littering", 14.0), act("littering", 21.0)]
    s = match_acts(events, acts)
    assert counts(s, "littering") == (2, 0, 0)
    assert sorted((e, a) for e, a, _ in s.matches) == [(0, 0), (1, 1)]


def test_optimal_assignment_minimises_delay_among_equal_counts():
    events = [ev("litter", 10.0), ev("litter", 30.0)]
    acts = [act("littering", 31.0), act("littering", 11.0)]
    s = match_acts(events, acts)
    assert sorted((e, a) for e, a, _ in s.matches) == [(0, 1), (1, 0)]
    assert sorted(s.delays) == pytest.approx([1.0, 1.0])


def test_one_act_cannot_satisfy_two_events():
    s = match_acts([ev("litter", 10.0), ev("abandon", 11.0)], [act("littering", 12.0)])
    assert counts(s, "littering") == (1, 0, 1)
    assert len(s.missed) == 1


# -- types ---------------------------------------------------------------------------------------


def test_type_mismatch_is_fp_and_fn():
    s = match_acts([ev("litter", 10.0)], [act("cleanup", 11.0)])
    assert counts(s, "littering") == (0, 0, 1)
    assert counts(s, "cleanup") == (0, 1, 0)


def test_abandon_matches_littering_and_pickup_matches_cleanup():
    s = match_acts([ev("abandon", 10.0), ev("pickup", 40.0)], [act("littering", 12.0), act("cleanup", 41.0)])
    assert counts(s, "littering") == (1, 0, 0)
    assert counts(s, "cleanup") == (1, 0, 0)


# -- unscored events ------------------------------------------------------------------------------


def test_unscored_event_counts_neither_way():
    s = match_acts([ev("pickup", 10.0, scored=False)], [act("cleanup", 11.0)])
    assert counts(s, "cleanup") == (0, 0, 0)
    assert s.outcomes == ["ignored"]
    assert match_acts([ev("pickup", 10.0, scored=False)], []).total.fn == 0


def test_informational_types_are_unscored():
    s = match_acts([ev("place", 10.0), ev("drop", 30.0)], [act("littering", 12.0), act("littering", 31.0)])
    assert s.total.tp == s.total.fp == s.total.fn == 0
    assert s.outcomes == ["ignored", "ignored"]


def test_unscored_event_does_not_absorb_other_kind_or_far_acts():
    s = match_acts([ev("place", 10.0)], [act("cleanup", 11.0), act("littering", 30.0)])
    assert s.outcomes == ["fp", "fp"]


def test_scored_event_wins_over_unscored_one():
    s = match_acts([ev("place", 10.0), ev("litter", 11.0)], [act("littering", 12.0)])
    assert counts(s, "littering") == (1, 0, 0)


# -- place (located score) -------------------------------------------------------------------
# Truth box [100, 100, 140, 120]: 40 x 20, grown by half on every side -> [80, 90, 160, 130].
BOX = [100, 100, 140, 120]


def test_grown_box_is_half_width_and_height_on_every_side():
    assert grown(BOX) == (80.0, 90.0, 160.0, 130.0)


@pytest.mark.parametrize(
    ("act_box", "inside"),
    [
        ([110, 105, 130, 115], True),  # inside the truth box
        ([150, 125, 200, 200], True),  # overlaps the grown margin only
        ([160, 130, 170, 140], True),  # touches the grown box's corner exactly
        ([160.5, 100, 170, 110], False),  # just right of the grown box
        ([100, 130.5, 140, 140], False),  # just below it
        ([0, 0, 79.5, 89.5], False),  # up and left of it
        ([0, 0, 500, 500], True),  # a large act box around the object
    ],
)
def test_place_edges(act_box, inside):
    assert in_place(act_box, BOX) is inside
    time_hit = match_acts([ev("litter", 10.0, box=BOX)], [act("littering", 12.0, act_box)])
    assert counts(time_hit, "littering") == (1, 0, 0)  # time only never looks at the box
    s = match_acts([ev("litter", 10.0, box=BOX)], [act("littering", 12.0, act_box)], located=True)
    assert counts(s, "littering") == ((1, 0, 0) if inside else (0, 1, 1))


def test_located_prefers_the_act_in_place_over_the_one_nearer_in_time():
    events = [ev("pickup", 10.0, box=BOX)]
    acts = [act("cleanup", 10.5, [400, 400, 420, 420]), act("cleanup", 14.0, [105, 105, 120, 118])]
    assert match_acts(events, acts).outcomes == ["tp", "fp"]
    located = match_acts(events, acts, located=True)
    assert located.outcomes == ["fp", "tp"]
    assert located.delays == pytest.approx([4.0])
    assert place_labels(events, acts, located) == ["wrong", "ok"]


def test_event_without_box_is_judged_on_time_alone():
    events = [ev("pickup", 10.0)]  # only a description of the place in the truth file
    acts = [act("cleanup", 11.0, [400, 400, 420, 420])]
    located = match_acts(events, acts, located=True)
    assert counts(located, "cleanup") == (1, 0, 0)
    assert place_labels(events, acts, located) == ["unknown"]


def test_wrong_place_needs_right_time_and_kind():
    events = [ev("litter", 10.0, box=BOX)]
    acts = [act("littering", 30.0, [400, 400, 420, 420]), act("cleanup", 11.0, [400, 400, 420, 420])]
    located = match_acts(events, acts, located=True)
    assert located.outcomes == ["fp", "fp"]
    assert place_labels(events, acts, located) == [None, None]  # too late; other kind


def test_unscored_events_absorb_on_time_in_the_located_score_too():
    s = match_acts([ev("place", 10.0, box=BOX)], [act("littering", 12.0, [400, 400, 420, 420])], located=True)
    assert s.outcomes == ["ignored"] and s.total.fp == 0


@pytest.mark.parametrize(
    ("box", "message"),
    [("[1, 2, 3]", "where.box must be"), ("[10, 10, 5, 20]", "has no area"), ("[a, 1, 2, 3]", "where.box must be")],
)
def test_bad_truth_box_gives_one_line(tmp_path, box, message):
    p = tmp_path / "truth.yaml"
    p.write_text(f"clips:\n  - file: a.mp4\n    events: [{{type: litter, t_start: 1, where: {{box: {box}}}}}]\n")
    with pytest.raises(UserError) as err:
        load_truth(p)
    assert message in str(err.value) and "a.mp4" in str(err.value) and "\n" not in str(err.value)


# -- acts the bench does not score -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["found", "vanished"])
def test_other_kinds_are_neither_matched_nor_counted(kind):
    events = [ev("litter", 10.0, box=BOX), ev("pickup", 20.0, box=BOX)]
    acts = [act(kind, 11.0, BOX), act(kind, 21.0, BOX), act("littering", 12.0, BOX)]
    for located in (False, True):
        s = match_acts(events, acts, located=located)
        assert s.outcomes == ["other", "other", "tp"]
        assert counts(s, "littering") == (1, 0, 0)
        assert counts(s, "cleanup") == (0, 0, 1)
        assert [a for _, a, _ in s.matches] == [2]


# -- metrics --------------------------------------------------------------------------------------


def test_prf_zero_cases_never_nan():
    assert prf(0, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}  # negative clip, silent detector
    assert prf(0, 0, 3) == {"precision": 1.0, "recall": 0.0, "f1": 0.0}  # nothing detected
    assert prf(0, 2, 0) == {"precision": 0.0, "recall": 1.0, "f1": 0.0}  # only false alarms
    assert prf(0, 2, 3) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    m = prf(3, 1, 2)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_score_totals_sum_clips_micro_average():
    a = match_acts([ev("litter", 10.0)], [act("littering", 11.0), act("cleanup", 50.0)])  # TP, FP(cleanup)
    b = match_acts([ev("pickup", 5.0), ev("litter", 20.0)], [act("cleanup", 6.0)])  # TP, FN(littering)
    c = match_acts([], [])  # negative clip
    t = score_totals([a, b, c])
    assert (t["overall"]["tp"], t["overall"]["fp"], t["overall"]["fn"]) == (2, 1, 1)
    assert t["by_type"]["littering"] == {
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
    }
    assert t["by_type"]["cleanup"]["tp"] == 1 and t["by_type"]["cleanup"]["fp"] == 1
    assert t["delays"]["count"] == 2 and t["delays"]["mean_s"] == pytest.approx(1.0)
    assert not any(math.isnan(v) for m in [t["overall"], *t["by_type"].values()] for v in m.values())


def test_delay_stats_distribution():
    d = delay_stats([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (d["count"], d["median_s"], d["q1_s"], d["q3_s"], d["min_s"], d["max_s"]) == (5, 3.0, 2.0, 4.0, 1.0, 5.0)
    assert d["values_s"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert d["p90_s"] == pytest.approx(4.6)  # inclusive: 90% of the way from the first to the last
    assert delay_stats([2.5])["q1_s"] == 2.5 and delay_stats([2.5])["p90_s"] == 2.5
    assert delay_stats([])["count"] == 0 and delay_stats([])["median_s"] is None


def test_score_totals_split_delays_by_type():
    acts = [act("littering", 12.0), act("cleanup", 41.0)]
    s = match_acts([ev("litter", 10.0), ev("pickup", 40.0)], acts)
    t = score_totals([s], [acts])
    assert t["delays_by_type"]["littering"]["values_s"] == [2.0]
    assert t["delays_by_type"]["cleanup"]["values_s"] == [1.0]


# -- the result, report and plots -------------------------------------------------------------------


def _result(tmp_path):
    clips = [
        TruthClip(file="a.mp4", events=[ev("litter", 10.0, box=BOX), ev("pickup", 30.0)]),
        TruthClip(file="b.mp4", events=[ev("pickup", 5.0, box=BOX)]),
        TruthClip(file="negative.mp4"),
    ]
    runs = [
        ClipRun(
            "a.mp4",
            [act("littering", 12.0, BOX), act("found", 1.0, BOX), act("cleanup", 33.0)],
            50,
            40.0,
            4.0,
            1.0,
            200.0,
        ),
        ClipRun("b.mp4", [act("cleanup", 8.0, [400, 400, 420, 420])], 20, 10.0, 1.0, 1.0, 200.0),
        ClipRun("negative.mp4", [act("vanished", 3.0)], 20, 10.0, 1.0, 1.0, 200.0),
    ]
    result = build_result(
        clips,
        runs,
        truth_path=tmp_path / "truth.yaml",
        settings=Settings(),
        model_path=tmp_path / "m.onnx",
        config_path=None,
        jobs=1,
        elapsed_s=6.0,
        children_rss_mb=100.0,
        skipped=[],
    )
    return clips, result


def test_result_has_located_next_to_overall_and_lists_other_kinds(tmp_path):
    _, r = _result(tmp_path)
    # b.mp4's clean-up is in time but 260 px from the bag: a time-only hit, a located miss.
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (3, 0, 0)
    assert (r["located"]["tp"], r["located"]["fp"], r["located"]["fn"]) == (2, 1, 1)
    assert set(r["located"]) >= {"precision", "recall", "f1", "by_type", "delays", "delays_by_type"}
    assert r["located"]["by_type"]["cleanup"] == {"tp": 1, "fp": 1, "fn": 1, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert r["located"]["events_time_only"] == [{"file": "a.mp4", "event": 1, "type": "pickup", "t_start": 30.0}]
    a, b, neg = r["clips"]
    assert [x["kind"] for x in a["acts"]] == ["littering", "cleanup"]
    assert [x["kind"] for x in a["other_acts"]] == ["found"]
    assert [x["place"] for x in a["acts"]] == ["ok", "unknown"]
    assert b["acts"][0]["outcome"] == "tp" and b["acts"][0]["located"] == "fp" and b["acts"][0]["place"] == "wrong"
    assert b["located"]["missed"] == [{"event": 0, "type": "pickup", "t_start": 5.0}]
    assert neg["acts"] == [] and [x["kind"] for x in neg["other_acts"]] == ["vanished"]
    assert (neg["located"]["tp"], neg["located"]["fp"], neg["located"]["fn"]) == (0, 0, 0)
    assert r["located"]["delays_by_type"]["littering"]["values_s"] == [2.0]


def test_report_shows_located_first_then_time_only(tmp_path):
    _, r = _result(tmp_path)
    md = render_report(r, {"timeline": "t.png", "delays": "d.png"})
    located, time_only = md.index("## Accuracy, located"), md.index("## Accuracy, time only")
    assert located < time_only
    assert "| overall | 2 | 1 | 1 |" in md[located:time_only] and "| overall | 3 | 0 | 0 |" in md[time_only:]
    assert "1 of 3 scored events have no box" in md and "a.mp4 pickup @ 30 s" in md
    assert "| b.mp4 | cleanup | 8.0 |" in md  # right time, wrong place
    assert "a.mp4: 1 found" in md and "negative.mp4: 1 vanished" in md
    assert "](d.png)" in md and "](t.png)" in md and "| located, cleanup | 1 |" in md


def test_plots_are_written(tmp_path):
    import cv2

    clips, r = _result(tmp_path)
    render_plot(clips, r, tmp_path / "t.png")
    render_delay_plot(r, tmp_path / "d.png")
    for name in ("t.png", "d.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 400
    with pytest.raises(UserError, match="cannot write"):
        render_delay_plot(r, tmp_path / "missing-dir" / "d.png")


# -- truth files ------------------------------------------------------------------------------------


def test_shared_truth_and_sample_manifest_load():
    manifest = load_truth(SAMPLE_MANIFEST)
    assert manifest.clips and all(c.file for c in manifest.clips)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clips: [\n  - file: a.mp4\n    events: [{type: litter, t_start: 1}", "invalid YAML"),
        ("schema_version: 1\n", "'clips'"),
        ("- a\n- b\n", "'clips'"),
        ("clips:\n  - file: a.mp4\n    events: [{type: litter}]\n", "clips.a.mp4.events.0.t_start"),
        ("clips:\n  - file: a.mp4\n    events: [{type: litter, t_start: 5, t_end: 2}]\n", "before t_start"),
        ("clips:\n  - file: a.mp4\n  - file: a.mp4\n", "listed twice"),
    ],
)
def test_bad_truth_files_give_one_line(tmp_path, text, message):
    p = tmp_path / "truth.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as err:
        load_truth(p)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- the real command -------------------------------------------------------------------------------


def detector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], capture_output=True, text=True, timeout=300, cwd=PROJECT
    )


def test_cli_missing_truth_file(tmp_path):
    r = detector("bench", str(tmp_path), "--truth", str(tmp_path / "nope.yaml"), "--json", str(tmp_path / "o.json"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "truth file not found" in r.stderr


def test_cli_invalid_yaml(tmp_path):
    (tmp_path / "t.yaml").write_text("clips: [\n")
    r = detector("bench", str(tmp_path), "--truth", str(tmp_path / "t.yaml"), "--json", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "invalid YAML" in r.stderr and r.stderr.strip().count("\n") == 0


def test_cli_missing_clip(tmp_path):
    (tmp_path / "t.yaml").write_text("clips:\n  - {file: nowhere.mp4, events: []}\n")
    r = detector("bench", str(tmp_path), "--truth", str(tmp_path / "t.yaml"), "--json", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "nowhere.mp4" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o.json").exists()
