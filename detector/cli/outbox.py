"""`detector outbox send | status`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="edge outbox: deliver pending events, show status")
    osub = p.add_subparsers(dest="outbox_cmd", metavar="{send,status}", required=True)
    s = osub.add_parser("send", help="deliver the outbox's pending events to a backend, retrying until acknowledged")
    s.add_argument("--db", type=Path, required=True, help="outbox SQLite file")
    s.add_argument("--url", required=True, help="backend base URL, e.g. http://127.0.0.1:8080")
    s.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    s.add_argument("--once", action="store_true", help="exit when nothing is pending")
    s.add_argument("--max-backoff", type=float, default=30.0, help="longest wait between retries, seconds (default 30)")
    st = osub.add_parser("status", help="count kept and pending events")
    st.add_argument("--db", type=Path, required=True)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector import outbox

    if args.outbox_cmd == "send":
        n, total, pending = outbox.send_pending(args.db, args.url, args.batch, args.once, args.max_backoff)
        print(f"delivered {n}; outbox holds {total} events, {pending} pending")
        return 0 if pending == 0 or not args.once else 1
    total, pending = outbox.outbox_counts(args.db)
    print(f"{args.db}: {total} events kept, {pending} pending")
    return 0
