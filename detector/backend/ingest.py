"""Verification of incoming events and their admission into the ledger.

Order of checks (the first failure is the refusal reason):
schema (with the time rules: UTC milliseconds, equal to the id's timestamp) -> known key for
the source -> key not revoked -> signature -> duplicate (same source and id, same bytes:
acknowledged, nothing changes) -> clock (not too far ahead of the backend's) -> chain (seq,
prevhash, time not before the previous event's; an operator-accepted gap lets one event past a
seq gap or a prevhash mismatch) -> the points rule (`detector.protocol.scoring.apply`) -> append.
"""

from __future__ import annotations

import time
from typing import Any

from detector.backend.config import Backend
from detector.backend.store import Accepted, ChainHead, HeadMoved, LedgerStore
from detector.protocol import scoring
from detector.protocol.events import (
    GENESIS_PREVHASH,
    EventError,
    canonical,
    check_clock,
    check_envelope,
    check_link,
    check_signature,
    check_time_order,
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
    "time_backwards": 409,
    "head_moved": 409,
    "too_large": 413,
    "batch_too_large": 413,
    "time_ahead": 422,
    "time_behind": 422,
    "storage_full": 503,
    "storage_error": 503,
}

_GAP_REASONS = ("seq_gap", "prevhash_mismatch")  # what an operator-accepted gap lets through


class Ingestor:
    def __init__(self, backend: Backend, store: LedgerStore):
        self.backend = backend
        self.store = store
        self.points = backend.config.scoring.points
        self.clock = backend.config.clock
        self.config_revoked = frozenset(backend.config.revoked)
        self.keyid_sources = {kid: src for src, ks in backend.keys.items() for kid in ks}

    def ingest(self, event: Any, now_ms: int | None = None) -> tuple[str, Accepted | None]:
        """('accepted', what was appended) or ('duplicate', None); raises EventError(reason,
        detail) for a refusal and StorageError when the ledger cannot be written."""
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
        if known is not None:  # before the clock: a re-sent old event is still acknowledged
            if known == digest:
                return "duplicate", None
            raise EventError("id_conflict", f"id {env.id} was accepted with different content")

        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        check_clock(env.time_ms, now_ms, self.clock.max_ahead_s, self.clock.max_behind_s)
        head = self.store.chain_head(env.source) or ChainHead(0, GENESIS_PREVHASH, None, None)
        gap = None
        try:
            check_link(env.seq, env.prevhash, head.seq, head.hash, env.time_ms, head.time_ms)
        except EventError as e:
            g = self.store.open_gap(env.source) if e.reason in _GAP_REASONS else None
            if g is None or (g.next_seq is not None and g.next_seq != env.seq):
                if g is not None:
                    e.detail += f" (the accepted gap expects seq {g.next_seq})"
                raise
            check_time_order(env.time_ms, head.time_ms, head.seq)
            gap = g.id

        d = env.data
        items = [(d.litter, d.severity)] + [(a.litter, a.severity) for a in d.also or ()]
        effect = scoring.apply(
            self.points, d.act, env.subject, items, lambda litter: self.store.outstanding(env.source, litter)
        )
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
            claimed_points=d.points,
            time=env.time,
            time_ms=env.time_ms,
            effect=effect,
            also=tuple(a.litter for a in d.also or ()),
            gap=gap,
        )
        try:
            self.store.append(acc, head.seq)
        except HeadMoved:
            raise EventError("head_moved", "the chain moved concurrently; retry") from None
        return "accepted", acc
