"""`detector backend serve | revoke`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backend", help="scoring backend: serve the API, revoke keys, accept a chain gap")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="{serve,revoke,accept-gap}", required=True)
    s = bsub.add_parser("serve", help="run the HTTP API (see configs/backend.example.yaml)")
    s.add_argument("--config", type=Path, required=True, help="backend YAML config")
    s.add_argument("--host", default=None, help="override listen.host")
    s.add_argument("--port", type=int, default=None, help="override listen.port")
    r = bsub.add_parser("revoke", help="revoke a camera key id in the backend's store")
    r.add_argument("keyid", help="16 hex digits, as printed by `detector keys generate`")
    r.add_argument("--config", type=Path, required=True, help="backend YAML config")
    r.add_argument("--reason", default="", help="free text kept with the revocation")
    g = bsub.add_parser(
        "accept-gap",
        help="let a camera's next event continue its chain past lost events (audited; effective at once)",
        description="For a chain that cannot continue: the edge lost undelivered events (seq_gap), started its "
        "chain again from a kept head (prevhash_mismatch), or the ledger was restored from an older backup. "
        "The next event of the source may then skip to a later seq or carry a prevhash that does not match; "
        "the gap is kept with its reason (GET /v1/sources).",
    )
    g.add_argument("sources", nargs="*", help="/sites/<site>/cameras/<camera>")
    g.add_argument("--config", type=Path, required=True, help="backend YAML config")
    g.add_argument("--reason", required=True, help="why (kept with the gap)")
    g.add_argument("--next-seq", type=int, default=None, help="the seq the next event must carry (default: any later)")
    g.add_argument("--all-behind", action="store_true", help="every source the ledger is behind the kept heads for")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector.backend import app
    from detector.backend.config import load_backend_config

    backend = load_backend_config(args.config)
    if args.backend_cmd == "serve":
        host = args.host or backend.config.listen.host
        port = backend.config.listen.port if args.port is None else args.port
        print(
            f"detector backend: {len(backend.keys)} sources, ledger {backend.db_path}, http://{host}:{port}", flush=True
        )
        app.serve(backend, host, port)
        return 0
    if args.backend_cmd == "accept-gap":
        gaps = app.accept_gap(backend, args.sources, args.next_seq, args.reason, args.all_behind)
        for g in gaps:
            after = f"seq {g.next_seq}" if g.next_seq is not None else "any later seq"
            print(f"{g.source}: gap accepted (#{g.id}); its next event may carry {after}")
        return 0
    new = app.revoke(backend, args.keyid, args.reason)
    print(f"key {args.keyid} {'revoked' if new else 'was already revoked'} in {backend.db_path}")
    return 0
