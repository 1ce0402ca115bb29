"""Durable edge outbox (SQLite, WAL) and the sender that drains it into a sink.

- `Outbox.add(act)` signs the act and commits the event *and* the new chain state (seq,
  prevhash, open littering debits) in one transaction, before any delivery is tried; a
  restart continues the chain from the database.
- `Sender` delivers pending events in seq order, in batches, until the sink acknowledges
  them; failures back off exponentially with jitter. Delivered events are marked (and can
  be pruned). Producer and sender may be different processes sharing the file.

Use one outbox file per camera (source): the sender delivers strictly in chain order, so an
event the backend refuses holds back everything after it until an operator acts.

Live worker wiring:
    signer = EventSigner(keys.load_private_key(key_path), site, camera, points)
    outbox = Outbox(db_path, signer)         # in the pipeline thread: outbox.add(act)
    sender = Sender(Outbox(db_path), HttpSink(url))   # own connection, own thread
    threading.Thread(target=sender.run, daemon=True).start(); ...; sender.stop()
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.protocol.errors import UserError
from detector.protocol.events import canonical
from detector.signer import ChainState, EventSigner
from detector.sinks import Sink
from detector.values import Act

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain (
    source TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,          -- RFC 8785 canonical bytes of the signed event
    created_at REAL NOT NULL,
    delivered_at REAL,
    PRIMARY KEY (source, seq)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (delivered_at, source, seq);
"""


def connect(path: Path) -> sqlite3.Connection:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an event acknowledged by add() survives power loss
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
    except (sqlite3.Error, OSError) as e:  # OSError: the parent directory cannot be made
        raise UserError(f"{path}: cannot open outbox database: {e}") from None
    return conn


@dataclass(frozen=True)
class Pending:
    source: str
    seq: int
    event: dict


class Outbox:
    def __init__(self, path: Path, signer: EventSigner | None = None):
        self.path = Path(path)
        self.signer = signer
        self.conn = connect(self.path)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def chain_state(self, source: str) -> ChainState:
        row = self.conn.execute("SELECT state FROM chain WHERE source = ?", (source,)).fetchone()
        return ChainState.from_json(row[0]) if row else ChainState()

    def add(self, act: Act) -> dict:
        """Sign `act` with the next seq of the chain and commit it; returns the event."""
        if self.signer is None:
            raise ValueError("this Outbox was opened without a signer")
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")  # chain state read-modify-write is exclusive
            try:
                state = self.chain_state(self.signer.source)
                event, new_state = self.signer.sign(act, state)
                self.conn.execute(
                    "INSERT INTO events (source, seq, id, body, created_at) VALUES (?, ?, ?, ?, ?)",
                    (event["source"], event["seq"], event["id"], canonical(event), time.time()),
                )
                self.conn.execute(
                    "INSERT INTO chain (source, state) VALUES (?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET state = excluded.state",
                    (self.signer.source, new_state.to_json()),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return event

    def pending(self, limit: int = 100) -> list[Pending]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT source, seq, body FROM events WHERE delivered_at IS NULL ORDER BY source, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Pending(s, q, json.loads(b)) for s, q, b in rows]

    def mark_delivered(self, items: list[Pending]) -> None:
        if not items:
            return
        with self._lock:
            now = time.time()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "UPDATE events SET delivered_at = ? WHERE source = ? AND seq = ?",
                    [(now, p.source, p.seq) for p in items],
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def counts(self) -> tuple[int, int]:
        """(all events kept, events not yet delivered)."""
        with self._lock:
            total, pending = self.conn.execute("SELECT COUNT(*), COUNT(*) - COUNT(delivered_at) FROM events").fetchone()
        return int(total), int(pending or 0)

    def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Delete delivered events older than this; the chain state is kept, so the chain continues."""
        with self._lock:
            cur = self.conn.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?", (time.time() - older_than_s,)
            )
        return cur.rowcount


class Sender:
    """Delivers an outbox into a sink, in order, until acknowledged."""

    def __init__(
        self,
        outbox: Outbox,
        sink: Sink,
        batch_size: int = 100,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        idle_wait_s: float = 0.2,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.outbox, self.sink = outbox, sink
        self.batch_size = batch_size
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.idle_wait_s = idle_wait_s
        self.rng = rng or random.Random()
        self.failures = 0
        self.last_error: str | None = None
        self.delivered_total = 0
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait

    def backoff_s(self) -> float:
        # "Full jitter" exponential backoff: uniform in [0, min(max, initial * 2^failures)].
        # Hand-written (two lines) because the loop interleaves partial acknowledgements and a
        # stop event, which decorator-style retry libraries do not model.
        return self.rng.uniform(0, min(self.backoff_max_s, self.backoff_initial_s * 2**self.failures))

    def run_once(self) -> int:
        """Try one batch. Returns how many events were delivered (0: nothing pending or failure)."""
        batch = self.outbox.pending(self.batch_size)
        if not batch:
            return 0
        result = self.sink.deliver([p.event for p in batch])
        done = max(0, min(result.delivered, len(batch)))
        self.outbox.mark_delivered(batch[:done])
        self.delivered_total += done
        if result.ok:
            self.failures, self.last_error = 0, None
        else:
            self.failures += 1
            self.last_error = result.error
            log.warning("delivery failed (%d in a row): %s", self.failures, result.error)
        return done

    def run(self, until_empty: bool = False) -> int:
        """Deliver until stop() (or, with until_empty, until nothing is pending)."""
        while not self._stop.is_set():
            batch_failed_before = self.failures
            n = self.run_once()
            if self.failures > batch_failed_before:
                self._sleep(self.backoff_s())
            elif n == 0:
                if until_empty:
                    break
                self._sleep(self.idle_wait_s)
        return self.delivered_total

    def stop(self) -> None:
        self._stop.set()


def send_pending(
    db: Path, url: str, batch_size: int = 100, once: bool = False, max_backoff_s: float = 30.0
) -> tuple[int, int, int]:
    """`detector outbox send`: drain an outbox into a backend (until interrupted, or until empty
    with `once`). Returns (delivered now, events kept, still pending)."""
    from detector.sinks.http import HttpSink

    if batch_size < 1 or max_backoff_s <= 0:
        raise UserError("--batch must be >= 1 and --max-backoff > 0")
    outbox = Outbox(db)
    sender = Sender(outbox, HttpSink(url), batch_size=batch_size, backoff_max_s=max_backoff_s)
    try:
        n = sender.run(until_empty=once)
    finally:
        sender.sink.close()
    total, pending = outbox.counts()
    return n, total, pending


def outbox_counts(db: Path) -> tuple[int, int]:
    """(events kept, pending) of an existing outbox."""
    if not Path(db).is_file():
        raise UserError(f"{db}: outbox database not found")
    return Outbox(db).counts()
