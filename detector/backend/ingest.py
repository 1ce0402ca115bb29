"""Verification of incoming events and their admission into the ledger.

Order of checks (the first failure is the refusal reason):
schema -> known key for the source -> key not revoked -> signature -> duplicate (same source
and id, same bytes: acknowledged, nothing changes) -> chain (seq and prevhash) -> append.
"""

from __future__ import annotations

from typing import Any

from detector.backend.config import Backend
from detector.backend.store import Accepted, HeadMoved, LedgerStore
from detector.protocol.events import (
    GENESIS_PREVHASH,
    EventError,
    canonical,
    check_envelope,
    check_link,
    check_signature,
    event_hash,
)

# HTTP status for each refusal reason
STATUS = {
    "malformed": 400,
    "schema": 400,
    "empty_batch": 400,
    "unknown_key": 403,
    "key_mismatch": 403,
    "revoked_key": 403,
    "bad_signature": 403,
    "id_conflict": 409,
    "replayed_seq": 409,
    "seq_gap": 409,
    "prevhash_mismatch": 409,
    "head_moved": 409,
    "too_large": 413,
    "batch_too_large": 413,
}


class Ingestor:
    def __init__(self, backend: Backend, store: LedgerStore):
        self.backend = backend
        self.store = store
        self.points = backend.config.scoring.points
        self.config_revoked = frozenset(backend.config.revoked)
        self.keyid_sources = {kid: src for src, ks in backend.keys.items() for kid in ks}

    def ingest(self, event: Any) -> str:
        """'accepted' or 'duplicate'; raises EventError(reason, detail) for a refusal."""
        env = check_envelope(event)
        keys = self.backend.keys.get(env.source)
        if not keys:
            raise EventError("unknown_key", f"no key is registered for source {env.source}")
        key = keys.get(env.keyid)
        if key is None:
            if env.keyid in self.keyid_sources:
                raise EventError("key_mismatch", f"key {env.keyid} is registered for another source")
            raise EventError("unknown_key", f"key {env.keyid} is not registered for {env.source}")
        if env.keyid in self.config_revoked or self.store.is_revoked(env.keyid):
            raise EventError("revoked_key", f"key {env.keyid} is revoked")
        check_signature(event, key)

        digest = event_hash(event)
        known = self.store.event_hash(env.source, env.id)
        if known is not None:
            if known == digest:
                return "duplicate"
            raise EventError("id_conflict", f"id {env.id} was accepted with different content")

        head_seq, head_hash = self.store.chain_head(env.source) or (0, GENESIS_PREVHASH)
        check_link(env.seq, env.prevhash, head_seq, head_hash)

        d = env.data
        if d.act == "littering":
            points = -self.points.of(d.severity)
        else:
            taken = [(d.litter, d.severity)] + [(a.litter, a.severity) for a in d.also or ()]
            points = self.points.cleanup_credit(taken, lambda litter: self.store.open_litter(env.source, litter))
        acc = Accepted(
            source=env.source,
            seq=env.seq,
            id=env.id,
            hash=digest,
            body=canonical(event),
            keyid=env.keyid,
            zone=env.subject,
            kind=d.act,
            severity=d.severity,
            object_class=d.object_class,
            litter=d.litter,
            also=tuple(a.litter for a in d.also or ()),
            points=points,
            claimed_points=d.points,
            time=env.time,
        )
        try:
            self.store.append(acc, head_seq)
        except HeadMoved:
            raise EventError("head_moved", "the chain moved concurrently; retry") from None
        return "accepted"
