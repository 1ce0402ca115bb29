"""Leave-one-clip-out tool: settings parsing, the run cache and its keys, and the choice per held-out clip."""

from __future__ import annotations

import json

import pytest

from detector.bench import loco
from detector.bench.runner import ActRecord, ClipRun
from detector.bench.truth import TruthClip, TruthEvent
from detector.config import Settings
from detector.protocol.errors import UserError

BASE = Settings()


# -- --param ------------------------------------------------------------------------------------


def test_param_values_are_validated_sorted_and_include_the_default():
    p = loco.parse_param("acts.dwell_s=2, 0.5,1", BASE)
    assert p.name == "acts.dwell_s" and p.default == 1.0
    assert p.values == (0.5, 1.0, 2.0)  # "1" and the default 1.0 are one value
    p = loco.parse_param("scene.persist_s=3", BASE)
    assert p.values == (1.5, 3.0)
    assert loco.parse_param("motion.enabled=false", BASE).values == (False, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acts.dwell_s", "expected SECTION.KEY=V1,V2"),
        ("acts.dwell_s=", "expected SECTION.KEY=V1,V2"),
        ("acts.nope=1", "no such setting ('nope' unknown)"),
        ("acts=1", "only single-valued settings"),
        ("acts.carryable_classes=bottle", "only single-valued settings"),
        ("acts.dwell_s=-1", "--param acts.dwell_s=-1: acts.dwell_s: Input should be greater than or equal to 0"),
        ("acts.dwell_s=[1", "cannot read value"),
    ],
)
def test_bad_param_is_one_line(text, message):
    with pytest.raises(UserError) as err:
        loco.parse_param(text, BASE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_variants_change_one_setting_each_and_share_the_base():
    params = [loco.parse_param("acts.dwell_s=0.5,2", BASE), loco.parse_param("scene.persist_s=1", BASE)]
    variants, index = loco.variants_of(BASE, params)
    assert len(variants) == 4  # base + dwell 0.5 + dwell 2 + persist 1
    assert index[("acts.dwell_s", 1.0)] == index[("scene.persist_s", 1.5)] == 0
    v = variants[index[("acts.dwell_s", 2.0)]]
    assert v.acts.dwell_s == 2.0 and v.scene.persist_s == BASE.scene.persist_s
    assert variants[index[("scene.persist_s", 1.0)]].scene.persist_s == 1.0


# -- the cache ------------------------------------------------------------------------------------


def test_run_key_depends_on_clip_settings_model_and_code():
    key = loco.run_key("clip", BASE, "model", "code")
    assert key == loco.run_key("clip", Settings(), "model", "code")
    others = {
        loco.run_key("clip2", BASE, "model", "code"),
        loco.run_key("clip", loco.with_setting(BASE, "acts.dwell_s", 2.0), "model", "code"),
        loco.run_key("clip", BASE, "model2", "code"),
        loco.run_key("clip", BASE, "model", "code2"),
    }
    assert key not in others and len(others) == 4


def test_fingerprint_changes_with_any_file_content(tmp_path):
    files = [tmp_path / "a.py", tmp_path / "b.py"]
    for f in files:
        f.write_text(f"# {f.name}\n")
    before = loco.code_fingerprint(files)
    assert loco.code_fingerprint(list(reversed(files))) == before  # order does not matter
    files[1].write_text("# edited\n")
    assert loco.code_fingerprint(files) != before


def test_cache_round_trip_and_unreadable_entries(tmp_path):
    cache = loco.RunCache(tmp_path / "c")
    run = ClipRun("a.mp4", [ActRecord("littering", 12.5, 11.0, [1, 2, 3, 4], "bottle")], 40, 8.4, 2.0, 0.5, 300.0)
    assert cache.get("k") is None
    cache.put("k", run)
    assert cache.get("k") == run
    (tmp_path / "c" / "bad.json").write_text("{not json")
    (tmp_path / "c" / "old.json").write_text(json.dumps({"file": "a.mp4"}))
    assert cache.get("bad") is None and cache.get("old") is None
    assert not list((tmp_path / "c").glob(".*.tmp"))
    cache.drop("k")
    cache.drop("never-there")
    assert cache.get("k") is None


def test_cache_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot create the cache directory"):
        loco.RunCache(tmp_path / "file" / "cache")


# -- choosing on the other clips ------------------------------------------------------------------


def test_choose_prefers_the_default_on_ties_then_the_smallest_value():
    assert loco.choose({0.5: 0.8, 1.0: 0.8, 2.0: 0.7}, 1.0) == 1.0
    assert loco.choose({0.5: 0.9, 1.0: 0.8, 2.0: 0.9}, 1.0) == 0.5
    assert loco.choose({0.5: 0.1, 1.0: 0.8, 2.0: 0.9}, 1.0) == 2.0


def _clip(name: str, t: float | None) -> TruthClip:
    events = [TruthEvent(type="litter", t_start=t, where={"box": [0, 0, 10, 10]})] if t is not None else []
    return TruthClip(file=name, events=events)


def _run(name: str, *times: float) -> ClipRun:
    return ClipRun(
        name, [ActRecord("littering", t, t, [0, 0, 10, 10], "bottle") for t in times], 10, 10.0, 1.0, 0.1, 1.0
    )


def test_leave_one_out_finds_a_default_that_rests_on_one_clip():
    # dwell 1.0 (default) finds the litter on a and b; dwell 2.0 also finds c's but gives two false
    # acts on the negative clip n. Without n, 2.0 wins (the default does not hold); otherwise 1.0
    # wins or ties (without a or b: F1 2/3 both ways) and the tie keeps the default.
    clips = [_clip("a", 5.0), _clip("b", 5.0), _clip("c", 5.0), _clip("n", None)]
    params = [loco.parse_param("acts.dwell_s=2", BASE)]
    _, index = loco.variants_of(BASE, params)
    runs = [
        [_run("a", 7.0), _run("b", 7.0), _run("c"), _run("n")],  # base, dwell 1.0
        [_run("a", 8.0), _run("b", 8.0), _run("c", 8.0), _run("n", 3.0, 4.0)],  # dwell 2.0
    ]
    (p,) = loco.leave_one_out(clips, params, runs, index)
    chosen = {h["clip"]: h["chosen"] for h in p["held_out"]}
    assert chosen == {"a": 1.0, "b": 1.0, "c": 1.0, "n": 2.0}
    assert p["default_holds"] == 3
    held_n = p["held_out"][3]
    assert held_n["with_chosen"]["fp"] == 2 and held_n["with_default"]["fp"] == 0
    assert held_n["f1_on_others"] == [{"value": 1.0, "f1": pytest.approx(0.8)}, {"value": 2.0, "f1": 1.0}]
    assert [o["f1"] for o in p["held_out"][0]["f1_on_others"]] == [pytest.approx(2 / 3), pytest.approx(2 / 3)]
    # Pooled held-out counts: a, b, c at 1.0 (TP, TP, FN) and n at 2.0 (two FP).
    chosen, default = p["pooled_held_out"]["chosen"], p["pooled_held_out"]["default"]
    assert (chosen["tp"], chosen["fp"], chosen["fn"]) == (2, 2, 1)
    assert (default["tp"], default["fp"], default["fn"]) == (2, 0, 1)
    assert [row["f1"] for row in p["all_clips"]] == [pytest.approx(0.8), pytest.approx(0.75)]
    assert p["best_on_all_clips"] == 1.0
    assert p["all_clips"][0]["differs_from_default"] == []
    assert [(d["clip"], d["tp"], d["fp"], d["fn"]) for d in p["all_clips"][1]["differs_from_default"]] == [
        ("c", 1, 0, 0),
        ("n", 0, 2, 0),
    ]


def test_located_counts_ignore_other_kinds_and_wrong_places():
    clip = _clip("a", 5.0)
    run = ClipRun(
        "a",
        [
            ActRecord("found", 6.0, 6.0, [0, 0, 10, 10], "bottle"),
            ActRecord("littering", 7.0, 7.0, [500, 500, 510, 510], "bottle"),
        ],
        10,
        10.0,
        1.0,
        0.1,
        1.0,
    )
    c = loco.located_counts(clip, run)
    assert (c.tp, c.fp, c.fn) == (0, 1, 1)


def test_markdown_names_each_setting_and_held_out_clip():
    clips = [_clip("a", 5.0), _clip("n", None)]
    params = [loco.parse_param("acts.dwell_s=2", BASE)]
    variants, index = loco.variants_of(BASE, params)
    runs = [[_run("a", 7.0), _run("n")], [_run("a", 8.0), _run("n", 3.0)]]
    plan = loco.Plan(variants, [["k1", "k2"], ["k3", "k4"]], [[runs[0][0], None], [None, None]])
    result = loco.loco_result(clips, params, plan, runs, index, truth="t.yaml", config=None, code="x", elapsed_s=3.0)
    assert result["runs"] == {"total": 4, "cached": 1, "run": 3, "processing_s": 3.3, "elapsed_s": 3.0}
    md = loco.render_markdown(result)
    assert "## `acts.dwell_s` (default 1.0)" in md and "holds for **2 of 2**" in md
    assert "| a | 1.0: 1.00, 2.0: 0.00 | 1.0 | yes | 1/0/0 |" in md
    assert "| 1.0 (default) | 1 | 0 | 0 | 1.00 | 1.00 | 1.00 | - |" in md
    assert "| 2.0 | 1 | 1 | 0 | 0.50 | 1.00 | 0.67 | n 0/1/0 |" in md
