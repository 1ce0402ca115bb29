"""detector bench: the IWDD-style matcher on constructed acts, truth loading, and the real CLI on real clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from detector.bench import load_truth
from detector.protocol.errors import UserError

PROJECT = Path(__file__).resolve().parents[2]


def counts(score, kind: str) -> tuple[int, int, int]:
    c = score.by_kind[kind]
    return c.tp, c.fp, c.fn


@pytest.mark.footage
def test_shared_truth_loads(footage_dir):
    t = load_truth(footage_dir / "truth.yaml")
    intel = next(c for c in t.clips if c.file == "intel_bottle-detection.mp4")
    assert [e.kind for e in intel.events] == ["cleanup", None, "cleanup", None, None, "cleanup", None]


# -- the real command -------------------------------------------------------------------------------


def detector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], capture_output=True, text=True, timeout=300, cwd=PROJECT
    )


@pytest.mark.footage
def test_cli_bench_real_clips(tmp_path, footage_dir, model_dir):
    truth = tmp_path / "truth.yaml"
    truth.write_text(
        "clips:\n"
        "  - file: indoor_bottle_throw_trash_0001.gif\n"
        "    events: [{type: litter, t_start: 5.4, t_end: 6.0, where: {box: [65, 130, 90, 150]}}]\n"
        "  - file: porch_bottle_drop_bad2.mp4\n"
        "    events:\n"
        "      - {type: litter, t_start: 2.3, t_end: 3.0, where: {box: [70, 780, 265, 850]}}\n"
        "      - {type: place, t_start: 8.0, scored: false}\n"
        "  - file: not_in_the_folder.mp4\n"
        "    events: [{type: pickup, t_start: 1.0}]\n"
    )
    out = tmp_path / "res" / "bench.json"
    r = detector(
        "bench",
        str(footage_dir),
        "--truth",
        str(truth),
        "--json",
        str(out),
        "--jobs",
        "2",
        "--model-dir",
        str(model_dir),
        "--skip-missing",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())

    assert res["truth"] == str(truth)
    assert res["config"]["model"] == "yolox-nano"
    assert res["skipped"] == ["not_in_the_folder.mp4"]
    assert [c["file"] for c in res["clips"]] == ["indoor_bottle_throw_trash_0001.gif", "porch_bottle_drop_bad2.mp4"]
    for c in res["clips"]:
        assert c["frames_analysed"] > 10 and c["video_s"] > 5
        assert c["frames_per_s"] > 0 and c["realtime_factor"] > 0
        assert len(c["delays_s"]) == c["tp"]
        assert {o["outcome"] for o in c["acts"]} <= {"tp", "fp", "ignored"}
        for a in c["acts"]:
            assert set(a) >= {"kind", "t_notify", "box", "class"}
        # Each scored truth event is either matched or missed.
        assert c["tp"] + c["fn"] == 1
    # Per-clip counts add up to the totals, per type and overall.
    for key in ("tp", "fp", "fn"):
        assert res["overall"][key] == sum(c[key] for c in res["clips"])
        for kind in ("littering", "cleanup"):
            assert res["by_type"][kind][key] == sum(c["by_type"][kind][key] for c in res["clips"])
    assert res["by_type"]["littering"]["tp"] + res["by_type"]["littering"]["fn"] == 2
    for m in [res["overall"], *res["by_type"].values()]:
        assert 0.0 <= m["precision"] <= 1.0 and 0.0 <= m["recall"] <= 1.0 and 0.0 <= m["f1"] <= 1.0
    s = res["speed"]
    assert s["frames_analysed"] == sum(c["frames_analysed"] for c in res["clips"])
    assert s["realtime_factor"] == pytest.approx(s["video_s"] / s["processing_s"], rel=0.01)
    assert s["peak_rss_mb"] > 50 and s["jobs"] == 2

    report = out.with_suffix(".md").read_text()
    assert "porch_bottle_drop_bad2.mp4" in report and "| overall |" in report
    image = cv2.imread(str(out.with_suffix(".png")))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 400
    assert "TP" in r.stdout and "real time" in r.stdout

    # Located (the headline): same events, each act also judged on place.
    loc = res["located"]
    assert loc["events_time_only"] == []  # both truth events have a box
    for key in ("tp", "fp", "fn"):
        assert loc[key] == sum(c["located"][key] for c in res["clips"])
    assert loc["tp"] + loc["fn"] == res["overall"]["tp"] + res["overall"]["fn"] == 2
    assert loc["tp"] <= res["overall"]["tp"]
    truth_boxes = {
        "indoor_bottle_throw_trash_0001.gif": (65, 130, 90, 150),
        "porch_bottle_drop_bad2.mp4": (70, 780, 265, 850),
    }
    for c in res["clips"]:
        for a in c["acts"]:
            assert a["located"] in {"tp", "fp", "ignored"} and a["place"] in {"ok", "wrong", None}
            if a["place"] == "ok":  # a located match touches the truth box grown by half its size
                x1, y1, x2, y2 = truth_boxes[c["file"]]
                w, h = x2 - x1, y2 - y1
                assert a["box"][0] <= x2 + w / 2 and a["box"][2] >= x1 - w / 2
                assert a["box"][1] <= y2 + h / 2 and a["box"][3] >= y1 - h / 2
        assert len(c["located"]["delays_s"]) == c["located"]["tp"]
        assert c["other_acts"] == [] or all(o["kind"] not in ("littering", "cleanup") for o in c["other_acts"])
    assert set(res["located"]["delays_by_type"]) == {"littering", "cleanup"}
    assert report.index("Accuracy, located") < report.index("Accuracy, time only")
    delays = cv2.imread(str(out.with_suffix(".delays.png")))
    assert delays is not None and delays.shape[1] > 400
    assert "located" in r.stdout


@pytest.mark.footage
def test_loco_tool_runs_real_clip_and_reuses_its_cache(tmp_path, footage_dir, model_dir):
    def loco(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                str(PROJECT / "benchmarks" / "bench_loco.py"),
                str(footage_dir),
                "--param",
                "acts.dwell_s=0.5",
                "--clips",
                "indoor_bottle_throw_trash_0001.gif",
                "porch_bottle_drop_bad2.mp4",
                "--cache",
                str(tmp_path / "cache"),
                "--model-dir",
                str(model_dir),
                "--jobs",
                "2",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=PROJECT,
        )

    first = loco("--out", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    assert "4 clip runs: 0 cached, 4 to run" in first.stderr
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4
    again = loco("--out", str(tmp_path / "two"))
    assert again.returncode == 0, again.stderr
    assert "4 clip runs: 4 cached, 0 to run" in again.stderr
    one, two = (json.loads((tmp_path / d / "loco.json").read_text()) for d in ("one", "two"))
    assert one["params"] == two["params"]  # the cache gives back the same runs
    (p,) = one["params"]
    assert p["param"] == "acts.dwell_s" and p["values"] == [0.5, 1.0] and p["default"] == 1.0
    assert [h["clip"] for h in p["held_out"]] == ["indoor_bottle_throw_trash_0001.gif", "porch_bottle_drop_bad2.mp4"]
    for row in p["all_clips"]:  # two scored events, each found or missed at every value
        assert row["tp"] + row["fn"] == 2
    assert "acts.dwell_s" in (tmp_path / "one" / "loco.md").read_text()
    bad = loco("--out", str(tmp_path / "bad"), "--param", "acts.nope=1")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("no such setting ('nope' unknown)")


@pytest.mark.footage
def test_loco_drops_runs_when_the_code_moved_under_them(tmp_path, footage_dir, model_dir):
    # The plan is keyed with a fingerprint the code on disk no longer has (as if the recogniser
    # were edited while a long run went on): the pass runs, then its runs are dropped.
    from detector.bench import loco
    from detector.config import Settings

    clip = footage_dir / "indoor_bottle_throw_trash_0001.gif"
    cache = loco.RunCache(tmp_path / "cache")
    plan = loco.make_plan([clip], [Settings()], cache, "model", "stale fingerprint")
    with pytest.raises(UserError, match="code changed during the run"):
        loco.execute(plan, [clip], cache, jobs=1, model_dir=model_dir, keyed_code="stale fingerprint")
    assert list((tmp_path / "cache").iterdir()) == []
    runs = loco.execute(plan, [clip], cache, jobs=1, model_dir=model_dir)  # unchecked: kept
    assert runs[0][0].frames > 10 and len(list((tmp_path / "cache").glob("*.json"))) == 1
