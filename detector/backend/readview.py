"""A per-process copy of the zone totals and of the API-key users, for PostgreSQL.

Why: under ingest a 2-core box is busy (signature checks hold the GIL, PostgreSQL's own
processes want the CPU), and each database round trip of a read, and each hand-over between
the event loop and a worker thread, waits its turn. Measured inside the server (1M ledger
rows, 1,500 events/s): a site's zones spent its p99 spread over the API-key lookup, the
zones query and three thread hand-overs, not in waiting for a pool connection (p99 0.5 ms).
Answered from memory on the event loop, a read needs none of them.

How it stays current: every write transaction that changes zone totals sends
`NOTIFY detector_zones` with the (site, zone) keys it changed (delivered to every listening
process only if it commits, in commit order); adding or disabling a user sends
`NOTIFY detector_users`. One thread per process LISTENs on its own connection and re-reads
the changed rows (absolute values, so a repeated or late notification cannot double count)
on a second connection. A process's own commits hand over their rows as the transaction
left them (read under its row locks), so a client reads its own writes at once.

The bound, whatever happens to notifications: a site's rows are also re-read whole when
they are `MAX_AGE_S / 2` old, and are never served older than `MAX_AGE_S`: a read answered
from memory reflects every transaction committed `MAX_AGE_S` before it (and, through the
notifications, in practice those committed a few milliseconds before). A cached user is
likewise at most `MAX_AGE_S` old. When the listening connection is down, or a site is
not loaded or too old, the caller reads the database as before (`zones` returns
None): the view only ever makes a read cheaper, never less correct than the bound.

Written here rather than taken from a library: it is a small cache over two tables whose
invalidation follows this store's own NOTIFY payloads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

import psycopg

from detector.backend.store import User, ZoneTotal
from detector.backend.store.postgres import USERS_CHANNEL, ZONE_COLS, ZONES_CHANNEL

log = logging.getLogger(__name__)

MAX_AGE_S = 5.0  # never serve a site's totals or a user read longer ago than this
_WAIT_S = 0.05  # the listener's longest sleep between looks at its notifications
_RELOAD_ROWS = 2000  # rows re-read per round by the age backstop (spreads the work)


class ReadView:
    def __init__(self, url: str, max_age_s: float = MAX_AGE_S):
        self.url = url
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, ZoneTotal]] = {}  # site -> zone -> totals
        self._sorted: dict[str, list[ZoneTotal]] = {}  # site -> zones with entries, by zone (what reads get)
        self._loaded_at: dict[str, float] = {}  # site -> monotonic start of the query that read it whole
        self._dirty: set[tuple[str, str]] = set()
        self._own_at: dict[tuple[str, str], float] = {}  # zone -> when an own commit's row was taken
        self._users: dict[str, tuple[User, float]] = {}  # key hash -> (user, monotonic read time)
        self._users_gen = 0  # counts user changes: a lookup that raced one is not cached
        self._alive = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-view", daemon=True)

    # -- the request side ------------------------------------------------------------------------
    def start(self, wait_s: float = 10.0) -> ReadView:
        self._thread.start()
        self._ready.wait(wait_s)  # reads fall back to the database until it is ready anyway
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def alive(self) -> bool:
        return self._alive

    def zones(self, site: str) -> list[ZoneTotal] | None:
        """The site's zones (with entries, by zone), or None: read the database."""
        now = time.monotonic()
        with self._lock:
            if not self._alive:
                return None
            loaded = self._loaded_at.get(site)
            if loaded is None or now - loaded > self.max_age_s:
                return None
            out = self._sorted.get(site)
            if out is None:
                rows = self._rows.get(site, {})
                out = self._sorted[site] = [rows[z] for z in sorted(rows) if rows[z].entries > 0]
            return out

    def committed(self, rows: Iterable[tuple]) -> None:
        """This process committed these zone rows (as its transaction left them): taken at once
        (read your own writes). A row does not replace one with more entries (entries only
        grow: two own commits may arrive here out of order); the listener re-reads the zones
        anyway and orders what concurrent commits left."""
        now = time.monotonic()
        with self._lock:
            for r in rows:
                key = (str(r[0]), str(r[1]))
                cur = self._rows.get(key[0], {}).get(key[1])
                if cur is None or int(r[3]) >= cur.entries:
                    self._put(r)
                self._own_at[key] = now
                self._dirty.add(key)

    def users_gen(self) -> int:
        return self._users_gen

    def user(self, key_hash: str) -> User | None:
        """A cached user of this key hash (None: not cached, ask the database)."""
        with self._lock:
            hit = self._users.get(key_hash) if self._alive else None
        if hit is None or time.monotonic() - hit[1] > self.max_age_s:
            return None
        return hit[0]

    def put_user(self, key_hash: str, user: User, gen: int, read_at: float) -> None:
        """Cache a user read from the database at `read_at` (monotonic), unless users changed
        since `gen` was taken (the read may predate the change)."""
        with self._lock:
            if self._alive and gen == self._users_gen:
                if len(self._users) > 10_000:  # bounded: only valid keys get here, but still
                    self._users.clear()
                self._users[key_hash] = (user, read_at)

    # -- the listener thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with (
                    psycopg.connect(self.url, autocommit=True, connect_timeout=10) as listen,
                    psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn,
                ):
                    listen.execute(f"LISTEN {ZONES_CHANNEL}")
                    listen.execute(f"LISTEN {USERS_CHANNEL}")
                    self._load_all(conn)  # after LISTEN: nothing committed since is missed
                    self._ready.set()
                    while not self._stop.is_set():
                        self._take(listen.notifies(timeout=_WAIT_S, stop_after=1))
                        self._refresh(conn)
            except Exception as e:  # the server, the network or a foreign payload on the channel
                # whatever it was, the view is emptied (reads go to the database) and starts over
                log.warning("read view: %s; reads go to the database until it reconnects", e)
            finally:
                self._set_dead()
                self._ready.set()
            self._stop.wait(1.0)

    def _set_dead(self) -> None:
        with self._lock:
            self._alive = False
            self._rows.clear()
            self._sorted.clear()
            self._loaded_at.clear()
            self._users.clear()
            self._users_gen += 1

    def _take(self, notifies) -> None:
        keys: set[tuple[str, str]] = set()
        users = False
        for n in notifies:
            if n.channel == USERS_CHANNEL:
                users = True
            else:
                keys.update((str(s), str(z)) for s, z in json.loads(n.payload))
        with self._lock:
            self._dirty |= keys
            if users:
                self._users.clear()
                self._users_gen += 1

    def _load_all(self, conn: psycopg.Connection) -> None:
        started = time.monotonic()
        rows = conn.execute(f"SELECT {ZONE_COLS} FROM zone_totals").fetchall()
        with self._lock:
            self._rows.clear()
            self._sorted.clear()
            self._apply(rows, started)
            self._loaded_at = dict.fromkeys(self._rows, started)
            self._users.clear()
            self._users_gen += 1
            self._alive = True

    def _put(self, r: tuple) -> None:
        site, zone = str(r[0]), str(r[1])
        self._rows.setdefault(site, {})[zone] = ZoneTotal(site, zone, int(r[2]), int(r[3]), int(r[4]), r[5])
        self._sorted.pop(site, None)

    def _refresh(self, conn: psycopg.Connection) -> None:
        now = time.monotonic()
        with self._lock:
            keys, self._dirty = self._dirty, set()
            # the age backstop: the oldest sites due (or never read whole), a bounded amount per round
            due = sorted((t, s) for s in self._rows if (t := self._loaded_at.get(s, 0.0)) < now - self.max_age_s / 2)
            whole, n = [], 0
            for _, s in due:
                if whole and n >= _RELOAD_ROWS:
                    break
                whole.append(s)
                n += len(self._rows.get(s, ())) or 1
        if not keys and not whole:
            return
        started = time.monotonic()
        rows: list[tuple] = []
        if keys:
            ks = sorted(keys)
            rows += conn.execute(
                f"SELECT {ZONE_COLS} FROM zone_totals"
                " WHERE (site, zone) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0] for k in ks], [k[1] for k in ks]),
            ).fetchall()
        if whole:
            rows += conn.execute(f"SELECT {ZONE_COLS} FROM zone_totals WHERE site = ANY(%s)", (whole,)).fetchall()
        with self._lock:
            self._apply(rows, started)
            for s in whole:
                self._loaded_at[s] = started

    def _apply(self, rows: list[tuple], started: float) -> None:
        """Rows read by a query that started at `started` (monotonic), under the lock."""
        for r in rows:
            key = (str(r[0]), str(r[1]))
            own = self._own_at.get(key)
            if own is not None:
                if own > started:  # the read may predate an own commit already taken: read it again
                    self._dirty.add(key)
                    continue
                del self._own_at[key]
            self._put(r)
