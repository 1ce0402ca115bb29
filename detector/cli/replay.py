"""`detector replay CLIP`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from detector.protocol.errors import UserError


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run the pipeline on a recorded clip",
        description="Run detection and tracking on a clip (a path, or a sample name from "
        "`detector samples list`) and write an annotated video and logs.",
    )
    p.add_argument("clip", help="video file (mp4, avi, gif, ...) or sample name")
    p.add_argument("--config", type=Path, default=None, help="YAML settings (see configs/camera.example.yaml)")
    p.add_argument("--video", type=Path, default=None, help="write an annotated MP4 here")
    p.add_argument("--tracks", type=Path, default=None, help="write per-frame tracks as JSON lines here")
    p.add_argument("--acts", type=Path, default=None, help="write recognised acts as JSON lines here")
    p.add_argument("--events", type=Path, default=None, help="write signed events as JSON lines here (needs --key)")
    p.add_argument("--key", type=Path, default=None, help="camera private key for --events")
    p.add_argument(
        "--start-time",
        default=None,
        help="wall-clock time of the clip's first frame (RFC 3339), for event times; default: the clip's own "
        "creation_time (MP4, MOV, MKV), and --events needs one or the other",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(handler=_run)


def parse_time(text: str, option: str = "--start-time") -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{option}: not an RFC 3339 time: {text!r}") from None
    if when.tzinfo is None:
        raise UserError(f"{option}: give a time zone (e.g. {text}Z)")
    return when


def _run(args: argparse.Namespace) -> int:
    from detector import replay

    options = replay.ReplayOptions(
        clip=args.clip,
        config=args.config,
        video=args.video,
        tracks=args.tracks,
        acts=args.acts,
        events=args.events,
        key=args.key,
        start_time=parse_time(args.start_time) if args.start_time is not None else None,
        progress=sys.stderr.isatty() and not args.no_progress,
    )
    stats = replay.run(options)
    print(
        f"{stats.clip.name}: {stats.frames_analysed} frames analysed, {stats.video_s:.1f} s of video in "
        f"{stats.wall_s:.1f} s ({stats.realtime_factor:.1f}x real time, {stats.frames_per_s:.1f} analysed "
        f"frames/s), {sum(a.is_act for a in stats.acts)} acts"
        + (f" (+{other} litter found or vanished)" if (other := sum(not a.is_act for a in stats.acts)) else "")
    )
    if stats.start_time_from == "container":
        print(f"event times count from the clip's creation_time, {stats.start_time.isoformat()} (see --start-time)")
    return 0
