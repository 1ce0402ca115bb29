"""The Markdown report of a bench result."""

from __future__ import annotations

import math
from typing import Any

from detector.bench.scoring import WINDOW_AFTER_S, WINDOW_BEFORE_S


def _f(v: float | None, nd: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def render_report(result: dict[str, Any]) -> str:
    lines = [
        "# Detector benchmark",
        "",
        f"Truth: `{result['truth']}`  ",
        f"Model: `{result['config']['model']}` "
        f"({result['config']['model_file']}), config: `{result['config']['path'] or 'defaults'}`  ",
        f"Match window: {WINDOW_BEFORE_S:g} s before to {WINDOW_AFTER_S:g} s after the onset (inclusive), one-to-one.",
        "",
        "## Accuracy",
        "",
        "| | TP | FP | FN | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, m in [("overall", result["overall"]), *result["by_type"].items()]:
        lines.append(
            (
                f"| {label} | {m['tp']} | {m['fp']} | {m['fn']} | "
                f"{_f(m['precision'])} | {_f(m['recall'])} | {_f(m['f1'])} |"
            )
        )
    d = result["delays"]
    lines += [
        "",
        f"Delays (notification - onset) over {d['count']} matches: mean {_f(d['mean_s'])} s, "
        f"median {_f(d['median_s'])} s, min {_f(d['min_s'])} s, max {_f(d['max_s'])} s.",
        "",
        "## Clips",
        "",
        "| clip | video s | frames | frames/s | x real time | acts | TP | FP | FN | delays s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["clips"]:
        delays = ", ".join(f"{x:+.1f}" for x in c["delays_s"]) or "-"
        lines.append(
            f"| {c['file']} | {c['video_s']:.1f} | {c['frames_analysed']} | {_f(c['frames_per_s'], 1)} | "
            f"{_f(c['realtime_factor'], 1)} | {len(c['acts'])} | {c['tp']} | {c['fp']} | {c['fn']} | {delays} |"
        )
    s = result["speed"]
    lines += [
        "",
        "## Speed",
        "",
        f"{s['video_s']:.1f} s of video, {s['frames_analysed']} frames analysed in "
        f"{s['processing_s']:.1f} s of processing summed over clips: **{_f(s['realtime_factor'], 1)}x real time**, "
        f"{_f(s['frames_per_s'], 1)} frames/s; {s['jobs']} worker process(es), {s['elapsed_s']:.1f} s elapsed, "
        f"peak RSS {s['peak_rss_mb']:.0f} MB per worker.",
    ]
    if result["skipped"]:
        lines += ["", f"Skipped (not found): {', '.join(result['skipped'])}"]
    return "\n".join(lines) + "\n"
