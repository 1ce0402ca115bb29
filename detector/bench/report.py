"""The Markdown report of a bench result: located (headline), time only, delays, clips, speed."""

from __future__ import annotations

import math
from typing import Any

from detector.bench.scoring import PLACE_GROWTH, WINDOW_AFTER_S, WINDOW_BEFORE_S


def _f(v: float | None, nd: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def _accuracy_table(overall: dict[str, Any], by_type: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| | TP | FP | FN | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, m in [("overall", overall), *by_type.items()]:
        lines.append(
            f"| {label} | {m['tp']} | {m['fp']} | {m['fn']} | "
            f"{_f(m['precision'])} | {_f(m['recall'])} | {_f(m['f1'])} |"
        )
    return lines


def _delay_row(label: str, d: dict[str, Any]) -> str:
    return (
        f"| {label} | {d['count']} | {_f(d['median_s'])} | {_f(d['mean_s'])} | {_f(d.get('q1_s'))} | "
        f"{_f(d.get('q3_s'))} | {_f(d.get('p90_s'))} | {_f(d['min_s'])} | {_f(d['max_s'])} |"
    )


def render_report(result: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """The report as Markdown; `images` maps 'timeline' / 'delays' to image paths relative to the report."""
    images = images or {}
    loc = result["located"]
    lines = [
        "# Detector benchmark",
        "",
        f"Truth: `{result['truth']}`  ",
        f"Model: `{result['config']['model']}` "
        f"({result['config']['model_file']}), config: `{result['config']['path'] or 'defaults'}`  ",
        f"Match window: {WINDOW_BEFORE_S:g} s before to {WINDOW_AFTER_S:g} s after the onset (inclusive), "
        "one-to-one.  ",
        f"Located: the act's box must also touch the truth box grown by {PLACE_GROWTH:g} of its width and height "
        "on every side.",
        "",
        "## Accuracy, located (time and place)",
        "",
        *_accuracy_table(loc, loc["by_type"]),
        "",
    ]
    unboxed = loc["events_time_only"]
    n_scored = loc["tp"] + loc["fn"]
    if unboxed:
        names = ", ".join(f"{e['file']} {e['type']} @ {e['t_start']:g} s" for e in unboxed)
        lines.append(
            f"{len(unboxed)} of {n_scored} scored events have no box in the truth file; located judges them on "
            f"time alone (as the time-only score does): {names}."
        )
    else:
        lines.append(f"Every one of the {n_scored} scored events has a box: all were checked for place.")
    lines += [
        "",
        "## Accuracy, time only (IWDD)",
        "",
        *_accuracy_table(result["overall"], result["by_type"]),
        "",
        "## Delays (notification - onset, s)",
        "",
        "| matches | count | median | mean | q1 | q3 | p90 | min | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _delay_row("located, all", loc["delays"]),
        *(_delay_row(f"located, {k}", d) for k, d in loc["delays_by_type"].items()),
        _delay_row("time only, all", result["delays"]),
        *(_delay_row(f"time only, {k}", d) for k, d in result.get("delays_by_type", {}).items()),
        "",
    ]
    if "delays" in images:
        lines += [f"![delay distribution per act type]({images['delays']})", ""]
    lines += [
        "## Clips",
        "",
        "| clip | video s | acts | located TP | FP | FN | time TP | FP | FN | located delays s | not scored |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in result["clips"]:
        lc = c["located"]
        delays = ", ".join(f"{x:+.1f}" for x in lc["delays_s"]) or "-"
        others = _kinds_count(c["other_acts"]) or "-"
        lines.append(
            f"| {c['file']} | {c['video_s']:.1f} | {len(c['acts'])} | {lc['tp']} | {lc['fp']} | {lc['fn']} | "
            f"{c['tp']} | {c['fp']} | {c['fn']} | {delays} | {others} |"
        )
    if "timeline" in images:
        lines += ["", f"![timeline: truth and detected acts per clip]({images['timeline']})"]
    wrong = [(c, a) for c in result["clips"] for a in c["acts"] if a["place"] == "wrong"]
    lines += ["", "## Right time, wrong place", ""]
    if wrong:
        lines += ["| clip | act | notified s | act box | class |", "|---|---|---:|---|---|"]
        lines += [f"| {c['file']} | {a['kind']} | {a['t_notify']:.1f} | {a['box']} | {a['class']} |" for c, a in wrong]
    else:
        lines.append("None: every act in time for a boxed truth event of its kind was also in its place.")
    others = [(c, a) for c in result["clips"] for a in c["other_acts"]]
    if others:
        lines += [
            "",
            "## Acts the bench does not score",
            "",
            f"{len(others)} act(s) of kinds other than {', '.join(result['matching']['scored_kinds'])}, listed per "
            "clip in the JSON (`other_acts`): "
            + "; ".join(f"{c['file']}: {_kinds_count(c['other_acts'])}" for c in result["clips"] if c["other_acts"])
            + ".",
        ]
    s = result["speed"]
    lines += [
        "",
        "## Speed",
        "",
        f"{s['video_s']:.1f} s of video, {s['frames_analysed']} frames analysed in "
        f"{s['processing_s']:.1f} s of processing summed over clips: **{_f(s['realtime_factor'], 1)}x real time**, "
        f"{_f(s['frames_per_s'], 1)} frames/s; {s['jobs']} worker process(es), {s['elapsed_s']:.1f} s elapsed, "
        f"peak RSS {s['peak_rss_mb']:.0f} MB per worker.",
        "",
        "| clip | frames | frames/s | x real time |",
        "|---|---:|---:|---:|",
        *(
            f"| {c['file']} | {c['frames_analysed']} | {_f(c['frames_per_s'], 1)} | {_f(c['realtime_factor'], 1)} |"
            for c in result["clips"]
        ),
    ]
    if result["skipped"]:
        lines += ["", f"Skipped (not found): {', '.join(result['skipped'])}"]
    return "\n".join(lines) + "\n"


def _kinds_count(acts: list[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for a in acts:
        kinds[a["kind"]] = kinds.get(a["kind"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
