"""One bench run: check the inputs, run the clips, score them, and write JSON, report and plot."""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.bench.plot import render_delay_plot, render_plot
from detector.bench.report import render_report
from detector.bench.runner import ClipRun, run_clips
from detector.bench.scoring import (
    PLACE_GROWTH,
    WINDOW_AFTER_S,
    WINDOW_BEFORE_S,
    ClipScore,
    match_acts,
    place_labels,
    score_totals,
)
from detector.bench.truth import KINDS, SCORED_TYPES, TruthClip, load_truth, select_clips
from detector.config import Settings, load_settings
from detector.protocol.errors import UserError


@dataclass
class BenchOptions:
    """What `detector bench` was asked to do (the CLI fills it in)."""

    footage: Path  # directory holding the clips named in the truth file
    truth: Path
    json: Path
    config: Path | None = None
    model_dir: Path | None = None
    report: Path | None = None  # default: beside json, .md
    plot: Path | None = None  # default: beside json, .png
    delay_plot: Path | None = None  # default: beside json, .delays.png
    jobs: int | None = None  # default: min(clips, CPU count)
    clips: list[str] | None = None  # only these (file name, stem or short name)
    skip_missing: bool = False
    progress: bool | None = None  # None: a bar on a terminal only
    engine: str = "local"  # or "ray" (detector.audit.engines)
    address: str | None = None  # Ray cluster address (ray engine only)


@dataclass
class BenchOutput:
    result: dict[str, Any]
    json: Path
    report: Path
    plot: Path
    delay_plot: Path


def run(options: BenchOptions) -> BenchOutput:
    """Bench every selected clip of the truth file; write JSON, Markdown report and timeline plot."""
    truth = load_truth(options.truth)
    settings = load_settings(options.config)
    footage = Path(options.footage)
    if not footage.is_dir():
        raise UserError(f"{footage}: footage directory not found")
    if options.model_dir is not None and not Path(options.model_dir).is_dir():
        raise UserError(f"{options.model_dir}: model directory not found")
    if options.jobs is not None and options.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if options.address and options.engine != "ray":
        raise UserError("--address is for --engine ray")
    clips = select_clips(truth, options.clips)
    missing = [c.file for c in clips if not (footage / c.file).is_file()]
    if missing and not options.skip_missing:
        raise UserError(
            f"{footage}: {len(missing)} clip(s) of {options.truth} not found: {', '.join(missing)} "
            "(use --skip-missing to bench the rest)"
        )
    clips = [c for c in clips if c.file not in missing]
    if not clips:
        raise UserError(f"{footage}: none of the clips of {options.truth} is there")
    out_json = Path(options.json)
    report = Path(options.report) if options.report else out_json.with_suffix(".md")
    plot = Path(options.plot) if options.plot else out_json.with_suffix(".png")
    delay_plot = Path(options.delay_plot) if options.delay_plot else out_json.with_suffix(".delays.png")
    for p in (out_json, report, plot, delay_plot):
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{p}: cannot write: {e.strerror}") from None
    # Fail early on an unknown or missing model rather than in every worker.
    if options.model_dir is not None:
        os.environ["DETECTOR_MODEL_DIR"] = str(options.model_dir)
    from detector.models import resolve_model

    _, model_path = resolve_model(settings.detector.model, settings.detector.model_path)

    jobs = min(len(clips), options.jobs or os.cpu_count() or 1)
    t0 = time.perf_counter()
    runs = run_clips(
        [footage / c.file for c in clips],
        settings,
        jobs=jobs,
        model_dir=options.model_dir,
        progress=options.progress,
        engine=options.engine,
        address=options.address,
    )
    elapsed = time.perf_counter() - t0
    children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    result = build_result(
        clips,
        runs,
        truth_path=Path(options.truth),
        settings=settings,
        model_path=model_path,
        config_path=options.config,
        jobs=jobs,
        elapsed_s=elapsed,
        children_rss_mb=children_rss,
        skipped=missing,
    )
    images = {name: os.path.relpath(p, report.parent) for name, p in (("timeline", plot), ("delays", delay_plot))}
    try:
        out_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        report.write_text(render_report(result, images), encoding="utf-8")
    except OSError as e:
        raise UserError(f"{e.filename}: cannot write: {e.strerror}") from None
    render_plot(clips, result, plot)
    render_delay_plot(result, delay_plot)
    return BenchOutput(result, out_json, report, plot, delay_plot)


def build_result(
    clips: list[TruthClip],
    runs: list[ClipRun],
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
    """The bench's JSON: totals, per-clip outcomes and speed. `runs[i]` is the run of `clips[i]`."""
    scores, located_scores, scored_acts, per_clip = [], [], [], []
    time_only_events = []  # located judged these on time alone: their truth has no box
    for c, r in zip(clips, runs, strict=True):
        # Kinds the bench does not score are kept aside, listed per clip, never matched.
        acts = [a for a in r.acts if a.kind in KINDS]
        others = [a for a in r.acts if a.kind not in KINDS]
        s = match_acts(c.events, acts)
        loc = match_acts(c.events, acts, located=True)
        places = place_labels(c.events, acts, loc)
        scores.append(s)
        located_scores.append(loc)
        scored_acts.append(acts)
        time_only_events += [
            {"file": c.file, "event": i, "type": e.type, "t_start": e.t_start}
            for i, e in enumerate(c.events)
            if e.kind is not None and e.box is None
        ]
        total = s.total
        per_clip.append(
            {
                "file": c.file,
                "name": c.name,
                "acts": [
                    {**a.to_json(), "outcome": o, "located": lo, "place": pl}
                    for a, o, lo, pl in zip(acts, s.outcomes, loc.outcomes, places, strict=True)
                ],
                "tp": total.tp,
                "fp": total.fp,
                "fn": total.fn,
                "by_type": {k: s.by_kind[k].metrics() for k in KINDS},
                "matches": _matches_json(c, s),
                "missed": _missed_json(c, s),
                "delays_s": [round(d, 3) for d in s.delays],
                "located": {
                    "tp": loc.total.tp,
                    "fp": loc.total.fp,
                    "fn": loc.total.fn,
                    "by_type": {k: loc.by_kind[k].metrics() for k in KINDS},
                    "matches": _matches_json(c, loc),
                    "missed": _missed_json(c, loc),
                    "delays_s": [round(d, 3) for d in loc.delays],
                },
                "other_acts": [a.to_json() for a in others],
                "frames_analysed": r.frames,
                "video_s": round(r.video_s, 3),
                "wall_s": round(r.wall_s, 3),
                "setup_s": round(r.setup_s, 3),
                "frames_per_s": round(r.frames / r.wall_s, 2) if r.wall_s > 0 else None,
                "realtime_factor": round(r.video_s / r.wall_s, 2) if r.wall_s > 0 else None,
            }
        )
    totals = score_totals(scores, scored_acts)
    located = score_totals(located_scores, scored_acts)
    video = sum(r.video_s for r in runs)
    wall = sum(r.wall_s for r in runs)
    frames = sum(r.frames for r in runs)
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
            "located": f"the act's box touches the truth box grown by {PLACE_GROWTH:g} of its width and height "
            "on every side; events without a box are judged on time alone",
            "scored_kinds": list(KINDS),
        },
        # The headline: right time and right place.
        "located": {
            **located["overall"],
            "by_type": located["by_type"],
            "delays": located["delays"],
            "delays_by_type": located["delays_by_type"],
            "events_time_only": time_only_events,
        },
        # IWDD, time only.
        **totals,
        "speed": {
            "realtime_factor": round(video / wall, 2) if wall > 0 else None,
            "frames_per_s": round(frames / wall, 2) if wall > 0 else None,
            "frames_analysed": frames,
            "video_s": round(video, 3),
            "processing_s": round(wall, 3),
            "elapsed_s": round(elapsed_s, 3),
            "jobs": jobs,
            "peak_rss_mb": round(max([children_rss_mb, *(r.peak_rss_mb for r in runs)]), 1),
        },
        "clips": per_clip,
        "skipped": skipped,
    }


def _matches_json(clip: TruthClip, score: ClipScore) -> list[dict[str, Any]]:
    return [
        {
            "event": ei,
            "type": clip.events[ei].type,
            "t_start": clip.events[ei].t_start,
            "act": ai,
            "delay_s": round(d, 3),
        }
        for ei, ai, d in score.matches
    ]


def _missed_json(clip: TruthClip, score: ClipScore) -> list[dict[str, Any]]:
    return [{"event": ei, "type": clip.events[ei].type, "t_start": clip.events[ei].t_start} for ei in score.missed]
