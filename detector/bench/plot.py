"""Plots of a bench result: the timeline (one row per clip, truth and acts) and the delay distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detector.bench.scoring import WINDOW_AFTER_S, WINDOW_BEFORE_S
from detector.bench.truth import KINDS, TruthClip
from detector.protocol.errors import UserError

TYPE_COLOURS = {"littering": "tab:red", "cleanup": "tab:green"}


def render_plot(clips: list[TruthClip], result: dict[str, Any], path: Path) -> None:
    """One row per clip: truth windows and spans, detected acts judged located (filled: TP, x: FP,
    square: right time but wrong place, hollow: near an unscored event, grey dot: a kind not scored)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(clips)
    fig, ax = plt.subplots(figsize=(11, 1.9 + 0.55 * n), layout="constrained")
    xmax = 1.0
    for row, (c, rc) in enumerate(zip(clips, result["clips"])):
        y = n - 1 - row
        xmax = max(xmax, rc["video_s"])
        ax.plot([0, rc["video_s"]], [y, y], color="0.8", lw=1, zorder=0)
        for e in c.events:
            colour = TYPE_COLOURS.get(e.kind or "", "0.5")
            if e.kind:
                ax.axvspan(
                    e.t_start - WINDOW_BEFORE_S,
                    e.t_start + WINDOW_AFTER_S,
                    ymin=(y + 0.5 - 0.35) / n,
                    ymax=(y + 0.5 + 0.35) / n,
                    color=colour,
                    alpha=0.12,
                    lw=0,
                )
            end = e.t_end if e.t_end is not None else e.t_start
            ax.plot(
                [e.t_start, max(end, e.t_start + 0.15)],
                [y, y],
                color=colour,
                lw=6,
                alpha=0.6 if e.kind else 0.35,
                solid_capstyle="butt",
            )
            ax.plot([e.t_start], [y], marker="|", ms=16, color=colour)
            if e.kind and e.box is None:  # place cannot be checked: located judges it on time alone
                ax.plot([e.t_start + 0.6], [y - 0.17], marker="$?$", ms=7, color="0.25")
        for a in rc["acts"]:
            colour = TYPE_COLOURS[a["kind"]]
            if a["located"] == "tp":
                ax.plot(a["t_notify"], y + 0.22, marker="v", ms=9, color=colour, mec="black")
            elif a["place"] == "wrong":
                ax.plot(a["t_notify"], y + 0.22, marker="s", ms=8, color=colour, mec="tab:orange", mew=2)
            elif a["located"] == "fp":
                ax.plot(a["t_notify"], y + 0.22, marker="X", ms=9, color=colour, mec="black", mew=0.5)
            else:
                ax.plot(a["t_notify"], y + 0.22, marker="v", ms=9, mfc="none", color=colour)
        for a in rc["other_acts"]:
            ax.plot(a["t_notify"], y - 0.22, marker="o", ms=4, color="0.45")
        lc = rc["located"]
        ax.text(
            0,
            y - 0.32,
            f"TP/FP/FN located {lc['tp']}/{lc['fp']}/{lc['fn']}, time only {rc['tp']}/{rc['fp']}/{rc['fn']}",
            fontsize=6.5,
            ha="left",
            va="center",
            color="0.35",
        )
    ax.set_yticks(range(n), [c.file for c in reversed(clips)], fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlim(-1, xmax + 1)
    ax.set_xlabel("video time (s)")
    o, t = result["located"], result["overall"]
    ax.set_title(
        f"Detected acts vs truth  (located: P {o['precision']:.2f}  R {o['recall']:.2f}  F1 {o['f1']:.2f};  "
        f"time only: F1 {t['f1']:.2f})",
        fontsize=10,
    )
    ax.grid(axis="x", color="0.92")
    handles = [
        Patch(color="tab:red", alpha=0.5, label="truth litter/abandon (shade: -5/+10 s window)"),
        Patch(color="tab:green", alpha=0.5, label="truth pickup"),
        Patch(color="0.5", alpha=0.35, label="unscored truth"),
        Line2D([], [], ls="", marker="$?$", ms=7, color="0.25", label="truth without a box (time only)"),
        Line2D([], [], ls="", marker="v", color="0.4", mec="black", label="act, located true positive"),
        Line2D([], [], ls="", marker="X", color="0.4", mec="black", label="act, false positive"),
        Line2D([], [], ls="", marker="s", color="0.4", mec="tab:orange", mew=2, label="act, right time, wrong place"),
        Line2D([], [], ls="", marker="v", mfc="none", color="0.4", label="act near unscored event"),
        Line2D([], [], ls="", marker="o", ms=4, color="0.45", label="act of a kind not scored"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=4, frameon=False)
    _save(plt, fig, path)


def render_delay_plot(result: dict[str, Any], path: Path) -> None:
    """Delay (notification - onset) of every match, one row per act type: located matches filled,
    matches in time only (wrong place) hollow, a box over the located quartiles, the window shaded."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(8, 2.6), layout="constrained")
    ax.axvspan(-WINDOW_BEFORE_S, WINDOW_AFTER_S, color="0.93", lw=0)
    ax.axvline(0, color="0.6", lw=1)
    for row, kind in enumerate(KINDS):
        y = len(KINDS) - 1 - row
        colour = TYPE_COLOURS[kind]
        pairs = [(c, m) for c in result["clips"] for m in c["located"]["matches"]]
        located = [m["delay_s"] for c, m in pairs if c["acts"][m["act"]]["kind"] == kind]
        time_only = [
            m["delay_s"]
            for c in result["clips"]
            for m in c["matches"]
            if c["acts"][m["act"]]["kind"] == kind and c["acts"][m["act"]]["place"] == "wrong"
        ]
        # Spread equal delays a little so every match shows (deterministic: same plot for the same result).
        jitter = [((i * 7) % 11 - 5) * 0.03 for i in range(len(located) + len(time_only))]
        if located:
            # Quartile box, median and range drawn by hand: boxplot's orientation argument changed
            # between the matplotlib versions we accept.
            q1, med, q3 = (float(v) for v in np.percentile(located, [25, 50, 75]))
            ax.add_patch(Rectangle((q1, y - 0.25), q3 - q1, 0.5, fill=False, ec="0.4", lw=1))
            ax.plot([min(located), q1], [y, y], color="0.4", lw=1)
            ax.plot([q3, max(located)], [y, y], color="0.4", lw=1)
            ax.plot([med, med], [y - 0.25, y + 0.25], color=colour, lw=2)
            ax.plot(located, [y + j for j in jitter[: len(located)]], ls="", marker="o", ms=6, color=colour)
        if time_only:
            ax.plot(
                time_only, [y + j for j in jitter[len(located) :]], ls="", marker="o", ms=6, mfc="none", color=colour
            )
        d = result["located"]["delays_by_type"][kind]
        label = f"median {d['median_s']:+.1f} s, n={d['count']}" if d["count"] else "no located match"
        ax.text(WINDOW_AFTER_S + 0.3, y, label, fontsize=7, va="center", color="0.3")
    ax.set_yticks(range(len(KINDS)), list(reversed(KINDS)), fontsize=8)
    ax.set_ylim(-0.6, len(KINDS) - 0.4)
    ax.set_xlim(-WINDOW_BEFORE_S - 0.5, WINDOW_AFTER_S + 3.5)
    ax.set_xlabel("delay: notification - true onset (s); shaded: the match window")
    ax.set_title("Delay per act type (filled: located match, hollow: right time, wrong place)", fontsize=9)
    ax.grid(axis="x", color="0.85")
    _save(plt, fig, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror}") from None
    finally:
        plt.close(fig)
