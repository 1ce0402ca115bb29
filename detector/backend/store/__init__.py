"""Ledger stores behind one interface (`LedgerStore`): SQLite (embedded default) and PostgreSQL."""

from detector.backend.store.base import Accepted, HeadMoved, LedgerStore, ZoneTotal
from detector.backend.store.sqlite import SqliteLedgerStore

__all__ = ["Accepted", "HeadMoved", "LedgerStore", "SqliteLedgerStore", "ZoneTotal"]
