"""PostgreSQL ledger store (psycopg 3 with a connection pool), for a site that outgrows one file.

Several backend processes can share one database: a write transaction locks the chain heads
of its sources with `SELECT ... FOR UPDATE` (see `sql.SqlLedgerStore.transaction`), so the
check that an event extends its source's chain and the append happen under the same row
lock, in every process. Zone totals are updated in the same transaction. Tables that record
what happened (events, ledger, voids) refuse UPDATE, DELETE and TRUNCATE through triggers.
The schema is created and migrated at start, under an advisory lock (one process migrates).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from detector.backend.store.base import redact, storage_error
from detector.backend.store.sql import SqlLedgerStore
from detector.protocol.errors import UserError

_MIGRATION_LOCK = 0x6C656467  # pg_advisory_xact_lock key: "ledg"
ZONES_CHANNEL = "detector_zones"  # payload: JSON [[site, zone], ...] whose totals a commit changed
USERS_CHANNEL = "detector_users"  # a user was added or disabled
ZONE_COLS = "site, zone, total, entries, outstanding, last_time"  # a row of the read view
NOTIFY_PAYLOAD = 7000  # bytes per notification (PostgreSQL refuses more than 8000)

_APPEND_ONLY = """
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
"""

# PostgreSQL starts at the schema SQLite reaches at version 3 (there were no PostgreSQL
# ledgers before it), so the versions mean the same tables in both stores.
_V3 = """
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TABLE sources (
    source TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    last_time_ms BIGINT,
    last_keyid TEXT,
    last_time TEXT,
    last_received_at DOUBLE PRECISION,
    blocked_reason TEXT,
    blocked_detail TEXT,
    blocked_seq BIGINT,
    blocked_at DOUBLE PRECISION
);
CREATE INDEX sources_site ON sources (site, source);

CREATE TABLE events (
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    hash TEXT NOT NULL,
    keyid TEXT NOT NULL,
    body BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    evidence_sha256 TEXT,
    PRIMARY KEY (source, seq),
    UNIQUE (source, id)
);
CREATE INDEX events_evidence ON events (evidence_sha256) WHERE evidence_sha256 IS NOT NULL;

CREATE TABLE ledger (
    entry BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    object_class TEXT NOT NULL,
    litter BIGINT NOT NULL,
    points BIGINT NOT NULL,
    claimed_points BIGINT NOT NULL,
    time TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX ledger_zone ON ledger (site, zone, entry);
CREATE INDEX ledger_event ON ledger (event_id);

-- Litter lying there now, per source: where it was counted and what it cost.
CREATE TABLE outstanding (
    source TEXT NOT NULL,
    litter BIGINT NOT NULL,
    zone TEXT NOT NULL,
    points BIGINT NOT NULL,
    severity TEXT NOT NULL,
    PRIMARY KEY (source, litter)
);
-- Audit: operator-accepted breaks of a chain, and keys that took over a chain.
CREATE TABLE gaps (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    head_seq BIGINT NOT NULL,
    next_seq BIGINT,
    reason TEXT NOT NULL,
    accepted_at DOUBLE PRECISION NOT NULL,
    used_seq BIGINT,
    used_at DOUBLE PRECISION
);
CREATE TABLE key_changes (
    source TEXT NOT NULL,
    seq BIGINT NOT NULL,
    old_keyid TEXT NOT NULL,
    new_keyid TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (source, seq)
);
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE zone_totals (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    total BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    outstanding BIGINT NOT NULL DEFAULT 0,
    last_time TEXT,
    PRIMARY KEY (site, zone)
);
CREATE TABLE zone_days (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    day TEXT NOT NULL,
    points BIGINT NOT NULL,
    PRIMARY KEY (site, zone, day)
);

CREATE TABLE camera_keys (
    keyid TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    public_b64 TEXT NOT NULL,
    added_at DOUBLE PRECISION NOT NULL,
    added_by TEXT NOT NULL
);
CREATE INDEX camera_keys_source ON camera_keys (source);
CREATE TABLE revocations (
    keyid TEXT PRIMARY KEY,
    revoked_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    revoked_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    key_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE voids (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    voided_by TEXT NOT NULL,
    voided_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    points BIGINT NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE evidence (
    sha256 TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    body BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE camera_views (
    view_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    site TEXT NOT NULL,
    frame_sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    zones TEXT NOT NULL,
    time TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX camera_views_source ON camera_views (source, view_id);
CREATE INDEX camera_views_frame ON camera_views (frame_sha256);
""" + "".join(_APPEND_ONLY.format(table=t) for t in ("events", "ledger", "voids"))

MIGRATIONS = {3: _V3}
FIRST_VERSION = min(MIGRATIONS)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class PostgresLedgerStore(SqlLedgerStore):
    dialect = "postgresql"
    lock_suffix = " FOR UPDATE"

    def __init__(self, url: str, pool_size: int = 8):
        self.url = url
        try:
            # one plain connection first: a wrong URL or a server that is down is one clear
            # error at once (the pool would retry in the background and log each attempt)
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                self._migrate(conn)
        except psycopg.Error as e:
            raise UserError(f"{redact(url)}: cannot open ledger database: {_first_line(e)}") from None
        # connections are opened as request threads need them, up to pool_size; more wait
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True})
        try:
            self.pool.open(wait=True, timeout=15)
        except (psycopg.Error, TimeoutError) as e:
            self.pool.close()
            raise UserError(f"{redact(url)}: cannot open ledger database: {_first_line(e)}") from None

    def _migrate(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at FLOAT8)")
            current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > max(MIGRATIONS):
                raise UserError(
                    f"{redact(self.url)}: ledger schema version {current} is newer than this backend knows "
                    f"({max(MIGRATIONS)}); upgrade the backend"
                )
            for version in sorted(v for v in MIGRATIONS if v > current):
                conn.execute(MIGRATIONS[version])
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))

    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.cursor() as cur:
            yield cur

    @contextmanager
    def _write(self) -> Iterator[Any]:
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as e:  # disk full, server gone, read-only: 503, retried
            raise storage_error(e, self.url) from None

    def _zones_changed(self, cur: Any, keys: list[tuple[str, str]]) -> Any:
        if self.on_zones_committed is None:
            return keys, []
        # The rows as this transaction leaves them (its row locks are held until the commit,
        # so these are the committed values): the process's read view takes them at once.
        cur.execute(
            f"SELECT {ZONE_COLS} FROM zone_totals WHERE (site, zone) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        return keys, cur.fetchall()

    def _zones_committed(self, changed: Any) -> None:
        keys, rows = changed
        if rows and self.on_zones_committed is not None:
            self.on_zones_committed(rows)
        # Every listening process re-reads these zones (`detector.backend.readview`). Sent in a
        # transaction of its own after the commit, not inside it: PostgreSQL serialises the
        # commits of notifying transactions (a queue lock held through the commit's WAL flush),
        # which cost concurrent ingest from two processes. A notification lost to a crash here
        # is covered by the read view's age bound. At most 8000 bytes a payload.
        try:
            with self.pool.connection() as conn:
                chunk: list[tuple[str, str]] = []
                size = 0
                for k in keys:
                    n = len(k[0]) + len(k[1]) + 8
                    if chunk and size + n > NOTIFY_PAYLOAD:
                        conn.execute("SELECT pg_notify(%s, %s)", (ZONES_CHANNEL, json.dumps(chunk)))
                        chunk, size = [], 0
                    chunk.append(k)
                    size += n
                if chunk:
                    conn.execute("SELECT pg_notify(%s, %s)", (ZONES_CHANNEL, json.dumps(chunk)))
        except psycopg.Error:
            pass  # committed all the same; other processes' views catch up within their bound

    def _users_changed(self, cur: Any) -> None:
        cur.execute("SELECT pg_notify(%s, '')", (USERS_CHANNEL,))

    def close(self) -> None:
        self.pool.close()
