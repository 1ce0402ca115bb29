"""Command line: argument parsing and printing only; every command calls into library code
that returns values.

One module per command group, each with `add(subparsers)` registering its parser and handler.
Handlers import their library modules lazily so that `detector --help` stays fast and an edge
box never imports what it does not run (a backend-only install has no OpenCV, and the reverse).
"""

from __future__ import annotations

import argparse
import os
import sys

from detector import __version__
from detector.cli import assets, audit, backend, bench, keys, outbox, replay, run, verify
from detector.protocol.errors import UserError

GROUPS = [
    replay.add,
    assets.add_models,
    assets.add_samples,
    bench.add,
    audit.add,
    keys.add,
    backend.add,
    verify.add,
    outbox.add,
    run.add,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Littering and clean-up act detector for fixed cameras. It detects acts, never people.",
    )
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in GROUPS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # FFmpeg and OpenCV print their own multi-line warnings for bad files; our one-line
    # errors say the same thing. Set before cv2 is first imported (handlers import lazily).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as e:
        print(f"detector: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
