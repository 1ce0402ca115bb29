"""SQLite ledger store (the embedded default).

The ledger table is append-only (triggers refuse UPDATE and DELETE). Appending an accepted
event writes the raw event, its ledger entries (one per zone and litter the points rule
changed), the source's new chain head and the outstanding-litter bookkeeping in one
transaction, so a crash leaves either all of it or none. Opening checks the database
(integrity, schema version) and refuses one that fails with a one-line UserError.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from detector.backend.store.base import (
    Accepted,
    ChainHead,
    Gap,
    HeadMoved,
    LedgerStore,
    ZoneTotal,
    storage_error,
)
from detector.protocol.errors import UserError
from detector.protocol.scoring import Litter

SCHEMA_VERSION = 2  # PRAGMA user_version; 1 (unversioned, before the outstanding-litter rule) is refused

_SCHEMA = """
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


def _integrity(conn: sqlite3.Connection) -> str | None:
    """None when SQLite finds the file sound, else its first complaint."""
    rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    return None if rows == [("ok",)] else str(rows[0][0])


class SqliteLedgerStore(LedgerStore):
    def __init__(self, path: Path, check: bool = True):
        """Open (or create) the ledger. With `check`, refuse a damaged file or a schema this
        code does not write (UserError, one line)."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout=30000")
            if check:
                # quick_check reads every page and row (O(size), a few seconds per GB) but skips
                # the index-to-table cross-check of integrity_check; enough to find a truncated
                # or overwritten file before any of it is trusted.
                problem = _integrity(self.conn)
                if problem is not None:
                    raise UserError(f"{path}: ledger database is damaged ({problem}): restore it from a backup")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{path}: cannot open ledger database: {e}") from None
        except OSError as e:
            raise UserError(f"{path}: cannot open ledger database: {e}") from None
        self._lock = threading.RLock()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if version == 0 and tables == 0:
            # One transaction (a crash leaves no half schema); IF NOT EXISTS lets a second
            # process that raced to create it run the same script harmlessly.
            self.conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            return
        if version == 0:
            raise UserError(
                f"{self.path}: ledger schema 1 (written before outstanding-litter scoring; its totals can hold "
                f"banked credit): this backend needs schema {SCHEMA_VERSION}; start a new ledger file"
            )
        if version != SCHEMA_VERSION:
            raise UserError(f"{self.path}: ledger schema {version}, this backend knows {SCHEMA_VERSION}")

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self._lock:
            return self.conn.execute(sql, args).fetchone()

    def chain_head(self, source: str) -> ChainHead | None:
        row = self._one("SELECT last_seq, last_hash, last_time_ms, last_keyid FROM sources WHERE source = ?", (source,))
        return ChainHead(int(row[0]), str(row[1]), row[2], row[3]) if row else None

    def event_hash(self, source: str, event_id: str) -> str | None:
        row = self._one("SELECT hash FROM events WHERE source = ? AND id = ?", (source, event_id))
        return str(row[0]) if row else None

    def outstanding(self, source: str, litter: int) -> Litter | None:
        row = self._one(
            "SELECT zone, points, severity FROM outstanding WHERE source = ? AND litter = ?", (source, litter)
        )
        return Litter(str(row[0]), int(row[1]), str(row[2])) if row else None

    def append(self, acc: Accepted, prev_seq: int) -> None:
        now = time.time()
        with self._lock:
            c = self.conn
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    row = c.execute(
                        "SELECT last_seq, last_keyid FROM sources WHERE source = ?", (acc.source,)
                    ).fetchone()
                    if (int(row[0]) if row else 0) != prev_seq:
                        raise HeadMoved(acc.source)
                    c.execute(
                        "INSERT INTO events (source, seq, id, hash, keyid, body, received_at) VALUES (?,?,?,?,?,?,?)",
                        (acc.source, acc.seq, acc.id, acc.hash, acc.keyid, acc.body, now),
                    )
                    c.executemany(
                        "INSERT INTO ledger (zone, source, seq, event_id, kind, severity, object_class, litter,"
                        " points, claimed_points, time, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        [
                            (
                                e.zone,
                                acc.source,
                                acc.seq,
                                acc.id,
                                acc.kind,
                                e.severity,
                                acc.object_class,
                                e.litter,
                                e.points,
                                acc.claimed_points if i == 0 else 0,
                                acc.time,
                                now,
                            )
                            for i, e in enumerate(acc.effect.entries)
                        ],
                    )
                    c.executemany(
                        "DELETE FROM outstanding WHERE source = ? AND litter = ?",
                        [(acc.source, lid) for lid in acc.effect.closed],
                    )
                    c.executemany(
                        "INSERT INTO outstanding (source, litter, zone, points, severity) VALUES (?,?,?,?,?)",
                        [(acc.source, lid, lit.zone, lit.points, lit.severity) for lid, lit in acc.effect.opened],
                    )
                    c.execute(
                        "INSERT INTO sources (source, last_seq, last_hash, last_time_ms, last_keyid) VALUES (?,?,?,?,?)"
                        " ON CONFLICT(source) DO UPDATE SET last_seq = excluded.last_seq,"
                        " last_hash = excluded.last_hash, last_time_ms = excluded.last_time_ms,"
                        " last_keyid = excluded.last_keyid",
                        (acc.source, acc.seq, acc.hash, acc.time_ms, acc.keyid),
                    )
                    if row is not None and row[1] is not None and row[1] != acc.keyid:
                        c.execute(
                            "INSERT INTO key_changes (source, seq, old_keyid, new_keyid, at) VALUES (?,?,?,?,?)",
                            (acc.source, acc.seq, row[1], acc.keyid, now),
                        )
                    if acc.gap is not None:
                        c.execute(
                            "UPDATE gaps SET used_seq = ?, used_at = ? WHERE id = ? AND used_seq IS NULL",
                            (acc.seq, now, acc.gap),
                        )
                    c.execute("COMMIT")
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                raise storage_error(e, self.path) from None

    def is_revoked(self, keyid: str) -> bool:
        return self._one("SELECT 1 FROM revocations WHERE keyid = ?", (keyid,)) is not None

    def revoke(self, keyid: str, reason: str = "") -> bool:
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO revocations (keyid, revoked_at, reason) VALUES (?,?,?)",
                (keyid, time.time(), reason),
            )
            return cur.rowcount == 1

    def accept_gap(self, source: str, next_seq: int | None, reason: str) -> Gap:
        with self._lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                head = c.execute("SELECT last_seq FROM sources WHERE source = ?", (source,)).fetchone()
                head_seq = int(head[0]) if head else 0
                if next_seq is not None and next_seq <= head_seq:
                    raise UserError(f"--next-seq {next_seq}: {source} is already at seq {head_seq}; give a later one")
                # one open permission per source: a new one replaces (and closes) the old
                c.execute(
                    "UPDATE gaps SET used_seq = -1, used_at = ? WHERE source = ? AND used_seq IS NULL",
                    (time.time(), source),
                )
                cur = c.execute(
                    "INSERT INTO gaps (source, head_seq, next_seq, reason, accepted_at) VALUES (?,?,?,?,?)",
                    (source, head_seq, next_seq, reason, time.time()),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return Gap(int(cur.lastrowid), source, next_seq, reason)

    def open_gap(self, source: str) -> Gap | None:
        row = self._one(
            "SELECT id, next_seq, reason FROM gaps WHERE source = ? AND used_seq IS NULL ORDER BY id DESC LIMIT 1",
            (source,),
        )
        return Gap(int(row[0]), source, row[1], str(row[2])) if row else None

    def sources(self) -> list[dict]:
        with self._lock:
            heads = self.conn.execute(
                "SELECT source, last_seq, last_time_ms, last_keyid FROM sources ORDER BY source"
            ).fetchall()
            gaps = self.conn.execute(
                "SELECT source, head_seq, next_seq, reason, accepted_at, used_seq FROM gaps ORDER BY id"
            ).fetchall()
            changes = self.conn.execute(
                "SELECT source, seq, old_keyid, new_keyid, at FROM key_changes ORDER BY source, seq"
            ).fetchall()
        out: dict[str, dict] = {
            s: {"source": s, "seq": q, "time_ms": t, "keyid": k, "gaps": [], "key_changes": []} for s, q, t, k in heads
        }
        for s, head_seq, next_seq, reason, at, used in gaps:
            out.setdefault(s, {"source": s, "seq": 0, "time_ms": None, "keyid": None, "gaps": [], "key_changes": []})
            out[s]["gaps"].append(
                {"head_seq": head_seq, "next_seq": next_seq, "reason": reason, "accepted_at": at, "used_seq": used}
            )
        for s, seq, old, new, at in changes:
            out[s]["key_changes"].append({"seq": seq, "old_keyid": old, "new_keyid": new, "at": at})
        return list(out.values())

    def zones(self) -> list[ZoneTotal]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT zone, SUM(points), COUNT(*) FROM ledger GROUP BY zone ORDER BY zone"
            ).fetchall()
            litter = dict(self.conn.execute("SELECT zone, COUNT(*) FROM outstanding GROUP BY zone").fetchall())
        return [ZoneTotal(z, int(t), int(n), int(litter.get(z, 0))) for z, t, n in rows]

    def zone(self, zone: str) -> ZoneTotal | None:
        row = self._one("SELECT SUM(points), COUNT(*) FROM ledger WHERE zone = ?", (zone,))
        if not row or not row[1]:
            return None
        litter = self._one("SELECT COUNT(*) FROM outstanding WHERE zone = ?", (zone,))[0]
        return ZoneTotal(zone, int(row[0]), int(row[1]), int(litter))

    def recent(self, zone: str, limit: int) -> list[dict]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT entry, time, kind, severity, object_class, litter, points, source, seq, event_id FROM ledger "
                "WHERE zone = ? ORDER BY entry DESC LIMIT ?",
                (zone, limit),
            ).fetchall()
        keys = ("entry", "time", "kind", "severity", "object_class", "litter", "points", "source", "seq", "event_id")
        return [dict(zip(keys, r)) for r in rows]

    def ledger_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM ledger")[0])

    def ping(self) -> None:
        self._one("SELECT 1")

    def probe_write(self) -> None:
        with self._lock:
            try:
                self.conn.execute(
                    "INSERT INTO health (id, probed_at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET probed_at = ?",
                    (time.time(), time.time()),
                )
            except sqlite3.OperationalError as e:
                raise storage_error(e, self.path) from None

    def close(self) -> None:
        with self._lock:
            self.conn.close()
