"""The ledger store interface: what the API, the ingestor and the CLI need from a database.

Implementations: `sqlite.SqliteLedgerStore` (embedded default) and `postgres.PostgresLedgerStore`,
both built on `sql.SqlLedgerStore` (one set of queries, two dialects). The points rule itself is
`detector.protocol.scoring` (a store persists its effects, never re-implements it).

Writes to a source's chain go through `transaction(sources)`: the sources' chain heads are
locked for the transaction (PostgreSQL: `SELECT ... FOR UPDATE` on their rows; SQLite: the
database write lock), so several backend processes on one database verify and extend a chain
one at a time, and an event posted to two of them at once is applied once.
"""

from __future__ import annotations

import abc
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from detector.protocol.events import GENESIS_PREVHASH, SOURCE_RE
from detector.protocol.scoring import Effect, Litter

_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """A database URL without its password (for messages)."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def site_of(source: str) -> str:
    """The site of a source like /sites/<site>/cameras/<camera>."""
    m = SOURCE_RE.match(source)
    if not m:
        raise ValueError(f"not a source: {source!r}")
    return m.group(1)


def camera_of(source: str) -> str:
    m = SOURCE_RE.match(source)
    if not m:
        raise ValueError(f"not a source: {source!r}")
    return m.group(2)


@dataclass(frozen=True)
class ChainHead:
    """The last accepted event of a source."""

    seq: int
    hash: str  # sha256 of its canonical bytes (the next event's prevhash)
    time_ms: int | None  # its time (the next is never earlier)
    keyid: str | None  # the key that signed it (a change is recorded as a key change)


EMPTY_HEAD = ChainHead(0, GENESIS_PREVHASH, None, None)


@dataclass(frozen=True)
class Accepted:
    source: str
    seq: int
    id: str
    hash: str  # sha256 of the canonical event (the next prevhash)
    body: bytes  # canonical bytes of the event as signed
    keyid: str
    zone: str  # subject: the zone the event was seen in
    kind: str
    severity: str
    object_class: str
    litter: int
    claimed_points: int  # data.points as signed by the edge
    time: str
    time_ms: int
    effect: Effect  # what the points rule (detector.protocol.scoring.apply) changes
    also: tuple[int, ...] = ()  # clean-up: other litter taken in the same pick-up
    gap: int | None = None  # id of the admin-accepted gap this event uses (seq or prevhash skip)
    evidence_sha256: str | None = None

    @property
    def points(self) -> int:
        return self.effect.points

    @property
    def site(self) -> str:
        return site_of(self.source)


@dataclass(frozen=True)
class ZoneTotal:
    site: str
    zone: str
    total: int  # sum of the zone's ledger entries = minus its outstanding points
    entries: int
    outstanding: int = 0  # litter items lying there now
    last_time: str | None = None  # act time of the latest entry

    @property
    def outstanding_points(self) -> int:
        return -self.total


@dataclass(frozen=True)
class Gap:
    """An operator's audited permission: the next event of `source` may break the chain (a seq
    after a gap, or a prevhash that does not match), e.g. after an edge lost its outbox or the
    ledger was restored from an older backup."""

    id: int
    source: str
    next_seq: int | None  # the seq it must carry (None: any seq after the head)
    reason: str


class StorageError(Exception):
    """The database cannot be written (disk full, I/O error, read-only): `reason` is
    `storage_full` or `storage_error`; the API answers 503."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def storage_error(e: Exception, where: Path | str) -> StorageError:
    """A database write failure as a StorageError (SQLite's or PostgreSQL's)."""
    full = (
        getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or getattr(e, "sqlstate", None) == "53100"  # PostgreSQL disk_full
        or "full" in str(e)
    )
    name = where.name if isinstance(where, Path) else redact(str(where))
    return StorageError("storage_full" if full else "storage_error", f"ledger database {name}: {e}")


@dataclass(frozen=True)
class KeyRecord:
    keyid: str
    source: str
    public_b64: str  # the 32 raw key bytes, base64
    added_at: float
    added_by: str
    revoked_at: float | None = None
    revoked_reason: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: float
    disabled_at: float | None = None


@dataclass(frozen=True)
class SourceState:
    """What the dashboard shows of a camera: its chain head, last event, and a refusal that blocks it."""

    source: str
    last_seq: int
    last_time: str | None
    last_received_at: float | None
    blocked_reason: str | None = None
    blocked_detail: str | None = None
    blocked_at: float | None = None

    @property
    def site(self) -> str:
        return site_of(self.source)

    @property
    def camera(self) -> str:
        return camera_of(self.source)


@dataclass(frozen=True)
class Void:
    event_id: str
    source: str
    voided_by: str
    voided_at: float
    reason: str
    points: int  # the compensating entry's points


@dataclass(frozen=True)
class Evidence:
    sha256: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class CameraView:
    """A camera's reference frame (a blurred snapshot, stored as evidence) and its zone polygons."""

    source: str
    frame_sha256: str
    width: int
    height: int
    zones: list[dict]  # [{"id": name, "polygon": [[x, y], ...]}]
    time: str
    received_at: float


class HeadMoved(Exception):
    """The source's chain head changed between verification and append (concurrent writer)."""


@dataclass
class _Overlay:
    """What a transaction has written so far, so that its own later reads see it before the flush."""

    heads: dict[str, ChainHead] = field(default_factory=dict)
    hashes: dict[tuple[str, str], str | None] = field(default_factory=dict)
    litter: dict[tuple[str, int], Litter | None] = field(default_factory=dict)  # None: closed
    # outstanding litter count changes per (site, zone), for the incremental zone totals
    litter_count: dict[tuple[str, str], int] = field(default_factory=dict)
    appended: list[Accepted] = field(default_factory=list)
    key_changes: list[tuple[str, int, str, str]] = field(default_factory=list)
    voids: list[tuple[Void, dict, Effect]] = field(default_factory=list)
    blocked: dict[str, tuple[str, str, int]] = field(default_factory=dict)


class LedgerTx(abc.ABC):
    """One write transaction over a set of locked sources. Reads see the transaction's own
    appends; everything is written at once when the `transaction` block exits normally."""

    def __init__(self) -> None:
        self.o = _Overlay()

    # -- reads (overlay first, then the database) --------------------------------------------
    def head(self, source: str) -> ChainHead:
        """The source's last accepted event; EMPTY_HEAD for a source with none yet."""
        if source not in self.o.heads:
            self.o.heads[source] = self._db_head(source) or EMPTY_HEAD
        return self.o.heads[source]

    def event_hash(self, source: str, event_id: str) -> str | None:
        key = (source, event_id)
        if key in self.o.hashes:
            return self.o.hashes[key]
        return self._db_event_hash(source, event_id)

    def outstanding(self, source: str, litter: int) -> Litter | None:
        key = (source, litter)
        if key not in self.o.litter:
            self.o.litter[key] = self._db_outstanding(source, litter)
        return self.o.litter[key]

    @abc.abstractmethod
    def open_gap(self, source: str) -> Gap | None: ...

    def prefetch_hashes(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Optional: look up many accepted events at once (a store may batch the reads)."""

    def prefetch_outstanding(self, sources: Iterable[str]) -> None:
        """Optional: load the outstanding litter of these sources at once."""

    # -- writes ------------------------------------------------------------------------------
    def append(self, acc: Accepted) -> None:
        head = self.head(acc.source)
        if acc.seq <= head.seq or (acc.seq != head.seq + 1 and acc.gap is None):
            raise HeadMoved(acc.source)
        if head.keyid is not None and head.keyid != acc.keyid:
            self.o.key_changes.append((acc.source, acc.seq, head.keyid, acc.keyid))
        self.o.heads[acc.source] = ChainHead(acc.seq, acc.hash, acc.time_ms, acc.keyid)
        self.o.hashes[(acc.source, acc.id)] = acc.hash
        self.commit_effect(acc.source, acc.effect)
        self.o.appended.append(acc)
        self.o.blocked.pop(acc.source, None)

    def commit_effect(self, source: str, effect: Effect) -> None:
        """Litter the effect closed and opened (the rule already looked each one up)."""
        site = site_of(source)
        for lid in effect.closed:
            lit = self.outstanding(source, lid)
            if lit is not None:
                key = (site, lit.zone)
                self.o.litter_count[key] = self.o.litter_count.get(key, 0) - 1
            self.o.litter[(source, lid)] = None
        for lid, lit in effect.opened:
            key = (site, lit.zone)
            self.o.litter_count[key] = self.o.litter_count.get(key, 0) + 1
            self.o.litter[(source, lid)] = lit

    def block(self, source: str, reason: str, detail: str, seq: int) -> None:
        """Record that a verified event of `source` was refused (shown until the chain moves on)."""
        self.o.blocked[source] = (reason, detail, seq)

    @abc.abstractmethod
    def _db_head(self, source: str) -> ChainHead | None: ...

    @abc.abstractmethod
    def _db_event_hash(self, source: str, event_id: str) -> str | None: ...

    @abc.abstractmethod
    def _db_outstanding(self, source: str, litter: int) -> Litter | None: ...


class LedgerStore(abc.ABC):
    dialect: str

    # -- the ledger --------------------------------------------------------------------------
    @abc.abstractmethod
    @contextmanager
    def transaction(self, sources: Iterable[str]) -> Iterator[LedgerTx]:
        """A write transaction holding the chain locks of `sources` (see the module doc)."""

    # single-event forms of the above (one transaction each), for tools and tests
    def chain_head(self, source: str) -> ChainHead | None:
        with self.transaction([]) as tx:
            return tx._db_head(source)

    def event_hash(self, source: str, event_id: str) -> str | None:
        with self.transaction([]) as tx:
            return tx.event_hash(source, event_id)

    def outstanding(self, source: str, litter: int) -> Litter | None:
        with self.transaction([]) as tx:
            return tx.outstanding(source, litter)

    def append(self, acc: Accepted, prev_seq: int) -> None:
        """Atomic; HeadMoved if the head is no longer `prev_seq`."""
        with self.transaction([acc.source]) as tx:
            if tx.head(acc.source).seq != prev_seq:
                raise HeadMoved(acc.source)
            tx.append(acc)

    def is_revoked(self, keyid: str) -> bool:
        recs = self.keys([keyid])
        return bool(recs and recs[0].revoked) or self.revocation(keyid) is not None

    @abc.abstractmethod
    def revocation(self, keyid: str) -> tuple[float, str] | None: ...

    @abc.abstractmethod
    def void(self, event_id: str, by: str, reason: str, compensate) -> tuple[Void, bool]:
        """Void an accepted act by compensating entries: (the void, True if new).
        `compensate(tx, entries)` returns the scoring.Effect that takes back what the act's
        ledger entries still do (the rule lives in the ingestor). Idempotent: voiding again
        returns the first void. KeyError if no such act."""

    @abc.abstractmethod
    def accept_gap(self, source: str, next_seq: int | None, reason: str) -> Gap:
        """Record (audited, with the head at the time) that the next event of `source` may
        break its chain; replaces an unused permission of the same source."""

    @abc.abstractmethod
    def open_gap(self, source: str) -> Gap | None:
        """The unused gap permission of `source`, if any."""

    @abc.abstractmethod
    def sources(self) -> list[dict]:
        """Every source: head (seq, time, keyid), gaps and key changes, for operators."""

    @abc.abstractmethod
    def probe_write(self) -> None:
        """Write something small and durable (health check); StorageError if it cannot."""

    @abc.abstractmethod
    def zones(self, site: str | None = None) -> list[ZoneTotal]: ...

    @abc.abstractmethod
    def zone(self, site: str, zone: str) -> ZoneTotal | None: ...

    @abc.abstractmethod
    def sites(self) -> list[str]: ...

    @abc.abstractmethod
    def recent(self, site: str, zone: str, limit: int) -> list[dict]:
        """The zone's latest ledger entries, newest first, with void and evidence information."""

    @abc.abstractmethod
    def daily(self, site: str, zone: str, days: int) -> list[tuple[str, int]]:
        """(UTC day, net points) of the zone's last `days` days that have entries, oldest first."""

    @abc.abstractmethod
    def ledger_count(self) -> int: ...

    @abc.abstractmethod
    def source_states(self, site: str | None = None) -> list[SourceState]: ...

    # -- camera keys -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_key(self, keyid: str, source: str, public_b64: str, by: str) -> bool:
        """True if new; ValueError if the key id is registered for another source."""

    @abc.abstractmethod
    def keys(self, keyids: Iterable[str] | None = None) -> list[KeyRecord]: ...

    @abc.abstractmethod
    def revoke(self, keyid: str, reason: str = "", by: str = "") -> bool:
        """True if newly revoked (a key id not registered is recorded too, so it is refused later)."""

    # -- users and sessions ------------------------------------------------------------------
    @abc.abstractmethod
    def add_user(self, name: str, role: str, key_hash: str) -> None:
        """ValueError if the name exists."""

    @abc.abstractmethod
    def users(self) -> list[User]: ...

    @abc.abstractmethod
    def disable_user(self, name: str) -> bool: ...

    @abc.abstractmethod
    def user_by_key_hash(self, key_hash: str) -> User | None:
        """An enabled user."""

    @abc.abstractmethod
    def add_session(self, token_hash: str, user: str, expires_at: float) -> None: ...

    @abc.abstractmethod
    def session_user(self, token_hash: str, now: float) -> User | None: ...

    @abc.abstractmethod
    def end_session(self, token_hash: str) -> None: ...

    # -- evidence and camera views ------------------------------------------------------------
    @abc.abstractmethod
    def evidence_named(self, sha256: str, since: float = 0.0) -> bool:
        """Is `sha256` named by an accepted event or a camera view received at or after `since`?"""

    @abc.abstractmethod
    def purge_evidence(self, before: float) -> int:
        """Delete evidence received before `before` (but each camera's latest reference frame);
        how many blobs went."""

    @abc.abstractmethod
    def put_evidence(self, sha256: str, content_type: str, body: bytes) -> bool:
        """True if new."""

    @abc.abstractmethod
    def evidence(self, sha256: str) -> Evidence | None: ...

    @abc.abstractmethod
    def put_view(self, view: CameraView) -> None: ...

    @abc.abstractmethod
    def views(self, site: str) -> list[CameraView]:
        """The latest view of each camera of the site."""

    # -- housekeeping ------------------------------------------------------------------------
    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def ping(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...
