"""detector bench: the IWDD-style matcher on constructed acts, truth loading, and the real CLI on real clips."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from detector.bench import ActRecord, TruthEvent, load_truth, match_acts, prf, score_totals
from detector.protocol.errors import UserError
from detector.samples import SAMPLE_MANIFEST
from detector.values import Act

PROJECT = Path(__file__).resolve().parents[2]


def ev(type_: str, t: float, scored: bool = True) -> TruthEvent:
    return TruthEvent(type=type_, t_start=t, scored=scored)


def act(kind: str, t: float) -> ActRecord:
    return ActRecord(kind, t, t, [0, 0, 10, 10], "bottle")


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
