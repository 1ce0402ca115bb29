"""Verification of incoming events and their admission into the ledger.

Order of checks (the first failure is the refusal reason):
schema (with the time rules: UTC milliseconds, equal to the id's timestamp) -> known key for
the source -> key not revoked -> signature -> duplicate (same source and id, same bytes:
acknowledged, nothing changes) -> clock (not too far ahead of the backend's) -> chain (seq,
prevhash, time not before the previous event's; an operator-accepted gap lets one event past a
seq gap or a prevhash mismatch) -> the points rule (`detector.protocol.scoring.apply`) -> append.

A batch is checked in three steps: the schema of each event (no database), the keys of all
of them (one query) and their signatures (no database), then one write transaction that
holds the chain locks of the batch's sources while it checks duplicates and chain links and
appends. The transaction is where several backend processes meet: whichever takes a
source's lock first applies an event, the other then sees it as a duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from detector.backend.config import Backend
from detector.backend.store import Accepted, KeyRecord, LedgerStore, LedgerTx
from detector.protocol import keys as keys_mod
from detector.protocol import scoring
from detector.protocol.errors import UserError
from detector.protocol.events import (
    Envelope,
    EventError,
    canonical,
    check_clock,
    check_envelope,
    check_link,
    check_signature,
    check_time_order,
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

# What an operator can do about a camera whose chain is blocked, by refusal reason (shown in
# the API and on the dashboard). The recovery commands belong to the ledger-integrity work.
RECOVERY = {
    # The edge holds a refused chain until told to go on (`detector outbox retry`); these are the
    # operator's ways out, backend side and edge side (docs/EVENTS.md, "A blocked chain").
    "unknown_key": [
        "register the camera's key: detector backend keys add SOURCE CAMERA.pub --config FILE",
        "then on the edge: detector outbox retry --db OUTBOX",
    ],
    "revoked_key": [
        "register the camera's new key: detector backend keys add SOURCE NEW.pub --config FILE",
        "re-sign the pending events on the edge: detector outbox resign --db OUTBOX --key NEW.key --reason ...",
    ],
    "seq_gap": [
        "events before this one have not arrived: check that the camera's outbox still holds them",
        "if they are lost for good, accept the gap: detector backend accept-gap SOURCE --reason ... --config FILE;"
        " then on the edge: detector outbox retry --db OUTBOX",
    ],
    "prevhash_mismatch": [
        "the camera's chain forked from what the backend holds (a restored or lost outbox continued from its head)",
        "accept the gap: detector backend accept-gap SOURCE --reason ... --config FILE;"
        " then on the edge: detector outbox retry --db OUTBOX",
    ],
    "replayed_seq": [
        "the camera's chain restarted below the backend's head (its outbox and kept head were both lost)",
        "on the edge: detector outbox skip --through N, then detector outbox adopt-head --after-seq HEAD"
        " (HEAD from the detail); then accept the gap here",
    ],
    "id_conflict": ["the camera sent different content under an accepted event id: check its outbox"],
    "time_backwards": ["the camera's clock went back: fix its clock (NTP); its next events must not be earlier"],
    "time_ahead": [
        "the camera's clock is ahead of the backend's: fix its clock (NTP)",
        "then on the edge: detector outbox retry once the time has passed, or skip the event and accept the gap",
    ],
}


@dataclass
class BatchOutcome:
    results: list[dict] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    refusal: EventError | None = None
    appended: list[Accepted] = field(default_factory=list)


def _short_id(event: Any) -> str | None:
    eid = event.get("id") if isinstance(event, dict) else None
    return eid[:64] if isinstance(eid, str) else None


class Ingestor:
    def __init__(self, backend: Backend, store: LedgerStore):
        self.backend = backend
        self.store = store
        self.points = backend.config.scoring.points
        self.clock = backend.config.clock
        self._parsed: dict[str, Ed25519PublicKey] = {}  # public_b64 -> key (parsing is cheap; this is cheaper)

        self.seed_keys()

    def seed_keys(self) -> None:
        """Add the YAML's keys and revocations to the store (the keys table is the truth; the
        YAML only seeds it, so keys added with the CLI need no restart)."""
        for source, ks in self.backend.keys.items():
            for kid, key in ks.items():
                try:
                    self.store.add_key(kid, source, keys_mod.public_b64(key), by="config")
                except ValueError as e:
                    raise UserError(f"{self.backend.origin}: keys.{source}: {e}") from None
        for kid in self.backend.config.revoked:
            self.store.revoke(kid, "listed in the config", by="config")

    def _key(self, rec: KeyRecord) -> Ed25519PublicKey:
        key = self._parsed.get(rec.public_b64)
        if key is None:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(rec.public_b64))
            self._parsed[rec.public_b64] = key
        return key

    def _verify(self, event: dict, env: Envelope, keys: dict[str, KeyRecord]) -> None:
        rec = keys.get(env.keyid)
        if rec is None:
            raise EventError("unknown_key", f"key {env.keyid} is not registered for {env.source}")
        if rec.source != env.source:
            raise EventError("key_mismatch", f"key {env.keyid} is registered for another source")
        if rec.revoked:
            raise EventError("revoked_key", f"key {env.keyid} is revoked")
        check_signature(event, self._key(rec), plain=True)  # plain: check_envelope accepted it

    def _signed_by(self, event: dict, env: Envelope, keys: dict[str, KeyRecord]) -> bool:
        """Did the source's own (possibly revoked) key sign this? Only then may its refusal be
        recorded against the camera: anyone can post, only the camera can block its chain."""
        rec = keys.get(env.keyid)
        if rec is None or rec.source != env.source:
            return False
        try:
            check_signature(event, self._key(rec))
        except EventError:
            return False
        return True

    def ingest(self, event: Any, now_ms: int | None = None) -> tuple[str, Accepted | None]:
        """One event: ('accepted', what was appended) or ('duplicate', None); raises EventError
        for a refusal and StorageError when the ledger cannot be written."""
        out = self.ingest_batch([event], now_ms)
        if out.refusal is not None:
            raise out.refusal
        return out.results[0]["status"], (out.appended[0] if out.appended else None)

    def ingest_batch(self, batch: list, now_ms: int | None = None) -> BatchOutcome:
        """Apply events in order up to the first refusal (earlier ones stay applied)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        out = BatchOutcome()
        envs: list[Envelope] = []
        refusal: tuple[int, EventError] | None = None
        for i, event in enumerate(batch):
            try:
                envs.append(check_envelope(event))
            except EventError as e:
                refusal = (i, e)
                break
        keys = {k.keyid: k for k in self.store.keys({e.keyid for e in envs})} if envs else {}
        blocked_source: str | None = None
        for i, env in enumerate(envs):
            try:
                self._verify(batch[i], env, keys)
            except EventError as e:
                refusal = (i, e)
                if e.reason == "revoked_key" and self._signed_by(batch[i], env, keys):
                    blocked_source = env.source
                envs = envs[:i]
                break
        sources = {e.source for e in envs} | ({blocked_source} if blocked_source else set())
        statuses: list[str] = []
        if sources:
            with self.store.transaction(sources) as tx:
                tx.prefetch_hashes((e.source, e.id) for e in envs)
                tx.prefetch_outstanding({e.source for e in envs})
                for i, env in enumerate(envs):
                    try:
                        statuses.append(self._apply(tx, batch[i], env, now_ms))
                    except EventError as e:
                        refusal = (i, e)
                        tx.block(env.source, e.reason, e.detail, env.seq)
                        break
                if blocked_source is not None and refusal is not None and refusal[0] == len(envs):
                    e = refusal[1]
                    tx.block(blocked_source, e.reason, e.detail, batch[refusal[0]].get("seq", 0))
                out.appended = list(tx.o.appended)
        for i, status in enumerate(statuses):
            out.results.append({"index": i, "id": _short_id(batch[i]), "status": status})
            if status == "accepted":
                out.accepted += 1
            else:
                out.duplicates += 1
        if refusal is not None:
            i, e = refusal
            out.refusal = e
            out.results.append(
                {"index": i, "id": _short_id(batch[i]), "status": "refused", "reason": e.reason, "detail": e.detail}
            )
            for j in range(i + 1, len(batch)):
                out.results.append({"index": j, "id": _short_id(batch[j]), "status": "not_processed"})
        return out

    def _apply(self, tx: LedgerTx, event: dict, env: Envelope, now_ms: int) -> str:
        body = canonical(event, plain=True)  # check_envelope accepted it: plain JSON values only
        digest = hashlib.sha256(body).hexdigest()  # == events.event_hash(event), one canonicalization
        known = tx.event_hash(env.source, env.id)
        if known is not None:  # before the clock: a re-sent old event is still acknowledged
            if known == digest:
                return "duplicate"
            raise EventError("id_conflict", f"id {env.id} was accepted with different content")
        t_ms = env.time_ms  # parsed once
        check_clock(t_ms, now_ms, self.clock.max_ahead_s, self.clock.max_behind_s)
        head = tx.head(env.source)
        gap = None
        try:
            check_link(env.seq, env.prevhash, head.seq, head.hash, t_ms, head.time_ms)
        except EventError as e:
            g = tx.open_gap(env.source) if e.reason in _GAP_REASONS else None
            if g is None or (g.next_seq is not None and g.next_seq != env.seq):
                if g is not None:
                    e.detail += f" (the accepted gap expects seq {g.next_seq})"
                raise
            check_time_order(t_ms, head.time_ms, head.seq)
            gap = g.id

        d = env.data
        items = [(d.litter, d.severity)] + [(a.litter, a.severity) for a in d.also or ()]
        effect = scoring.apply(self.points, d.act, env.subject, items, lambda lid: tx.outstanding(env.source, lid))
        tx.append(
            Accepted(
                source=env.source,
                seq=env.seq,
                id=env.id,
                hash=digest,
                body=body,
                keyid=env.keyid,
                zone=env.subject,
                kind=d.act,
                severity=d.severity,
                object_class=d.object_class,
                litter=d.litter,
                claimed_points=d.points,
                time=env.time,
                time_ms=t_ms,
                effect=effect,
                also=tuple(a.litter for a in d.also or ()),
                gap=gap,
                evidence_sha256=d.evidence_sha256,
            )
        )
        return "accepted"

    def compensate(self, tx: LedgerTx, entries: list[dict]) -> scoring.Effect:
        """The effect that voids an accepted act (its ledger `entries`): the source's litter
        outstanding becomes what its other, not voided, events leave (`scoring.void`: the
        events replayed through the points rule), so the score is again ceiling minus the litter
        lying there as if the act had not been seen, whatever order acts are voided in."""
        source, seq = entries[0]["source"], int(entries[0]["seq"])
        voided = tx.voided_ids(source)
        debits = tx.debits(source)
        kept = []
        for s, eid, body in tx.history(source):
            if s == seq or eid in voided:
                continue
            e = json.loads(body)
            d = e["data"]
            items = ((d["litter"], d["severity"]), *((a["litter"], a["severity"]) for a in d.get("also") or ()))
            kept.append(scoring.Seen(d["act"], e["subject"], items, debits.get(s, {})))
        return scoring.void(self.points, tx.all_outstanding(source), kept)
