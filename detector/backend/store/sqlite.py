"""SQLite ledger store (the embedded default).

One connection per thread (WAL: readers never wait for the writer); a write transaction
is `BEGIN IMMEDIATE`, which takes the database's write lock, so writers in this and other
processes on the same file are serialized by SQLite itself (no lock of ours). Tables that
record what happened (events, ledger, voids) refuse UPDATE and DELETE through triggers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.backend.store.base import storage_error
from detector.backend.store.sql import SqlLedgerStore
from detector.protocol.errors import UserError

# Version 2 is the outstanding-litter ledger (the first schema with a version: PRAGMA
# user_version); 0 with tables is the banked-credit ledger before it, which is refused. Each
# later version is a step applied once, in order, in one transaction.
_V2 = """
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    last_time_ms INTEGER,
    last_keyid TEXT
);
CREATE TABLE IF NOT EXISTS events (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    hash TEXT NOT NULL,
    keyid TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (source, seq),
    UNIQUE (source, id)
);
-- One row per zone and litter an event changed (the points rule's entries). `zone` is where
-- the points land: a clean-up's credit goes to the zone where the litter was counted.
CREATE TABLE IF NOT EXISTS ledger (
    entry INTEGER PRIMARY KEY AUTOINCREMENT,
    zone TEXT NOT NULL,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    object_class TEXT NOT NULL,
    litter INTEGER NOT NULL,
    points INTEGER NOT NULL,
    claimed_points INTEGER NOT NULL,  -- the event's data.points, on its first row (0 on the others)
    time TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_zone ON ledger (zone, entry);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
-- Litter lying there now, per source: where it was counted and what it cost.
CREATE TABLE IF NOT EXISTS outstanding (
    source TEXT NOT NULL,
    litter INTEGER NOT NULL,
    zone TEXT NOT NULL,
    points INTEGER NOT NULL,
    severity TEXT NOT NULL,
    PRIMARY KEY (source, litter)
);
CREATE INDEX IF NOT EXISTS outstanding_zone ON outstanding (zone);
CREATE TABLE IF NOT EXISTS revocations (
    keyid TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
-- Audit: operator-accepted breaks of a chain, and keys that took over a chain.
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    head_seq INTEGER NOT NULL,      -- the head when the gap was accepted
    next_seq INTEGER,               -- the seq the next event must carry (NULL: any after the head)
    reason TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    used_seq INTEGER,               -- the event that used it (NULL: not yet)
    used_at REAL
);
CREATE TABLE IF NOT EXISTS key_changes (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,           -- first event under the new key
    old_keyid TEXT NOT NULL,
    new_keyid TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (source, seq)
);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at REAL NOT NULL
);
"""

# Sites, incremental zone totals, the keys table, users, voids, evidence, camera views, the
# blocked state of a chain.
_SITE_OF = "substr(source, 8, instr(substr(source, 8), '/') - 1)"  # /sites/<site>/cameras/<camera>
_V3 = f"""
ALTER TABLE sources ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE sources SET site = {_SITE_OF};
ALTER TABLE sources ADD COLUMN last_time TEXT;
ALTER TABLE sources ADD COLUMN last_received_at REAL;
ALTER TABLE sources ADD COLUMN blocked_reason TEXT;
ALTER TABLE sources ADD COLUMN blocked_detail TEXT;
ALTER TABLE sources ADD COLUMN blocked_seq INTEGER;
ALTER TABLE sources ADD COLUMN blocked_at REAL;
CREATE INDEX sources_site ON sources (site, source);

ALTER TABLE events ADD COLUMN evidence_sha256 TEXT;
UPDATE events SET evidence_sha256 = json_extract(body, '$.data.evidence_sha256');
CREATE INDEX events_evidence ON events (evidence_sha256) WHERE evidence_sha256 IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'accepted events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'accepted events are append-only'); END;

-- the site goes into each ledger row: the one change to past rows, made by the schema owner
DROP TRIGGER ledger_no_update;
ALTER TABLE ledger ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE ledger SET site = {_SITE_OF};
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
DROP INDEX ledger_zone;
CREATE INDEX ledger_zone ON ledger (site, zone, entry);
CREATE INDEX ledger_event ON ledger (event_id);

CREATE TABLE zone_totals (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    total INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    outstanding INTEGER NOT NULL DEFAULT 0,
    last_time TEXT,
    PRIMARY KEY (site, zone)
);
INSERT INTO zone_totals (site, zone, total, entries, last_time)
    SELECT site, zone, SUM(points), COUNT(*), MAX(time) FROM ledger GROUP BY site, zone;
UPDATE zone_totals SET outstanding = (SELECT COUNT(*) FROM outstanding o
    WHERE o.zone = zone_totals.zone AND substr(o.source, 8, instr(substr(o.source, 8), '/') - 1) = zone_totals.site);
CREATE TABLE zone_days (
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    day TEXT NOT NULL,
    points INTEGER NOT NULL,
    PRIMARY KEY (site, zone, day)
);
INSERT INTO zone_days SELECT site, zone, substr(time, 1, 10), SUM(points) FROM ledger GROUP BY 1, 2, 3;

CREATE TABLE camera_keys (
    keyid TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    public_b64 TEXT NOT NULL,
    added_at REAL NOT NULL,
    added_by TEXT NOT NULL
);
CREATE INDEX camera_keys_source ON camera_keys (source);
ALTER TABLE revocations ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    key_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    disabled_at REAL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE voids (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    voided_by TEXT NOT NULL,
    voided_at REAL NOT NULL,
    reason TEXT NOT NULL,
    points INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE TRIGGER voids_no_update BEFORE UPDATE ON voids
    BEGIN SELECT RAISE(ABORT, 'voids are append-only'); END;
CREATE TRIGGER voids_no_delete BEFORE DELETE ON voids
    BEGIN SELECT RAISE(ABORT, 'voids are append-only'); END;

CREATE TABLE evidence (
    sha256 TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE camera_views (
    view_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    site TEXT NOT NULL,
    frame_sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    zones TEXT NOT NULL,
    time TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX camera_views_source ON camera_views (source, view_id);
CREATE INDEX camera_views_frame ON camera_views (frame_sha256);
"""

MIGRATIONS = {2: _V2, 3: _V3}
SCHEMA_VERSION = max(MIGRATIONS)


class SqliteLedgerStore(SqlLedgerStore):
    dialect = "sqlite"

    def __init__(self, path: Path, check: bool = True):
        """Open (or create, or migrate) the ledger. With `check`, refuse a damaged file or a
        schema this code does not know (UserError, one line)."""
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()  # guards the list of connections only
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            if check:
                # quick_check reads every page and row (O(size), a few seconds per GB) but skips
                # the index-to-table cross-check of integrity_check; enough to find a truncated
                # or overwritten file before any of it is trusted.
                rows = conn.execute("PRAGMA quick_check(1)").fetchall()
                if rows != [("ok",)]:
                    problem = " ".join(str(rows[0][0]).split())  # SQLite's report spans lines; ours is one
                    raise UserError(f"{path}: ledger database is damaged ({problem}): restore it from a backup")
            self._migrate(conn)
        except sqlite3.DatabaseError as e:
            self.close()
            raise UserError(f"{path}: cannot open ledger database: {e}") from None
        except OSError as e:
            self.close()
            raise UserError(f"{path}: cannot open ledger database: {e}") from None
        except UserError:
            self.close()
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if version == 0 and tables:
                raise UserError(
                    f"{self.path}: ledger schema 1 (written before outstanding-litter scoring; its totals can hold "
                    f"banked credit): this backend needs schema {SCHEMA_VERSION}; start a new ledger file"
                )
            if version > SCHEMA_VERSION:
                raise UserError(f"{self.path}: ledger schema {version}, this backend knows {SCHEMA_VERSION}")
            for step in sorted(v for v in MIGRATIONS if v > version):
                for statement in _statements(MIGRATIONS[step]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _read(self) -> Iterator[Any]:
        cur = self._conn().cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.cursor()
            try:
                yield cur
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        except sqlite3.OperationalError as e:
            raise storage_error(e, self.path) from None

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3 runs one per execute; executescript would
    commit the open transaction). Triggers hold `;` inside BEGIN ... END."""
    out, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        buf.append(line)
        text = "\n".join(buf)
        if text.rstrip().endswith(";") and sqlite3.complete_statement(text):
            out.append(text)
            buf = []
    if buf:
        out.append("\n".join(buf))
    return out
