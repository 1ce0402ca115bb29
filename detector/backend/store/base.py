"""The ledger store interface: what the API and the ingestor need from a database.

Implementations: `sqlite.SqliteLedgerStore` (embedded default) and the PostgreSQL store.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class Accepted:
    source: str
    seq: int
    id: str
    hash: str  # sha256 of the canonical event (the next prevhash)
    body: bytes  # canonical bytes of the event as signed
    keyid: str
    zone: str
    kind: str
    severity: str
    object_class: str
    litter: int
    points: int  # applied to the zone (the backend's own scoring)
    claimed_points: int  # data.points as signed by the edge
    time: str
    also: tuple[int, ...] = ()  # clean-up: other litter taken in the same pick-up


@dataclass(frozen=True)
class ZoneTotal:
    zone: str
    total: int
    entries: int


class HeadMoved(Exception):
    """The source's chain head changed between verification and append (concurrent writer)."""


class LedgerStore(abc.ABC):
    @abc.abstractmethod
    def chain_head(self, source: str) -> tuple[int, str] | None:
        """(last seq, its hash) or None."""

    @abc.abstractmethod
    def event_hash(self, source: str, event_id: str) -> str | None:
        """hash of an accepted event."""

    @abc.abstractmethod
    def open_litter(self, source: str, litter: int) -> int | None:
        """points debited, not yet cleaned."""

    @abc.abstractmethod
    def append(self, acc: Accepted, prev_seq: int) -> None:
        """atomic; HeadMoved if head != prev_seq."""

    @abc.abstractmethod
    def is_revoked(self, keyid: str) -> bool: ...

    @abc.abstractmethod
    def revoke(self, keyid: str, reason: str = "") -> bool:
        """True if newly revoked."""

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
    def close(self) -> None: ...
