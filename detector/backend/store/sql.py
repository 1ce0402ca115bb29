"""One set of ledger queries for both databases; `sqlite.py` and `postgres.py` supply the
connections, the schema migrations and the few words that differ.

Queries are written with `?` placeholders (the PostgreSQL store turns them into `%s`) and
use only what SQLite 3.35+ and PostgreSQL 12+ share: `ON CONFLICT ... DO UPDATE`,
`RETURNING`, window-free aggregates.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from detector.backend.store.base import (
    Accepted,
    CameraView,
    ChainHead,
    Evidence,
    Gap,
    KeyRecord,
    LedgerStore,
    LedgerTx,
    SourceState,
    User,
    Void,
    ZoneTotal,
    site_of,
)
from detector.protocol.errors import UserError
from detector.protocol.events import GENESIS_PREVHASH
from detector.protocol.scoring import Effect, Litter


def utc_day(rfc3339_time: str) -> str:
    """The UTC calendar day of an event time (the sparkline's bucket)."""
    if rfc3339_time.endswith("Z"):  # what the schema allows: UTC, so the day is its first ten characters
        return rfc3339_time[:10]
    return datetime.fromisoformat(rfc3339_time).astimezone(UTC).strftime("%Y-%m-%d")


def _marks(n: int) -> str:
    return "(" + ",".join("?" * n) + ")"


class SqlTx(LedgerTx):
    def __init__(self, store: SqlLedgerStore, cur: Any):
        super().__init__()
        self.store = store
        self.cur = cur
        self._loaded: set[str] = set()  # sources whose outstanding litter is all in the overlay

    def _one(self, sql: str, args: Sequence = ()) -> tuple | None:
        self.cur.execute(self.store.q(sql), tuple(args))
        return self.cur.fetchone()

    def _db_head(self, source: str) -> ChainHead | None:
        row = self._one("SELECT last_seq, last_hash, last_time_ms, last_keyid FROM sources WHERE source = ?", (source,))
        return ChainHead(int(row[0]), str(row[1]), row[2], row[3]) if row else None

    def _db_event_hash(self, source: str, event_id: str) -> str | None:
        row = self._one("SELECT hash FROM events WHERE source = ? AND id = ?", (source, event_id))
        return str(row[0]) if row else None

    def _db_outstanding(self, source: str, litter: int) -> Litter | None:
        if source in self._loaded:
            return None  # all of the source's outstanding litter is in the overlay already
        row = self._one(
            "SELECT zone, points, severity FROM outstanding WHERE source = ? AND litter = ?", (source, litter)
        )
        return Litter(str(row[0]), int(row[1]), str(row[2])) if row else None

    def open_gap(self, source: str) -> Gap | None:
        row = self._one(
            "SELECT id, next_seq, reason FROM gaps WHERE source = ? AND used_seq IS NULL ORDER BY id DESC LIMIT 1",
            (source,),
        )
        return Gap(int(row[0]), source, row[1], str(row[2])) if row else None

    def prefetch_hashes(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Look up the accepted hashes of many (source, id) at once (one query per source)."""
        by_source: dict[str, set[str]] = {}
        for source, eid in pairs:
            if (source, eid) not in self.o.hashes:
                by_source.setdefault(source, set()).add(eid)
        for source, ids in by_source.items():
            ids = sorted(ids)
            found = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                self.cur.execute(
                    self.store.q(f"SELECT id, hash FROM events WHERE source = ? AND id IN {_marks(len(chunk))}"),
                    (source, *chunk),
                )
                found.update({str(a): str(b) for a, b in self.cur.fetchall()})
            for eid in ids:
                if eid in found:
                    self.o.hashes[(source, eid)] = found[eid]
                else:
                    # not accepted yet: remember the miss so the event is not looked up again
                    self.o.hashes.setdefault((source, eid), None)

    def prefetch_outstanding(self, sources: Iterable[str]) -> None:
        """Load the litter outstanding of these sources at once (one query), so the points rule
        looks nothing up one by one; what is not found is not outstanding."""
        todo = sorted(set(sources) - self._loaded)
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            self.cur.execute(
                self.store.q(
                    "SELECT source, litter, zone, points, severity FROM outstanding"
                    f" WHERE source IN {_marks(len(chunk))}"
                ),
                tuple(chunk),
            )
            for source, litter, zone, points, severity in self.cur.fetchall():
                self.o.litter.setdefault((str(source), int(litter)), Litter(str(zone), int(points), str(severity)))
        self._loaded.update(todo)

    # -- what a void replays (an operator action: the whole source's events are read) ---------------
    def history(self, source: str) -> list[tuple[int, str, bytes]]:
        """(seq, id, canonical body) of every accepted event of the source, in chain order."""
        self.cur.execute(self.store.q("SELECT seq, id, body FROM events WHERE source = ? ORDER BY seq"), (source,))
        return [(int(s), str(i), bytes(b)) for s, i, b in self.cur.fetchall()]

    def voided_ids(self, source: str) -> set[str]:
        self.cur.execute(self.store.q("SELECT event_id FROM voids WHERE source = ?"), (source,))
        return {str(r[0]) for r in self.cur.fetchall()} | {v.event_id for v, _, _ in self.o.voids if v.source == source}

    def debits(self, source: str) -> dict[int, dict[int, int]]:
        """seq -> litter -> points its opening debited (as accepted)."""
        self.cur.execute(
            self.store.q(
                "SELECT seq, litter, points FROM ledger WHERE source = ? AND points < 0"
                " AND kind IN ('littering', 'found')"
            ),
            (source,),
        )
        out: dict[int, dict[int, int]] = {}
        for seq, litter, points in self.cur.fetchall():
            out.setdefault(int(seq), {})[int(litter)] = -int(points)
        return out

    def all_outstanding(self, source: str) -> dict[int, Litter]:
        self.prefetch_outstanding([source])
        return {lid: lit for (s, lid), lit in self.o.litter.items() if s == source and lit is not None}

    def existing_void(self, source: str, event_id: str) -> Void | None:
        row = self._one(
            "SELECT event_id, source, voided_by, voided_at, reason, points FROM voids"
            " WHERE source = ? AND event_id = ?",
            (source, event_id),
        )
        return Void(*row) if row else None


class SqlLedgerStore(LedgerStore):
    dialect = "sql"
    lock_suffix = ""  # PostgreSQL: " FOR UPDATE"

    # -- what a dialect provides ---------------------------------------------------------------
    @abc.abstractmethod
    @contextmanager
    def _read(self) -> Iterator[Any]:
        """A cursor for reads."""

    @abc.abstractmethod
    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A cursor inside a write transaction, committed when the block exits normally."""

    def q(self, sql: str) -> str:
        return sql

    # Called after a transaction that changed zone totals committed, with what `_zones_changed`
    # returned (the PostgreSQL read view: a process reads its own writes at once).
    on_zones_committed: Callable[[list], None] | None = None

    def _zones_changed(self, cur: Any, keys: list[tuple[str, str]]) -> Any:
        """Inside a write transaction that changed these zones' totals: what to hand to
        `_zones_committed` after the commit (PostgreSQL: the keys, and the rows as this
        transaction leaves them)."""
        return None

    def _zones_committed(self, changed: Any) -> None:
        """After the commit of a transaction whose `_zones_changed` returned `changed`."""

    def _users_changed(self, cur: Any) -> None:
        """Inside a write transaction that added or disabled a user (PostgreSQL: NOTIFY)."""

    # -- helpers -------------------------------------------------------------------------------
    def _one(self, sql: str, args: Sequence = ()) -> tuple | None:
        with self._read() as cur:
            cur.execute(self.q(sql), tuple(args))
            return cur.fetchone()

    def _all(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._read() as cur:
            cur.execute(self.q(sql), tuple(args))
            return cur.fetchall()

    def _exec(self, sql: str, args: Sequence = ()) -> int:
        with self._write() as cur:
            cur.execute(self.q(sql), tuple(args))
            return cur.rowcount

    # -- the ledger ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self, sources: Iterable[str]) -> Iterator[SqlTx]:
        sources = sorted(set(sources))  # one lock order for every writer: no deadlocks
        with self._write() as cur:
            if sources:
                cur.executemany(
                    self.q(
                        "INSERT INTO sources (source, site, last_seq, last_hash) VALUES (?,?,0,?) "
                        "ON CONFLICT (source) DO NOTHING"
                    ),
                    [(s, site_of(s), GENESIS_PREVHASH) for s in sources],
                )
                cur.execute(
                    self.q(
                        "SELECT source, last_seq, last_hash, last_time_ms, last_keyid FROM sources"
                        f" WHERE source IN {_marks(len(sources))} ORDER BY source{self.lock_suffix}"
                    ),
                    tuple(sources),
                )
                heads = {str(s): ChainHead(int(n), str(h), t, k) for s, n, h, t, k in cur.fetchall()}
            tx = SqlTx(self, cur)
            for s in sources:
                tx.o.heads[s] = heads[s]
            yield tx
            changed = self._flush(cur, tx)
        if changed:
            self._zones_committed(changed)

    def _flush(self, cur: Any, tx: SqlTx) -> Any:
        """Write what the transaction did; returns what `_zones_changed` returned (or None)."""
        o = tx.o
        now = time.time()
        q = self.q
        changed = None
        totals: dict[tuple[str, str], list] = {}  # (site, zone) -> [points, entries, last act time]
        days: dict[tuple[str, str, str], int] = {}
        rows: list[tuple] = []  # ledger rows

        def count(site: str, zone: str, points: int, when: str, day: str) -> None:
            t = totals.setdefault((site, zone), [0, 0, when])
            t[0] += points
            t[1] += 1
            t[2] = max(t[2], when) if t[2] else when
            days[(site, zone, day)] = days.get((site, zone, day), 0) + points

        for a in o.appended:
            day = utc_day(a.time)
            for i, e in enumerate(a.effect.entries):
                rows.append(
                    (a.site, e.zone, a.source, a.seq, a.id, a.kind, e.severity, a.object_class, e.litter, e.points)
                    + (a.claimed_points if i == 0 else 0, a.time, now)
                )
                count(a.site, e.zone, e.points, a.time, day)
        for v, meta, effect in o.voids:
            when = datetime.fromtimestamp(v.voided_at, UTC)
            stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for e in effect.entries:
                rows.append(
                    (meta["site"], e.zone, v.source, meta["seq"], v.event_id, "void", e.severity)
                    + (meta["object_class"], e.litter, e.points, 0, stamp, now)
                )
                # the void counts on the day it was made (the sparkline shows when the score came back)
                count(meta["site"], e.zone, e.points, meta["time"], when.strftime("%Y-%m-%d"))
            cur.execute(
                q("INSERT INTO voids (event_id, source, voided_by, voided_at, reason, points) VALUES (?,?,?,?,?,?)"),
                (v.event_id, v.source, v.voided_by, v.voided_at, v.reason, v.points),
            )
        if o.appended:
            cur.executemany(
                q(
                    "INSERT INTO events (source, seq, id, hash, keyid, body, received_at, evidence_sha256) "
                    "VALUES (?,?,?,?,?,?,?,?)"
                ),
                [(a.source, a.seq, a.id, a.hash, a.keyid, a.body, now, a.evidence_sha256) for a in o.appended],
            )
            last: dict[str, Accepted] = {}
            for a in o.appended:
                last[a.source] = a
            cur.executemany(
                q(
                    "UPDATE sources SET last_seq = ?, last_hash = ?, last_time_ms = ?, last_keyid = ?, last_time = ?,"
                    " last_received_at = ?, blocked_reason = NULL, blocked_detail = NULL, blocked_at = NULL,"
                    " blocked_seq = NULL WHERE source = ?"
                ),
                [(a.seq, a.hash, a.time_ms, a.keyid, a.time, now, s) for s, a in sorted(last.items())],
            )
            gaps = [(a.seq, now, a.gap) for a in o.appended if a.gap is not None]
            if gaps:
                cur.executemany(q("UPDATE gaps SET used_seq = ?, used_at = ? WHERE id = ? AND used_seq IS NULL"), gaps)
        if o.key_changes:
            cur.executemany(
                q("INSERT INTO key_changes (source, seq, old_keyid, new_keyid, at) VALUES (?,?,?,?,?)"),
                [(*kc, now) for kc in o.key_changes],
            )
        if rows:
            cur.executemany(
                q(
                    "INSERT INTO ledger (site, zone, source, seq, event_id, kind, severity, object_class, litter,"
                    " points, claimed_points, time, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                ),
                rows,
            )
        closed = [(s, lit) for (s, lit), v in o.litter.items() if v is None]
        opened = [(s, lit, v.zone, v.points, v.severity) for (s, lit), v in o.litter.items() if v is not None]
        if closed:
            cur.executemany(q("DELETE FROM outstanding WHERE source = ? AND litter = ?"), closed)
        if opened:
            cur.executemany(
                q(
                    "INSERT INTO outstanding (source, litter, zone, points, severity) VALUES (?,?,?,?,?) "
                    "ON CONFLICT (source, litter) DO UPDATE SET zone = excluded.zone, points = excluded.points,"
                    " severity = excluded.severity"
                ),
                opened,
            )
        for key in o.litter_count:
            totals.setdefault(key, [0, 0, None])
        if totals:
            # sorted: concurrent transactions take the zone rows' locks in one order
            cur.executemany(
                q(
                    "INSERT INTO zone_totals (site, zone, total, entries, outstanding, last_time) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (site, zone) DO UPDATE SET total = zone_totals.total + excluded.total,"
                    " entries = zone_totals.entries + excluded.entries,"
                    " outstanding = zone_totals.outstanding + excluded.outstanding,"
                    " last_time = CASE WHEN zone_totals.last_time IS NULL OR excluded.last_time > zone_totals.last_time"
                    " THEN excluded.last_time ELSE zone_totals.last_time END"
                ),
                [(s, z, t[0], t[1], o.litter_count.get((s, z), 0), t[2]) for (s, z), t in sorted(totals.items())],
            )
            changed = self._zones_changed(cur, sorted(totals))
        if days:
            cur.executemany(
                q(
                    "INSERT INTO zone_days (site, zone, day, points) VALUES (?,?,?,?) "
                    "ON CONFLICT (site, zone, day) DO UPDATE SET points = zone_days.points + excluded.points"
                ),
                [(s, z, d, p) for (s, z, d), p in sorted(days.items())],
            )
        if o.blocked:
            cur.executemany(
                q(
                    "UPDATE sources SET blocked_reason = ?, blocked_detail = ?, blocked_seq = ?, blocked_at = ?"
                    " WHERE source = ?"
                ),
                [(r, d[:500], seq, now, s) for s, (r, d, seq) in sorted(o.blocked.items())],
            )
        return changed

    def void(self, event_id: str, by: str, reason: str, compensate) -> tuple[Void, bool]:
        rows = self._all(
            "SELECT site, zone, source, seq, kind, severity, object_class, litter, points, time "
            "FROM ledger WHERE event_id = ? AND kind <> 'void' ORDER BY entry",
            (event_id,),
        )
        if not rows:
            raise KeyError(event_id)
        cols = ("site", "zone", "source", "seq", "kind", "severity", "object_class", "litter", "points", "time")
        entries = [dict(zip(cols, r)) for r in rows]
        source = entries[0]["source"]
        entries = [e for e in entries if e["source"] == source]  # ids are per source: one act
        with self.transaction([source]) as tx:
            old = tx.existing_void(source, event_id)
            if old is not None:
                return old, False
            effect: Effect = compensate(tx, entries)
            tx.commit_effect(source, effect)
            v = Void(event_id, source, by, time.time(), reason, effect.points)
            tx.o.voids.append((v, entries[0], effect))
        return v, True

    def zones(self, site: str | None = None) -> list[ZoneTotal]:
        cols = "SELECT site, zone, total, entries, outstanding, last_time FROM zone_totals WHERE entries > 0"
        if site is None:
            rows = self._all(cols + " ORDER BY site, zone")
        else:
            rows = self._all(cols + " AND site = ? ORDER BY zone", (site,))
        return [ZoneTotal(str(s), str(z), int(t), int(n), int(o), lt) for s, z, t, n, o, lt in rows]

    def zone(self, site: str, zone: str) -> ZoneTotal | None:
        row = self._one(
            "SELECT total, entries, outstanding, last_time FROM zone_totals"
            " WHERE site = ? AND zone = ? AND entries > 0",
            (site, zone),
        )
        return ZoneTotal(site, zone, int(row[0]), int(row[1]), int(row[2]), row[3]) if row else None

    def sites(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT DISTINCT site FROM zone_totals ORDER BY site")]

    def recent(self, site: str, zone: str, limit: int) -> list[dict]:
        rows = self._all(
            "SELECT l.entry, l.time, l.kind, l.severity, l.object_class, l.points, l.source, l.seq, l.event_id,"
            " e.evidence_sha256, v.voided_by, v.voided_at, v.reason, l.received_at, l.litter"
            " FROM ledger l"
            " LEFT JOIN events e ON e.source = l.source AND e.id = l.event_id"
            " LEFT JOIN voids v ON v.source = l.source AND v.event_id = l.event_id"
            " WHERE l.site = ? AND l.zone = ? ORDER BY l.entry DESC LIMIT ?",
            (site, zone, limit),
        )
        out = []
        for r in rows:
            d = dict(
                zip(("entry", "time", "kind", "severity", "object_class", "points", "source", "seq", "event_id"), r)
            )
            d["evidence_sha256"] = r[9] if d["kind"] != "void" else None
            d["received_at"] = float(r[13])
            d["litter"] = int(r[14])
            voided = r[10] is not None and d["kind"] != "void"
            d["void"] = {"by": r[10], "at": float(r[11]), "reason": r[12]} if voided else None
            out.append(d)
        return out

    def daily(self, site: str, zone: str, days: int) -> list[tuple[str, int]]:
        rows = self._all(
            "SELECT day, points FROM zone_days WHERE site = ? AND zone = ? ORDER BY day DESC LIMIT ?",
            (site, zone, days),
        )
        return [(str(d), int(p)) for d, p in reversed(rows)]

    def ledger_count(self) -> int:
        # from the incremental totals: a COUNT(*) over millions of rows is a full scan
        return int(self._one("SELECT COALESCE(SUM(entries), 0) FROM zone_totals")[0])

    def source_states(self, site: str | None = None) -> list[SourceState]:
        cols = (
            "SELECT source, last_seq, last_time, last_received_at, blocked_reason, blocked_detail, blocked_at"
            " FROM sources"
        )
        rows = (
            self._all(cols + " ORDER BY source")
            if site is None
            else self._all(cols + " WHERE site = ? ORDER BY source", (site,))
        )
        return [
            SourceState(str(s), int(n), t, float(r) if r is not None else None, br, bd, float(ba) if ba else None)
            for s, n, t, r, br, bd, ba in rows
        ]

    # -- camera keys -------------------------------------------------------------------------------
    def add_key(self, keyid: str, source: str, public_b64: str, by: str) -> bool:
        with self._write() as cur:
            cur.execute(self.q("SELECT source FROM camera_keys WHERE keyid = ?"), (keyid,))
            row = cur.fetchone()
            if row is not None:
                if row[0] != source:
                    raise ValueError(f"key {keyid} is registered for {row[0]}")
                return False
            cur.execute(
                self.q("INSERT INTO camera_keys (keyid, source, public_b64, added_at, added_by) VALUES (?,?,?,?,?)"),
                (keyid, source, public_b64, time.time(), by),
            )
            return True

    def keys(self, keyids: Iterable[str] | None = None) -> list[KeyRecord]:
        cols = (
            "SELECT k.keyid, k.source, k.public_b64, k.added_at, k.added_by, r.revoked_at, r.reason"
            " FROM camera_keys k LEFT JOIN revocations r ON r.keyid = k.keyid"
        )
        if keyids is None:
            rows = self._all(cols + " ORDER BY k.source, k.added_at")
        else:
            ids = sorted(set(keyids))
            if not ids:
                return []
            rows = self._all(cols + f" WHERE k.keyid IN {_marks(len(ids))}", ids)
        return [
            KeyRecord(k, s, p, float(a), b, float(ra) if ra is not None else None, rr or "")
            for k, s, p, a, b, ra, rr in rows
        ]

    def revocation(self, keyid: str) -> tuple[float, str] | None:
        row = self._one("SELECT revoked_at, reason FROM revocations WHERE keyid = ?", (keyid,))
        return (float(row[0]), str(row[1])) if row else None

    def revoke(self, keyid: str, reason: str = "", by: str = "") -> bool:
        return (
            self._exec(
                "INSERT INTO revocations (keyid, revoked_at, reason, revoked_by) VALUES (?,?,?,?)"
                " ON CONFLICT (keyid) DO NOTHING",
                (keyid, time.time(), reason, by),
            )
            == 1
        )

    # -- users and sessions ----------------------------------------------------------------------
    def add_user(self, name: str, role: str, key_hash: str) -> None:
        with self._write() as cur:
            cur.execute(self.q("SELECT 1 FROM users WHERE name = ?"), (name,))
            if cur.fetchone() is not None:
                raise ValueError(f"user {name!r} exists")
            cur.execute(
                self.q("INSERT INTO users (name, role, key_hash, created_at) VALUES (?,?,?,?)"),
                (name, role, key_hash, time.time()),
            )
            self._users_changed(cur)

    def users(self) -> list[User]:
        rows = self._all("SELECT name, role, created_at, disabled_at FROM users ORDER BY name")
        return [User(n, r, float(c), float(d) if d is not None else None) for n, r, c, d in rows]

    def disable_user(self, name: str) -> bool:
        with self._write() as cur:
            cur.execute(
                self.q("UPDATE users SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL"), (time.time(), name)
            )
            done = cur.rowcount == 1
            cur.execute(self.q("DELETE FROM sessions WHERE user_name = ?"), (name,))
            self._users_changed(cur)
            return done

    def user_by_key_hash(self, key_hash: str) -> User | None:
        row = self._one(
            "SELECT name, role, created_at FROM users WHERE key_hash = ? AND disabled_at IS NULL", (key_hash,)
        )
        return User(str(row[0]), str(row[1]), float(row[2])) if row else None

    def add_session(self, token_hash: str, user: str, expires_at: float) -> None:
        now = time.time()
        with self._write() as cur:
            cur.execute(self.q("DELETE FROM sessions WHERE expires_at < ?"), (now,))
            cur.execute(
                self.q("INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES (?,?,?,?)"),
                (token_hash, user, now, expires_at),
            )

    def session_user(self, token_hash: str, now: float) -> User | None:
        row = self._one(
            "SELECT u.name, u.role, u.created_at FROM sessions s JOIN users u ON u.name = s.user_name"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
            (token_hash, now),
        )
        return User(str(row[0]), str(row[1]), float(row[2])) if row else None

    def end_session(self, token_hash: str) -> None:
        self._exec("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # -- evidence and camera views ---------------------------------------------------------------
    def evidence_named(self, sha256: str, since: float = 0.0) -> bool:
        """Named by an accepted event or a camera view received at or after `since` (older ones'
        evidence has expired: it is not taken again)."""
        return (
            self._one("SELECT 1 FROM events WHERE evidence_sha256 = ? AND received_at >= ? LIMIT 1", (sha256, since))
            is not None
            or self._one(
                "SELECT 1 FROM camera_views WHERE frame_sha256 = ? AND received_at >= ? LIMIT 1", (sha256, since)
            )
            is not None
        )

    def purge_evidence(self, before: float) -> int:
        """Delete evidence received before `before`, except each camera's latest reference frame."""
        return self._exec(
            "DELETE FROM evidence WHERE received_at < ? AND sha256 NOT IN (SELECT v.frame_sha256 FROM camera_views v"
            " WHERE v.view_id = (SELECT MAX(w.view_id) FROM camera_views w WHERE w.source = v.source))",
            (before,),
        )

    def put_evidence(self, sha256: str, content_type: str, body: bytes) -> bool:
        return (
            self._exec(
                "INSERT INTO evidence (sha256, content_type, size, body, received_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (sha256, content_type, len(body), body, time.time()),
            )
            == 1
        )

    def evidence(self, sha256: str) -> Evidence | None:
        row = self._one("SELECT content_type, body FROM evidence WHERE sha256 = ?", (sha256,))
        return Evidence(sha256, str(row[0]), bytes(row[1])) if row else None

    def put_view(self, view: CameraView) -> None:
        import json

        self._exec(
            "INSERT INTO camera_views (source, site, frame_sha256, width, height, zones, time, received_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                view.source,
                site_of(view.source),
                view.frame_sha256,
                view.width,
                view.height,
                json.dumps(view.zones),
                view.time,
                view.received_at,
            ),
        )

    def views(self, site: str) -> list[CameraView]:
        import json

        rows = self._all(
            "SELECT v.source, v.frame_sha256, v.width, v.height, v.zones, v.time, v.received_at FROM camera_views v"
            " WHERE v.site = ? AND v.view_id = (SELECT MAX(w.view_id) FROM camera_views w WHERE w.source = v.source)"
            " ORDER BY v.source",
            (site,),
        )
        return [CameraView(s, f, int(w), int(h), json.loads(z), t, float(r)) for s, f, w, h, z, t, r in rows]

    # -- chain recovery (audited) ----------------------------------------------------------------
    def accept_gap(self, source: str, next_seq: int | None, reason: str) -> Gap:
        with self.transaction([source]) as tx:
            head_seq = tx.head(source).seq
            if next_seq is not None and next_seq <= head_seq:
                raise UserError(f"--next-seq {next_seq}: {source} is already at seq {head_seq}; give a later one")
            now = time.time()
            # one open permission per source: a new one replaces (and closes) the old
            tx.cur.execute(
                self.q("UPDATE gaps SET used_seq = -1, used_at = ? WHERE source = ? AND used_seq IS NULL"),
                (now, source),
            )
            tx.cur.execute(
                self.q(
                    "INSERT INTO gaps (source, head_seq, next_seq, reason, accepted_at) VALUES (?,?,?,?,?) RETURNING id"
                ),
                (source, head_seq, next_seq, reason, now),
            )
            gid = int(tx.cur.fetchone()[0])
        return Gap(gid, source, next_seq, reason)

    # single reads: a read cursor, not a write transaction (SQLite's would take the write lock)
    def chain_head(self, source: str) -> ChainHead | None:
        with self._read() as cur:
            return SqlTx(self, cur)._db_head(source)

    def event_hash(self, source: str, event_id: str) -> str | None:
        with self._read() as cur:
            return SqlTx(self, cur)._db_event_hash(source, event_id)

    def outstanding(self, source: str, litter: int) -> Litter | None:
        with self._read() as cur:
            return SqlTx(self, cur)._db_outstanding(source, litter)

    def open_gap(self, source: str) -> Gap | None:
        with self._read() as cur:
            return SqlTx(self, cur).open_gap(source)

    def sources(self) -> list[dict]:
        heads = self._all(
            "SELECT source, last_seq, last_time_ms, last_keyid FROM sources WHERE last_seq > 0 ORDER BY source"
        )
        gaps = self._all("SELECT source, head_seq, next_seq, reason, accepted_at, used_seq FROM gaps ORDER BY id")
        changes = self._all("SELECT source, seq, old_keyid, new_keyid, at FROM key_changes ORDER BY source, seq")

        def blank(s: str) -> dict:
            return {"source": s, "seq": 0, "time_ms": None, "keyid": None, "gaps": [], "key_changes": []}

        out: dict[str, dict] = {
            s: {"source": s, "seq": q, "time_ms": t, "keyid": k, "gaps": [], "key_changes": []} for s, q, t, k in heads
        }
        for s, head_seq, next_seq, reason, at, used in gaps:
            out.setdefault(s, blank(s))["gaps"].append(
                {"head_seq": head_seq, "next_seq": next_seq, "reason": reason, "accepted_at": at, "used_seq": used}
            )
        for s, seq, old, new, at in changes:
            out.setdefault(s, blank(s))["key_changes"].append(
                {"seq": seq, "old_keyid": old, "new_keyid": new, "at": at}
            )
        return list(out.values())

    def probe_write(self) -> None:
        now = time.time()
        self._exec(
            "INSERT INTO health (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = ?", (now, now)
        )

    def ping(self) -> None:
        self._one("SELECT 1")
