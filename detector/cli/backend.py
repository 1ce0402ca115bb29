"""`detector backend serve | keys add|list|revoke | users add|list|disable | accept-gap` (and
`revoke`, kept as the short form of `keys revoke`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="backend YAML config")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backend", help="scoring backend: serve the API and dashboard, camera keys, users")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="{serve,keys,users,accept-gap,revoke}", required=True)
    s = bsub.add_parser("serve", help="run the HTTP API and dashboard (see configs/backend.example.yaml)")
    _config(s)
    s.add_argument("--host", default=None, help="override listen.host")
    s.add_argument("--port", type=int, default=None, help="override listen.port")

    k = bsub.add_parser("keys", help="camera keys in the backend's database (no restart needed)")
    ksub = k.add_subparsers(dest="keys_cmd", metavar="{add,list,revoke}", required=True)
    ka = ksub.add_parser("add", help="register a camera's public key for its source")
    ka.add_argument("source", help="/sites/<site>/cameras/<camera>")
    ka.add_argument("pubkey", help="public key: a PEM file (`detector keys generate` writes NAME.pub) or inline base64")
    _config(ka)
    kl = ksub.add_parser("list", help="registered keys and revocations")
    _config(kl)
    kr = ksub.add_parser("revoke", help="refuse a key id from now on (every backend process, at once)")
    kr.add_argument("keyid", help="16 hex digits, as printed by `detector keys generate`")
    kr.add_argument("--reason", default="", help="free text kept with the revocation")
    _config(kr)

    u = bsub.add_parser("users", help="people who read the API and dashboard (API keys with roles)")
    usub = u.add_subparsers(dest="users_cmd", metavar="{add,list,disable}", required=True)
    ua = usub.add_parser("add", help="create a user; prints its API key once, alone on the last line")
    ua.add_argument("name", help="1-64 of A-Z a-z 0-9 _ . @ -")
    ua.add_argument(
        "--role",
        required=True,
        choices=["viewer", "operator", "admin"],
        help="viewer reads; operator voids; admin keys",
    )
    _config(ua)
    ul = usub.add_parser("list", help="users and their roles")
    _config(ul)
    ud = usub.add_parser("disable", help="disable a user's key and end its sessions")
    ud.add_argument("name")
    _config(ud)

    g = bsub.add_parser(
        "accept-gap",
        help="let a camera's next event continue its chain past lost events (audited; effective at once)",
        description="For a chain that cannot continue: the edge lost undelivered events (seq_gap), started its "
        "chain again from a kept head (prevhash_mismatch), or the ledger was restored from an older backup. "
        "The next event of the source may then skip to a later seq or carry a prevhash that does not match; "
        "the gap is kept with its reason (GET /v1/sources).",
    )
    g.add_argument("sources", nargs="*", help="/sites/<site>/cameras/<camera>")
    _config(g)
    g.add_argument("--reason", required=True, help="why (kept with the gap)")
    g.add_argument("--next-seq", type=int, default=None, help="the seq the next event must carry (default: any later)")
    g.add_argument("--all-behind", action="store_true", help="every source the ledger is behind the kept heads for")

    r = bsub.add_parser("revoke", help="same as `keys revoke`")
    r.add_argument("keyid", help="16 hex digits, as printed by `detector keys generate`")
    r.add_argument("--reason", default="", help="free text kept with the revocation")
    _config(r)
    p.set_defaults(handler=_run)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "-"


def _run(args: argparse.Namespace) -> int:
    from detector.backend.config import load_backend_config

    backend = load_backend_config(args.config)
    if args.backend_cmd == "serve":
        return _serve(args, backend)
    if args.backend_cmd == "accept-gap":
        from detector.backend import app

        gaps = app.accept_gap(backend, args.sources, args.next_seq, args.reason, args.all_behind)
        for g in gaps:
            after = f"seq {g.next_seq}" if g.next_seq is not None else "any later seq"
            print(f"{g.source}: gap accepted (#{g.id}); its next event may carry {after}")
        return 0
    from detector.backend.ingest import Ingestor
    from detector.backend.store import open_store

    store = open_store(backend.db)
    try:
        Ingestor(backend, store)  # seeds the YAML's keys, so they show in `keys list` before the first serve
        if args.backend_cmd == "users":
            return _users(args, store)
        return _keys(args, store)
    finally:
        store.close()


def _serve(args: argparse.Namespace, backend) -> int:
    from detector.backend import app
    from detector.backend.ingest import Ingestor
    from detector.backend.store import open_store

    host = args.host or backend.config.listen.host
    port = backend.config.listen.port if args.port is None else args.port
    store = open_store(backend.db)
    try:
        Ingestor(backend, store)  # seeds the YAML's keys
        live_keys = [k for k in store.keys() if not k.revoked]
        users = [u for u in store.users() if u.disabled_at is None]
    finally:
        store.close()
    scheme = "https" if backend.tls else "http"
    print(f"detector backend: ledger {backend.db_display}, {scheme}://{host}:{port}", flush=True)
    if not live_keys:
        print(
            "detector backend: no camera keys registered: every event will be refused (unknown_key); "
            f"add one with `detector backend keys add SOURCE KEY.pub --config {args.config}` (no restart needed)",
            flush=True,
        )
    else:
        print(f"detector backend: {len(live_keys)} camera keys", flush=True)
    if not users:
        print(
            "detector backend: no users: the API and dashboard refuse every read; "
            f"add one with `detector backend users add NAME --role admin --config {args.config}`",
            flush=True,
        )
    app.serve(backend, host, port)
    return 0


def _keys(args: argparse.Namespace, store) -> int:
    from detector.backend.app import check_keyid
    from detector.protocol import keys as keys_mod
    from detector.protocol.errors import UserError
    from detector.protocol.events import SOURCE_RE

    cmd = "revoke" if args.backend_cmd == "revoke" else args.keys_cmd
    if cmd == "add":
        if not SOURCE_RE.match(args.source):
            raise UserError(f"{args.source!r} is not a source like /sites/<site>/cameras/<camera>")
        key = keys_mod.load_public_key(args.pubkey)
        kid = keys_mod.keyid(key)
        try:
            new = store.add_key(kid, args.source, keys_mod.public_b64(key), by="cli")
        except ValueError as e:
            raise UserError(str(e)) from None
        print(f"key {kid} {'added' if new else 'was already registered'} for {args.source}")
        return 0
    if cmd == "list":
        rows = store.keys()
        print(f"{'keyid':16}  {'source':40}  {'added':20}  state")
        for k in rows:
            state = f"revoked {_when(k.revoked_at)} {k.revoked_reason}".rstrip() if k.revoked else "active"
            print(f"{k.keyid:16}  {k.source:40}  {_when(k.added_at):20}  {state}")
        return 0
    check_keyid(args.keyid)
    new = store.revoke(args.keyid, args.reason, by="cli")
    print(f"key {args.keyid} {'revoked' if new else 'was already revoked'}")
    return 0


def _users(args: argparse.Namespace, store) -> int:
    from detector.backend import auth
    from detector.protocol.errors import UserError

    if args.users_cmd == "add":
        key = auth.add_user(store, args.name, args.role)
        print(f"user {args.name} ({args.role}) added; its API key is shown once, keep it now:")
        print(key)
        return 0
    if args.users_cmd == "list":
        print(f"{'name':24}  {'role':8}  {'created':20}  state")
        for u in store.users():
            state = f"disabled {_when(u.disabled_at)}" if u.disabled_at else "active"
            print(f"{u.name:24}  {u.role:8}  {_when(u.created_at):20}  {state}")
        return 0
    if not store.disable_user(args.name):
        raise UserError(f"no active user {args.name!r}")
    print(f"user {args.name} disabled")
    return 0
