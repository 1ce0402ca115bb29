"""`detector backend serve | revoke`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backend", help="scoring backend: serve the API, revoke keys")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="{serve,revoke}", required=True)
    s = bsub.add_parser("serve", help="run the HTTP API (see configs/backend.example.yaml)")
    s.add_argument("--config", type=Path, required=True, help="backend YAML config")
    s.add_argument("--host", default=None, help="override listen.host")
    s.add_argument("--port", type=int, default=None, help="override listen.port")
    r = bsub.add_parser("revoke", help="revoke a camera key id in the backend's store")
    r.add_argument("keyid", help="16 hex digits, as printed by `detector keys generate`")
    r.add_argument("--config", type=Path, required=True, help="backend YAML config")
    r.add_argument("--reason", default="", help="free text kept with the revocation")
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
    new = app.revoke(backend, args.keyid, args.reason)
    print(f"key {args.keyid} {'revoked' if new else 'was already revoked'} in {backend.db_path}")
    return 0
