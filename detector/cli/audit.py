"""`detector audit PATH... --out DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="run the pipeline over many recordings (this box or a Ray cluster) and summarise",
        description="Run the camera pipeline on every recording named (files, folders, glob patterns) and "
        "write, per recording, its acts (and signed events, annotated video), plus one summary for the run "
        "(summary.md, a self-contained summary.html, summary.json). Long recordings are split into "
        "segments processed in parallel. Rerunning with the same --out skips what is done. The outputs are "
        "byte-identical whatever the engine and the number of jobs.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="video file, folder (walked recursively) or glob pattern")
    p.add_argument("--out", type=Path, required=True, help="output folder (also where a rerun resumes from)")
    p.add_argument("--config", type=Path, default=None, help="YAML pipeline settings (see configs/camera.example.yaml)")
    p.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local worker processes (default) or Ray"
    )
    p.add_argument("--jobs", type=int, default=None, help="workers (default: this box's CPUs, or the Ray cluster's)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster: 'auto' (this machine's), or ray://HOST:PORT; default: start a Ray here for this run",
    )
    p.add_argument("--video", action="store_true", help="also write an annotated video per recording (faces blurred)")
    p.add_argument("--key", type=Path, default=None, help="camera private key: also write signed audit events")
    p.add_argument("--camera", default=None, help="camera name for the acts and events (default: the config's)")
    p.add_argument(
        "--start-time",
        default=None,
        help="wall-clock time of the first recording's first frame (RFC 3339); the others follow back to back "
        "in path order. Default: each file's own start time from its container",
    )
    p.add_argument(
        "--segment-minutes",
        type=float,
        default=15.0,
        help="split recordings into segments of about this length, processed in parallel (default: 15)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector.audit import AuditOptions, run
    from detector.cli.replay import parse_time
    from detector.protocol.errors import UserError

    if args.address and args.engine != "ray":
        raise UserError("--address is for --engine ray")
    outcome = run(
        AuditOptions(
            paths=args.paths,
            out=args.out,
            config=args.config,
            engine=args.engine,
            jobs=args.jobs,
            address=args.address,
            video=args.video,
            key=args.key,
            camera=args.camera,
            start_time=parse_time(args.start_time) if args.start_time else None,
            segment_minutes=args.segment_minutes,
            progress=sys.stderr.isatty() and not args.no_progress,
        )
    )
    ok = [r for r in outcome.recordings if r.status == "ok" and r.record]
    acts = [a for r in ok for a in r.record["acts"]]
    hours = sum(r.record["video_s"] for r in ok) / 3600
    rate = f", {outcome.video_s_this_run / outcome.wall_s:.1f} h of video per wall hour" if outcome.wall_s else ""
    print(
        f"{len(outcome.recordings)} recordings ({outcome.done_before} done before, {outcome.failed} unreadable), "
        f"{hours:.2f} h of video: {sum(a['kind'] == 'littering' for a in acts)} littering, "
        f"{sum(a['kind'] == 'cleanup' for a in acts)} clean-up acts{rate} -> {outcome.out / 'summary.html'}"
    )
    return 1 if outcome.failed else 0
