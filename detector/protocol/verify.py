"""`detector verify`: check the signatures and the hash chain of an audit log (JSON lines).

The log must be one source's complete chain: seq 1 (genesis prevhash), 2, 3, ... each
prevhash the sha256 of the canonical bytes of the event before it.
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


def verify_file(path: Path, pubkey: str | Path) -> Verdict:
    """Verify every record of `path`; stops at the first bad one. Unreadable input: UserError."""
    public = keys_mod.load_public_key(str(pubkey))
    kid = keys_mod.keyid(public)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: events file not found")
    source = None
    prev_seq, prev_hash = 0, GENESIS_PREVHASH
    n = 0
    try:
        for index, (lineno, obj) in enumerate(read_jsonl(path), 1):
            try:
                if isinstance(obj, EventError):
                    raise obj
                env = check_envelope(obj)
                if env.keyid != kid:
                    raise EventError("key_mismatch", f"keyid {env.keyid} is not the given key's ({kid})")
                check_signature(obj, public)
                if source is None:
                    source = env.source
                elif env.source != source:
                    raise EventError("source_changed", f"source {env.source} differs from {source}")
                check_link(env.seq, env.prevhash, prev_seq, prev_hash)
            except EventError as e:
                return Verdict(False, n, f"FAIL: record {index} (line {lineno}): {e.reason}: {e.detail}")
            prev_seq, prev_hash = env.seq, event_hash(obj)
            n += 1
    except OSError as e:
        raise UserError(f"{path}: cannot read events: {e.strerror}") from None
    if n == 0:
        return Verdict(True, 0, f"OK: 0 events in {path}")
    return Verdict(True, n, f"OK: {n} events, chain intact (seq 1..{prev_seq}), source {source}, keyid {kid}")
