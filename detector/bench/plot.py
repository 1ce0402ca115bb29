"""The timeline plot of a bench result: one row per clip, truth windows and detected acts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.bench.scoring import WINDOW_AFTER_S, WINDOW_BEFORE_S
from detector.bench.truth import TruthClip
from detector.protocol.errors import UserError

TYPE_COLOURS = {"littering": "tab:red", "cleanup": "tab:green"}


def render_plot(clips: list[TruthClip], result: dict[str, Any], path: Path) -> None:
    """One row per clip: truth windows and spans, detected acts (filled: TP, x: FP, hollow: ignored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
        for a in rc["acts"]:
            colour = TYPE_COLOURS[a["kind"]]
            if a["outcome"] == "tp":
                ax.plot(a["t_notify"], y + 0.22, marker="v", ms=9, color=colour, mec="black")
            elif a["outcome"] == "fp":
                ax.plot(a["t_notify"], y + 0.22, marker="X", ms=9, color=colour, mec="black", mew=0.5)
            else:
                ax.plot(a["t_notify"], y + 0.22, marker="v", ms=9, mfc="none", color=colour)
        ax.text(
            rc["video_s"], y - 0.3, f"TP {rc['tp']} FP {rc['fp']} FN {rc['fn']}", fontsize=7, ha="right", color="0.3"
        )
    ax.set_yticks(range(n), [c.file for c in reversed(clips)], fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlim(-1, xmax + 1)
    ax.set_xlabel("video time (s)")
    o = result["overall"]
    ax.set_title(
        f"Detected acts vs truth  (P {o['precision']:.2f}  R {o['recall']:.2f}  F1 {o['f1']:.2f})", fontsize=10
    )
    ax.grid(axis="x", color="0.92")
    handles = [
        Patch(color="tab:red", alpha=0.5, label="truth litter/abandon (shade: -5/+10 s window)"),
        Patch(color="tab:green", alpha=0.5, label="truth pickup"),
        Patch(color="0.5", alpha=0.35, label="unscored truth"),
        Line2D([], [], ls="", marker="v", color="0.4", mec="black", label="act, true positive"),
        Line2D([], [], ls="", marker="X", color="0.4", mec="black", label="act, false positive"),
        Line2D([], [], ls="", marker="v", mfc="none", color="0.4", label="act near unscored event"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=3, frameon=False)
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror}") from None
    finally:
        plt.close(fig)
