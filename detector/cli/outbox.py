"""`detector outbox send | status | retry | resign | adopt-head | skip`.

Exit codes of `send` and `status`: 0 all well; 1 events still pending because the backend
could not be reached (`send --once`); 3 a chain is blocked by a permanent refusal (or, for
`status`, the outbox is behind its kept chain head); 2 bad input (UserError).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

BLOCKED_EXIT = 3


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="edge outbox: deliver pending events, show status, recover a blocked chain")
    osub = p.add_subparsers(dest="outbox_cmd", metavar="{send,status,retry,resign,adopt-head,skip}", required=True)
    s = osub.add_parser(
        "send",
        help="deliver the outbox's pending events to a backend, retrying until acknowledged",
        description="Exit 0: nothing left pending; 1 (--once): the backend could not be reached; "
        "3: a chain is blocked by a permanent refusal (see `outbox status`).",
    )
    s.add_argument("--db", type=Path, required=True, help="outbox SQLite file (must exist)")
    s.add_argument("--url", required=True, help="backend base URL, e.g. http://127.0.0.1:8080")
    s.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    s.add_argument("--once", action="store_true", help="exit when nothing is pending, or when the backend is away")
    s.add_argument("--attempts", type=int, default=5, help="--once: failed tries in a row before giving up (default 5)")
    s.add_argument("--max-backoff", type=float, default=30.0, help="longest wait between retries, seconds (default 30)")

    st = osub.add_parser("status", help="pending and delivered events, blocked chains and why, the kept chain head")
    st.add_argument("--db", type=Path, required=True)

    r = osub.add_parser(
        "retry", help="let a blocked chain be sent again (after fixing the cause, e.g. a key registered)"
    )
    r.add_argument("--db", type=Path, required=True)
    r.add_argument("--source", default=None, help="the chain (default: the outbox's only one)")
    r.add_argument("--note", default="", help="kept in the outbox journal")

    rs = osub.add_parser(
        "resign",
        help="re-sign the undelivered events under a new key registered for this camera (audited)",
        description="For a chain refused because its key is revoked or lost: the undelivered events keep their ids, "
        "seqs, times and data and get signatures of KEY; the first links to the last event the backend "
        "acknowledged, so the chain goes on and the backend records the key change. Stop the camera's worker first "
        "and put KEY where the worker reads its key.",
    )
    rs.add_argument("--db", type=Path, required=True)
    rs.add_argument("--key", type=Path, required=True, help="the new private key (`detector keys generate`)")
    rs.add_argument("--reason", required=True, help="why (kept in the outbox journal)")
    rs.add_argument("--source", default=None)

    a = osub.add_parser(
        "adopt-head",
        help="continue a chain after its kept head (an outbox restored from an old copy, or lost)",
        description="The events the outbox lost are gone: if the backend had them all, the chain goes on; "
        "otherwise its admin accepts the gap (`detector backend accept-gap`).",
    )
    a.add_argument("--db", type=Path, required=True)
    a.add_argument("--reason", required=True, help="why (kept in the outbox journal)")
    a.add_argument(
        "--head",
        type=Path,
        default=None,
        help="the kept head file (<key_dir>/<camera>.head; default: as the outbox records)",
    )
    a.add_argument("--after-seq", type=int, default=None, help="when no head is kept: continue after this seq")
    a.add_argument("--source", default=None)

    k = osub.add_parser(
        "skip",
        help="abandon undelivered events that can never be accepted (audited); the backend must accept the gap",
    )
    k.add_argument("--db", type=Path, required=True)
    k.add_argument("--through", type=int, required=True, help="abandon undelivered events up to this seq")
    k.add_argument("--reason", required=True, help="why (kept in the outbox journal)")
    k.add_argument("--source", default=None)
    p.set_defaults(handler=_run)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _run(args: argparse.Namespace) -> int:
    from detector import outbox
    from detector.protocol import keys

    cmd = args.outbox_cmd
    if cmd == "send":
        res = outbox.send_pending(args.db, args.url, args.batch, args.once, args.max_backoff, args.attempts)
        print(f"delivered {res.delivered}; outbox holds {res.total} events, {res.pending} pending")
        for b in res.blocked:
            print(f"BLOCKED {b.source} at seq {b.seq}: {b.reason}: {b.detail}")
            print(f"  what to do: {outbox.recovery_hint(b.reason)}")
        if res.blocked:
            return BLOCKED_EXIT
        if res.unreachable is not None:
            print(f"backend not reached: {res.unreachable}")
            return 1
        return 0 if res.pending == 0 or not args.once else 1
    if cmd == "status":
        st = outbox.outbox_status(args.db)
        print(f"{st.path}: {st.total} events kept, {st.pending} pending")
        if st.behind is not None:
            head, have = st.behind
            print(
                f"BEHIND its kept chain head: {head.source} at seq {have}, the head kept beside the key is {head.seq}; "
                "nothing is signed or sent until it is restored or `detector outbox adopt-head` continues the chain"
            )
        for b in st.blocked:
            print(
                f"BLOCKED {b.source} at seq {b.seq} (event {b.event_id}) since {_when(b.since)}: {b.reason}: {b.detail}"
            )
            print(f"  what to do: {outbox.recovery_hint(b.reason)}")
        for at, source, action, detail in st.journal:
            print(f"journal {_when(at)} {action} {source}: {detail}")
        return BLOCKED_EXIT if st.blocked or st.behind else 0
    if cmd == "retry":
        ob = outbox.Outbox(args.db)
        try:
            b = ob.unblock(args.source, args.note)
        finally:
            ob.close()
        print(
            f"{args.db}: " + (f"{b.source} unblocked (was {b.reason} at seq {b.seq})" if b else "nothing was blocked")
        )
        return 0
    if cmd == "resign":
        key = keys.load_private_key(args.key)
        ob = outbox.Outbox(args.db)
        try:
            n = ob.resign(key, args.reason, args.source)
        finally:
            ob.close()
        print(f"{args.db}: {n} undelivered events re-signed under key {keys.keyid(key)}; register it with the backend")
        return 0
    if cmd == "adopt-head":
        # with --head the outbox may have vanished altogether: a new one continues the chain
        ob = outbox.Outbox(args.db, head_file=args.head, create=args.head is not None, check=False)
        try:
            state = ob.adopt_head(args.reason, args.after_seq, args.source)
        finally:
            ob.close()
        print(f"{args.db}: the chain continues after seq {state.seq}")
        return 0
    ob = outbox.Outbox(args.db)
    try:
        n = ob.skip(args.through, args.reason, args.source)
    finally:
        ob.close()
    print(f"{args.db}: {n} undelivered events abandoned; the backend's admin must accept the gap")
    return 0
