"""`detector bench DIR --truth TRUTH.yaml`: accuracy and speed against ground truth.

Scoring follows the IWDD contest (Mivia-IWDD): a detected act matches a truth event of
its kind when its notification time lies in [t_start - 5 s, t_start + 10 s] (both edges
inclusive, with a 1 µs tolerance for float rounding). Matching is one-to-one and optimal:
scipy's `linear_sum_assignment` maximises the number of matches and, among those, minimises
the total |delay|. A second act on an already matched event is a false positive.

Truth types: `litter` and `abandon` score against `littering`, `pickup` against `cleanup`.
Events with `scored: false` and informational types (`place`, `drop`, anything else) are
unscored: an act in their window that matched no scored event is "ignored" (neither TP
nor FP), and they are never misses.

Zero cases: precision = 1.0 when nothing was detected (no false alarm was made), recall =
1.0 when there was nothing to find, F1 = 0.0 when precision + recall = 0. So a negative
clip with no detections scores 1/1/1, never NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.optimize import linear_sum_assignment

from detector.config import Settings, load_settings, load_yaml
from detector.protocol.errors import UserError

WINDOW_BEFORE_S = 5.0
WINDOW_AFTER_S = 10.0
_EPS = 1e-6
KINDS = ("littering", "cleanup")
# Scored truth types and the act kind each one is matched against.
SCORED_TYPES = {"litter": "littering", "abandon": "littering", "pickup": "cleanup"}
# Informational types: never scored, but a nearby act of this kind is not a false alarm.
INFO_TYPES = {"place": "littering", "drop": "littering"}


# -- truth file ----------------------------------------------------------------------------


class TruthEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # annotators add notes, confidence, ...

    type: str = Field(
        min_length=1, description="litter | abandon | pickup (scored); place | drop | ... (informational)"
    )
    t_start: float = Field(ge=0, description="onset in seconds of video from the first frame")
    t_end: float | None = Field(None, ge=0, description="end of the act")
    scored: bool = Field(True, description="false: counts neither way")
    where: dict[str, Any] | None = Field(None, description="box [x1, y1, x2, y2] and/or desc")

    @model_validator(mode="after")
    def _end_after_start(self) -> TruthEvent:
        if self.t_end is not None and self.t_end < self.t_start:
            raise ValueError(f"t_end {self.t_end} is before t_start {self.t_start}")
        return self

    @property
    def kind(self) -> str | None:
        """The act kind this event scores against, or None when unscored."""
        return SCORED_TYPES.get(self.type) if self.scored else None

    @property
    def absorbs(self) -> set[str]:
        """Act kinds that are not false alarms near this unscored event (unknown types: both)."""
        k = SCORED_TYPES.get(self.type) or INFO_TYPES.get(self.type)
        return {k} if k else set(KINDS)


class TruthClip(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    file: str = Field(min_length=1, description="file name inside the footage directory")
    name: str | None = Field(None, description="short name (sample manifest)")
    events: list[TruthEvent] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _null_events(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("events") is None:
            data = {**data, "events": []}
        return data


class TruthFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    clips: list[TruthClip]


def load_truth(path: Path) -> TruthFile:
    """Read and validate a truth file; every problem becomes a one-line UserError."""
    if not Path(path).is_file():
        raise UserError(f"{path}: truth file not found")
    raw = load_yaml(path)
    if not isinstance(raw, dict) or "clips" not in raw:
        raise UserError(f"{path}: expected a mapping with a 'clips' list")
    try:
        truth = TruthFile.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = list(first["loc"])
        # Name the clip by its file rather than its index where possible.
        if len(loc) >= 2 and loc[0] == "clips" and isinstance(loc[1], int) and isinstance(raw["clips"][loc[1]], dict):
            loc[1] = raw["clips"][loc[1]].get("file", loc[1])
        key = ".".join(str(p) for p in loc) or "(top level)"
        raise UserError(f"{path}: {key}: {first['msg']}") from None
    files = [c.file for c in truth.clips]
    dupes = sorted({f for f in files if files.count(f) > 1})
    if dupes:
        raise UserError(f"{path}: clip listed twice: {', '.join(dupes)}")
    return truth


# -- matching ------------------------------------------------------------------------------


class ActLike(Protocol):
    kind: str
    t_notify: float


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def metrics(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, **prf(self.tp, self.fp, self.fn)}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 with the zero cases defined in the module docstring."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@dataclass
class ClipScore:
    """Outcome of matching one clip's acts against its truth events.

    `matches` holds (event index, act index, delay s); `outcomes[i]` is 'tp', 'fp' or
    'ignored' for act i; `missed` lists the indices of unmatched scored events.
    """

    by_kind: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    matches: list[tuple[int, int, float]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    @property
    def total(self) -> Counts:
        c = Counts()
        for k in KINDS:
            c.add(self.by_kind[k])
        return c

    @property
    def delays(self) -> list[float]:
        return [d for _, _, d in self.matches]


def in_window(t_notify: float, t_start: float) -> bool:
    delay = t_notify - t_start
    return -WINDOW_BEFORE_S - _EPS <= delay <= WINDOW_AFTER_S + _EPS


def match_acts(truth_events: Sequence[TruthEvent], acts: Sequence[ActLike]) -> ClipScore:
    score = ClipScore(outcomes=["fp"] * len(acts))
    scored = [i for i, e in enumerate(truth_events) if e.kind is not None]
    if scored and acts:
        # Infeasible pairs cost more than any set of feasible ones (each <= 10 s), so the
        # assignment first maximises the number of matches, then minimises total |delay|.
        big = 1e6
        cost = np.full((len(scored), len(acts)), big)
        for r, ei in enumerate(scored):
            ev = truth_events[ei]
            for c, act in enumerate(acts):
                if act.kind == ev.kind and in_window(act.t_notify, ev.t_start):
                    cost[r, c] = abs(act.t_notify - ev.t_start)
        for r, c in zip(*linear_sum_assignment(cost)):
            if cost[r, c] < big:
                ei = scored[r]
                score.matches.append((ei, int(c), acts[c].t_notify - truth_events[ei].t_start))
                score.outcomes[c] = "tp"
        score.matches.sort()
    matched_events = {ei for ei, _, _ in score.matches}
    unscored = [e for e in truth_events if e.kind is None]
    for c, act in enumerate(acts):
        if score.outcomes[c] == "fp" and any(
            act.kind in e.absorbs and in_window(act.t_notify, e.t_start) for e in unscored
        ):
            score.outcomes[c] = "ignored"
    for c, act in enumerate(acts):
        if act.kind not in score.by_kind:
            raise ValueError(f"unknown act kind {act.kind!r}")
        if score.outcomes[c] == "tp":
            score.by_kind[act.kind].tp += 1
        elif score.outcomes[c] == "fp":
            score.by_kind[act.kind].fp += 1
    for ei in scored:
        if ei not in matched_events:
            score.missed.append(ei)
            score.by_kind[truth_events[ei].kind].fn += 1
    return score


def score_totals(scores: Sequence[ClipScore]) -> dict[str, Any]:
    """Micro-averaged totals: counts summed over clips, then precision/recall/F1."""
    overall = Counts()
    by_kind = {k: Counts() for k in KINDS}
    delays: list[float] = []
    for s in scores:
        for k in KINDS:
            by_kind[k].add(s.by_kind[k])
            overall.add(s.by_kind[k])
        delays.extend(s.delays)
    return {
        "overall": overall.metrics(),
        "by_type": {k: c.metrics() for k, c in by_kind.items()},
        "delays": _delay_stats(delays),
    }


def _delay_stats(delays: list[float]) -> dict[str, float | int | None]:
    if not delays:
        return {"count": 0, "mean_s": None, "median_s": None, "min_s": None, "max_s": None}
    return {
        "count": len(delays),
        "mean_s": round(statistics.fmean(delays), 3),
        "median_s": round(statistics.median(delays), 3),
        "min_s": round(min(delays), 3),
        "max_s": round(max(delays), 3),
    }


# -- running clips in worker processes -------------------------------------------------------


@dataclass
class ActRecord:
    """What the bench keeps of an act (the matcher needs kind and t_notify)."""

    kind: str
    t_notify: float
    t_release: float
    box: list[int]
    object_class: str

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "t_notify": round(self.t_notify, 3),
            "t_release": round(self.t_release, 3),
            "box": self.box,
            "class": self.object_class,
        }


@dataclass
class ClipRun:
    file: str
    acts: list[ActRecord]
    frames: int
    video_s: float
    wall_s: float
    setup_s: float
    peak_rss_mb: float


def _init_worker(model_dir: str | None) -> None:
    if model_dir:
        os.environ["DETECTOR_MODEL_DIR"] = model_dir
    import cv2

    # Parallelism comes from the process pool; onnxruntime threads come from the config
    # (detector.threads), so keep OpenCV from adding its own thread pool on top.
    cv2.setNumThreads(1)


def run_clip(path: str, settings_data: dict) -> ClipRun:
    """Run the pipeline on one clip (in a worker process) and keep its acts and timings."""
    from detector.pipeline import Pipeline
    from detector.replay import iterate
    from detector.sources import FileSource

    settings = Settings.model_validate(settings_data)
    clip = Path(path)
    t0 = time.perf_counter()
    pipeline = Pipeline(settings)  # model load is setup, not per-frame speed
    t1 = time.perf_counter()
    acts: list[ActRecord] = []
    frames = 0
    last_t = 0.0
    for result in iterate(clip, settings, pipeline):
        frames += 1
        last_t = result.frame.time_s
        acts.extend(
            ActRecord(a.kind, float(a.t_notify), float(a.t_release), [int(v) for v in a.box], a.object_class)
            for a in result.acts
        )
    wall = time.perf_counter() - t1
    # Video time covered: the header duration (capped by max_seconds), or the last frame's time.
    estimate = FileSource(clip, None).duration_estimate_s
    if settings.source.max_seconds is not None:
        estimate = min(estimate, settings.source.max_seconds)
    video_s = max(last_t, estimate)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ClipRun(clip.name, acts, frames, video_s, wall, t1 - t0, rss_mb)


# -- command ---------------------------------------------------------------------------------


def _select(truth: TruthFile, names: list[str] | None) -> list[TruthClip]:
    if not names:
        return list(truth.clips)
    out = []
    for n in names:
        found = [c for c in truth.clips if n in (c.file, c.name, Path(c.file).stem)]
        if not found:
            raise UserError(f"--clips: '{n}' is not in the truth file")
        out.extend(c for c in found if c not in out)
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    truth = load_truth(args.truth)
    settings = load_settings(args.config)
    footage = Path(args.dir)
    if not footage.is_dir():
        raise UserError(f"{footage}: footage directory not found")
    if args.model_dir is not None and not Path(args.model_dir).is_dir():
        raise UserError(f"{args.model_dir}: model directory not found")
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    clips = _select(truth, args.clips)
    missing = [c.file for c in clips if not (footage / c.file).is_file()]
    if missing and not args.skip_missing:
        raise UserError(
            f"{footage}: {len(missing)} clip(s) of {args.truth} not found: {', '.join(missing)} "
            "(use --skip-missing to bench the rest)"
        )
    clips = [c for c in clips if c.file not in missing]
    if not clips:
        raise UserError(f"{footage}: none of the clips of {args.truth} is there")
    out_json = Path(args.json)
    report = Path(args.report) if args.report else out_json.with_suffix(".md")
    plot = Path(args.plot) if args.plot else out_json.with_suffix(".png")
    for p in (out_json, report, plot):
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{p}: cannot write: {e.strerror}") from None
    # Fail early on an unknown or missing model rather than in every worker.
    if args.model_dir is not None:
        os.environ["DETECTOR_MODEL_DIR"] = str(args.model_dir)
    from detector.models import resolve_model

    _, model_path = resolve_model(settings.detector.model, settings.detector.model_path)

    jobs = min(len(clips), args.jobs or os.cpu_count() or 1)
    settings_data = settings.model_dump(mode="json")
    runs: dict[str, ClipRun] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=len(clips), unit="clip", desc="bench", disable=not sys.stderr.isatty(), file=sys.stderr)
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(str(args.model_dir) if args.model_dir else None,)
    ) as pool:
        futures = {pool.submit(run_clip, str(footage / c.file), settings_data): c for c in clips}
        try:
            for fut in as_completed(futures):
                r = fut.result()
                runs[r.file] = r
                bar.set_postfix_str(r.file, refresh=False)
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
    elapsed = time.perf_counter() - t0
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    result = build_result(
        clips,
        runs,
        truth_path=Path(args.truth),
        settings=settings,
        model_path=model_path,
        config_path=args.config,
        jobs=jobs,
        elapsed_s=elapsed,
        children_rss_mb=children_rss,
        skipped=missing,
    )
    out_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    report.write_text(render_report(result), encoding="utf-8")
    render_plot(clips, result, plot)
    o = result["overall"]
    print(
        f"{len(clips)} clips: TP {o['tp']} FP {o['fp']} FN {o['fn']}  precision {o['precision']:.2f} "
        f"recall {o['recall']:.2f} F1 {o['f1']:.2f}  {result['speed']['realtime_factor']:.1f}x real time  -> {out_json}"
    )
    return 0


def build_result(
    clips: list[TruthClip],
    runs: dict[str, ClipRun],
    *,
    truth_path: Path,
    settings: Settings,
    model_path: Path,
    config_path: Path | None,
    jobs: int,
    elapsed_s: float,
    children_rss_mb: float,
    skipped: list[str],
) -> dict[str, Any]:
    scores = []
    per_clip = []
    for c in clips:
        r = runs[c.file]
        s = match_acts(c.events, r.acts)
        scores.append(s)
        total = s.total
        per_clip.append(
            {
                "file": c.file,
                "name": c.name,
                "acts": [{**a.to_json(), "outcome": o} for a, o in zip(r.acts, s.outcomes)],
                "tp": total.tp,
                "fp": total.fp,
                "fn": total.fn,
                "by_type": {k: s.by_kind[k].metrics() for k in KINDS},
                "matches": [
                    {
                        "event": ei,
                        "type": c.events[ei].type,
                        "t_start": c.events[ei].t_start,
                        "act": ai,
                        "delay_s": round(d, 3),
                    }
                    for ei, ai, d in s.matches
                ],
                "missed": [
                    {"event": ei, "type": c.events[ei].type, "t_start": c.events[ei].t_start} for ei in s.missed
                ],
                "delays_s": [round(d, 3) for d in s.delays],
                "frames_analysed": r.frames,
                "video_s": round(r.video_s, 3),
                "wall_s": round(r.wall_s, 3),
                "setup_s": round(r.setup_s, 3),
                "frames_per_s": round(r.frames / r.wall_s, 2) if r.wall_s > 0 else None,
                "realtime_factor": round(r.video_s / r.wall_s, 2) if r.wall_s > 0 else None,
            }
        )
    totals = score_totals(scores)
    video = sum(r.video_s for r in runs.values())
    wall = sum(r.wall_s for r in runs.values())
    frames = sum(r.frames for r in runs.values())
    return {
        "truth": str(truth_path),
        "config": {
            "path": str(config_path) if config_path else None,
            "model": settings.detector.model,
            "model_file": model_path.name,
            "settings": settings.model_dump(mode="json"),
        },
        "matching": {
            "window_s": [-WINDOW_BEFORE_S, WINDOW_AFTER_S],
            "edges": "inclusive",
            "assignment": "optimal (scipy linear_sum_assignment, max matches then min |delay|)",
            "types": SCORED_TYPES,
        },
        **totals,
        "speed": {
            "realtime_factor": round(video / wall, 2) if wall > 0 else None,
            "frames_per_s": round(frames / wall, 2) if wall > 0 else None,
            "frames_analysed": frames,
            "video_s": round(video, 3),
            "processing_s": round(wall, 3),
            "elapsed_s": round(elapsed_s, 3),
            "jobs": jobs,
            "peak_rss_mb": round(max([children_rss_mb, *(r.peak_rss_mb for r in runs.values())]), 1),
        },
        "clips": per_clip,
        "skipped": skipped,
    }


# -- report and plot -------------------------------------------------------------------------


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
