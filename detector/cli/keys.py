"""`detector keys generate`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="camera signing keys (Ed25519)")
    ksub = p.add_subparsers(dest="keys_cmd", metavar="{generate}", required=True)
    g = ksub.add_parser("generate", help="write NAME.key (private, mode 0600) and NAME.pub into a directory")
    g.add_argument("--camera", required=True, help="camera name (the key files are named after it)")
    g.add_argument("--out", type=Path, required=True, help="directory for the key files")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector.protocol import keys

    key_path, pub_path, kid = keys.generate(args.camera, args.out)
    print(f"keyid {kid}: private key {key_path}, public key {pub_path}")
    return 0
