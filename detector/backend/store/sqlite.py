"""SQLite ledger store (the embedded default).

The ledger table is append-only (triggers refuse UPDATE and DELETE). Appending an accepted
event writes the raw event, its ledger entry, the source's new chain head and the open-litter
bookkeeping in one transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from detector.backend.store.base import Accepted, HeadMoved, LedgerStore, ZoneTotal
from detector.protocol.errors import UserError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL
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
    claimed_points INTEGER NOT NULL,
    time TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_zone ON ledger (zone, entry);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS open_litter (
    source TEXT NOT NULL,
    litter INTEGER NOT NULL,
    points INTEGER NOT NULL,
    PRIMARY KEY (source, litter)
);
CREATE TABLE IF NOT EXISTS revocations (
    keyid TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class SqliteLedgerStore(LedgerStore):
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise UserError(f"{path}: cannot open ledger database: {e}") from None
        self._lock = threading.RLock()

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self._lock:
            return self.conn.execute(sql, args).fetchone()

    def chain_head(self, source: str) -> tuple[int, str] | None:
        row = self._one("SELECT last_seq, last_hash FROM sources WHERE source = ?", (source,))
        return (int(row[0]), str(row[1])) if row else None

    def event_hash(self, source: str, event_id: str) -> str | None:
        row = self._one("SELECT hash FROM events WHERE source = ? AND id = ?", (source, event_id))
        return str(row[0]) if row else None

    def open_litter(self, source: str, litter: int) -> int | None:
        row = self._one("SELECT points FROM open_litter WHERE source = ? AND litter = ?", (source, litter))
        return int(row[0]) if row else None

    def append(self, acc: Accepted, prev_seq: int) -> None:
        now = time.time()
        with self._lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute("SELECT last_seq FROM sources WHERE source = ?", (acc.source,)).fetchone()
                if (int(row[0]) if row else 0) != prev_seq:
                    raise HeadMoved(acc.source)
                c.execute(
                    "INSERT INTO events (source, seq, id, hash, keyid, body, received_at) VALUES (?,?,?,?,?,?,?)",
                    (acc.source, acc.seq, acc.id, acc.hash, acc.keyid, acc.body, now),
                )
                c.execute(
                    "INSERT INTO ledger (zone, source, seq, event_id, kind, severity, object_class, litter, points,"
                    " claimed_points, time, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        acc.zone,
                        acc.source,
                        acc.seq,
                        acc.id,
                        acc.kind,
                        acc.severity,
                        acc.object_class,
                        acc.litter,
                        acc.points,
                        acc.claimed_points,
                        acc.time,
                        now,
                    ),
                )
                c.execute(
                    "INSERT INTO sources (source, last_seq, last_hash) VALUES (?,?,?) ON CONFLICT(source) "
                    "DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash",
                    (acc.source, acc.seq, acc.hash),
                )
                if acc.kind == "littering":
                    c.execute(
                        "INSERT OR REPLACE INTO open_litter (source, litter, points) VALUES (?,?,?)",
                        (acc.source, acc.litter, -acc.points),
                    )
                else:
                    c.executemany(
                        "DELETE FROM open_litter WHERE source = ? AND litter = ?",
                        [(acc.source, litter) for litter in (acc.litter, *acc.also)],
                    )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def is_revoked(self, keyid: str) -> bool:
        return self._one("SELECT 1 FROM revocations WHERE keyid = ?", (keyid,)) is not None

    def revoke(self, keyid: str, reason: str = "") -> bool:
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO revocations (keyid, revoked_at, reason) VALUES (?,?,?)",
                (keyid, time.time(), reason),
            )
            return cur.rowcount == 1

    def zones(self) -> list[ZoneTotal]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT zone, SUM(points), COUNT(*) FROM ledger GROUP BY zone ORDER BY zone"
            ).fetchall()
        return [ZoneTotal(z, int(t), int(n)) for z, t, n in rows]

    def zone(self, zone: str) -> ZoneTotal | None:
        row = self._one("SELECT SUM(points), COUNT(*) FROM ledger WHERE zone = ?", (zone,))
        if not row or not row[1]:
            return None
        return ZoneTotal(zone, int(row[0]), int(row[1]))

    def recent(self, zone: str, limit: int) -> list[dict]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT entry, time, kind, severity, object_class, points, source, seq, event_id FROM ledger "
                "WHERE zone = ? ORDER BY entry DESC LIMIT ?",
                (zone, limit),
            ).fetchall()
        keys = ("entry", "time", "kind", "severity", "object_class", "points", "source", "seq", "event_id")
        return [dict(zip(keys, r)) for r in rows]

    def ledger_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM ledger")[0])

    def ping(self) -> None:
        self._one("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self.conn.close()
