"""`detector verify`: check the signatures and the hash chain of an audit log (JSON lines).

The log must be one source's complete chain: seq 1 (genesis prevhash), 2, 3, ... each
prevhash the sha256 of the canonical bytes of the event before it, times never going back.
Times are checked for form and order, never against today's clock: an audit log carries the
recorded clip's times. A chain re-signed under a new key (`detector outbox resign`) verifies
with both public keys given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.protocol import keys as keys_mod
from detector.protocol.errors import UserError
from detector.protocol.events import (
    GENESIS_PREVHASH,
    EventError,
    check_envelope,
    check_link,
    check_signature,
    event_hash,
    read_jsonl,
)


@dataclass
class Verdict:
    ok: bool
    count: int
    line: str


def verify_file(path: Path, pubkey: str | Path | list) -> Verdict:
    """Verify every record of `path`; stops at the first bad one. Unreadable input: UserError."""
    publics = {}
    for spec in pubkey if isinstance(pubkey, list) else [pubkey]:
        public = keys_mod.load_public_key(str(spec))
        publics[keys_mod.keyid(public)] = public
    kid = ", ".join(publics)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: events file not found")
    source = None
    prev_seq, prev_hash, prev_ms = 0, GENESIS_PREVHASH, None
    n = 0
    try:
        for index, (lineno, obj) in enumerate(read_jsonl(path), 1):
            try:
                if isinstance(obj, EventError):
                    raise obj
                env = check_envelope(obj)
                if env.keyid not in publics:
                    raise EventError("key_mismatch", f"keyid {env.keyid} is not the given key's ({kid})")
                check_signature(obj, publics[env.keyid])
                if source is None:
                    source = env.source
                elif env.source != source:
                    raise EventError("source_changed", f"source {env.source} differs from {source}")
                check_link(env.seq, env.prevhash, prev_seq, prev_hash, env.time_ms, prev_ms)
            except EventError as e:
                return Verdict(False, n, f"FAIL: record {index} (line {lineno}): {e.reason}: {e.detail}")
            prev_seq, prev_hash, prev_ms = env.seq, event_hash(obj), env.time_ms
            n += 1
    except OSError as e:
        raise UserError(f"{path}: cannot read events: {e.strerror}") from None
    if n == 0:
        return Verdict(True, 0, f"OK: 0 events in {path}")
    return Verdict(True, n, f"OK: {n} events, chain intact (seq 1..{prev_seq}), source {source}, keyid {kid}")
