"""`detector verify EVENTS.jsonl --pubkey KEY`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check the signatures and hash chain of an events JSON-lines file")
    p.add_argument("events", type=Path, help="events file written by `detector replay --events`")
    p.add_argument(
        "--pubkey",
        required=True,
        action="append",
        help="camera public key (PEM file or inline base64); repeat for a chain re-signed under a new key",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector.protocol.verify import verify_file

    verdict = verify_file(args.events, args.pubkey)
    print(verdict.line)
    return 0 if verdict.ok else 1
