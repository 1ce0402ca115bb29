"""Ledger stores behind one interface (`LedgerStore`): SQLite (embedded default) and PostgreSQL.

`open_store(db)` picks one from the backend config's `db:` value: a `postgresql://` URL means
PostgreSQL, anything else is a SQLite file path.
"""

from __future__ import annotations

from detector.backend.store.base import (
    EMPTY_HEAD,
    Accepted,
    CameraView,
    ChainHead,
    Evidence,
    Gap,
    HeadMoved,
    KeyRecord,
    LedgerStore,
    LedgerTx,
    SourceState,
    StorageError,
    User,
    Void,
    ZoneTotal,
    site_of,
    storage_error,
)
from detector.backend.store.sqlite import SqliteLedgerStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


def open_store(db: str) -> LedgerStore:
    if is_postgres(db):
        # imported here: a SQLite-only install need not have psycopg
        from detector.backend.store.postgres import PostgresLedgerStore

        return PostgresLedgerStore(db)
    from pathlib import Path

    return SqliteLedgerStore(Path(db))


__all__ = [
    "EMPTY_HEAD",
    "Accepted",
    "CameraView",
    "ChainHead",
    "Evidence",
    "Gap",
    "HeadMoved",
    "KeyRecord",
    "LedgerStore",
    "LedgerTx",
    "SourceState",
    "SqliteLedgerStore",
    "StorageError",
    "User",
    "Void",
    "ZoneTotal",
    "is_postgres",
    "open_store",
    "site_of",
    "storage_error",
]
