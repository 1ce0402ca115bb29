"""The ledger store interface: what the API and the ingestor need from a database.

Implementations: `sqlite.SqliteLedgerStore` (embedded default) and the PostgreSQL store. The
points rule itself is `detector.protocol.scoring` (a store persists its effects, never
re-implements it).
"""

from __future__ import annotations

import abc
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from detector.protocol.scoring import Effect, Litter


@dataclass(frozen=True)
class ChainHead:
    """The last accepted event of a source."""

    seq: int
    hash: str  # sha256 of its canonical bytes (the next event's prevhash)
    time_ms: int | None  # its time (the next is never earlier)
    keyid: str | None  # the key that signed it (a change is recorded as a key change)


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

    @property
    def points(self) -> int:
        return self.effect.points


@dataclass(frozen=True)
class ZoneTotal:
    zone: str
    total: int  # sum of the zone's ledger entries = minus its outstanding points
    entries: int
    outstanding: int = 0  # litter items lying there now

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


class HeadMoved(Exception):
    """The source's chain head changed between verification and append (concurrent writer)."""


class StorageError(Exception):
    """The database cannot be written (disk full, I/O error, read-only): `reason` is
    `storage_full` or `storage_error`; the API answers 503."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def storage_error(e: sqlite3.Error, path: Path) -> StorageError:
    full = getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(e)
    return StorageError("storage_full" if full else "storage_error", f"ledger database {path.name}: {e}")


class LedgerStore(abc.ABC):
    """What the backend keeps. Both stores (SQLite, PostgreSQL) implement these methods with the
    same meaning; the points rule itself is `detector.protocol.scoring` (never re-implemented here)."""

    @abc.abstractmethod
    def chain_head(self, source: str) -> ChainHead | None: ...

    @abc.abstractmethod
    def event_hash(self, source: str, event_id: str) -> str | None:
        """hash of an accepted event."""

    @abc.abstractmethod
    def outstanding(self, source: str, litter: int) -> Litter | None:
        """The source's litter `litter` if it is outstanding (lying there, counted, not closed)."""

    @abc.abstractmethod
    def append(self, acc: Accepted, prev_seq: int) -> None:
        """Atomic: the event, one ledger row per `acc.effect` entry, litter opened/closed, the new
        chain head, a key change (keyid differs from the head's) and the use of `acc.gap`.
        HeadMoved if the head is no longer `prev_seq`; StorageError if it cannot be written."""

    @abc.abstractmethod
    def is_revoked(self, keyid: str) -> bool: ...

    @abc.abstractmethod
    def revoke(self, keyid: str, reason: str = "") -> bool:
        """True if newly revoked."""

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
    def zones(self) -> list[ZoneTotal]: ...

    @abc.abstractmethod
    def zone(self, zone: str) -> ZoneTotal | None: ...

    @abc.abstractmethod
    def recent(self, zone: str, limit: int) -> list[dict]: ...

    @abc.abstractmethod
    def ledger_count(self) -> int: ...

    @abc.abstractmethod
    def ping(self) -> None: ...

    @abc.abstractmethod
    def probe_write(self) -> None:
        """Write something small and durable (health check); StorageError if it cannot."""

    @abc.abstractmethod
    def close(self) -> None: ...
