"""Ledger stores behind one interface (`LedgerStore`): SQLite (embedded default) and PostgreSQL."""

from detector.backend.store.base import (
    Accepted,
    ChainHead,
    Gap,
    HeadMoved,
    LedgerStore,
    StorageError,
    ZoneTotal,
    storage_error,
)
from detector.backend.store.sqlite import SqliteLedgerStore

__all__ = [
    "Accepted",
    "ChainHead",
    "Gap",
    "HeadMoved",
    "LedgerStore",
    "SqliteLedgerStore",
    "StorageError",
    "ZoneTotal",
    "storage_error",
]
