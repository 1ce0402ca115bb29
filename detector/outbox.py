"""Durable edge outbox (SQLite, WAL) and the sender that drains it into a sink.

- `Outbox.add(act)` signs the act and commits the event *and* the new chain state (seq,
  prevhash, time, outstanding litter) in one transaction, before any delivery is tried; a
  restart continues the chain from the database.
- The chain head is also kept beside the camera's key (`HeadFile`, written after every add).
  An outbox that went backwards (restored from an old copy) or vanished (deleted, truncated to
  zero bytes) is behind that head: it is refused (`ChainBehind`) rather than silently starting
  a chain the backend would refuse for good.
- `Sender` delivers pending events in seq order, in batches, until the sink acknowledges
  them; failures back off exponentially with jitter. A permanent refusal (a 4xx that retrying
  the same bytes cannot pass) *blocks* the chain: the reason is kept in the outbox, logged,
  and shown by `outbox status`, the site's metrics and /healthz, and the sender stops sending
  that chain until an operator acts (`Outbox.unblock`, `resign`, `adopt_head`, `skip`; every
  such action is kept in the outbox's journal).

Use one outbox file per camera (source): the sender delivers strictly in chain order, so an
event the backend refuses holds back everything after it until an operator acts.

Live worker wiring:
    signer = EventSigner(keys.load_private_key(key_path), site, camera, points)
    outbox = Outbox(db_path, signer, head_file)        # in the pipeline thread: outbox.add(act)
    sender = Sender(Outbox(db_path), HttpSink(url))    # own connection, own thread
    threading.Thread(target=sender.run, daemon=True).start(); ...; sender.stop()
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detector.protocol import keys as keys_mod
from detector.protocol.errors import UserError
from detector.protocol.events import GENESIS_PREVHASH, canonical, check_envelope, event_hash, sign_event
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
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- A chain the receiver refused for good: the sender holds it until an operator acts.
CREATE TABLE IF NOT EXISTS blocked (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    reason TEXT NOT NULL,        -- the receiver's reason code (e.g. revoked_key)
    detail TEXT NOT NULL,
    since REAL NOT NULL
);
-- What operators did to a chain (retry, resign, adopt-head, skip), and why.
CREATE TABLE IF NOT EXISTS journal (
    at REAL NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""
_ABANDONED_COLUMN = "ALTER TABLE events ADD COLUMN abandoned_at REAL"  # skipped by an operator


def connect(path: Path, create: bool = True) -> sqlite3.Connection:
    """Open an outbox database. Without `create`, the file must exist and be an outbox: a
    missing or empty file (deleted, truncated) is an error, never a new empty outbox."""
    path = Path(path)
    if not create:
        if not path.is_file():
            raise UserError(f"{path}: cannot open outbox database: no such file")
        if path.stat().st_size == 0:
            raise UserError(f"{path}: not an outbox database: the file is empty (truncated?)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        if not create:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"chain", "events"} <= tables:
                conn.close()
                raise UserError(f"{path}: not an outbox database (no chain or events table)")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an event acknowledged by add() survives power loss
        conn.executescript(_SCHEMA)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
        if "abandoned_at" not in columns:  # an outbox written before operators could skip events
            try:
                conn.execute(_ABANDONED_COLUMN)
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise
    except (sqlite3.Error, OSError) as e:  # OSError: the parent directory cannot be made
        raise UserError(f"{path}: cannot open outbox database: {e}") from None
    return conn


# -- the chain head kept beside the key ---------------------------------------------------------


@dataclass(frozen=True)
class Head:
    source: str
    seq: int
    hash: str
    time_ms: int | None
    max_litter: int = 0  # the highest litter id the chain used (a continued chain numbers above it)


class HeadFile:
    """`<key_dir>/<camera>.head`: the chain's newest seq, hash and time, outside the outbox.

    Written (atomically: temp file, fsync, rename) after every committed add, so it is never
    ahead of the outbox except when the outbox lost events."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> Head | None:
        try:
            d = json.loads(self.path.read_text())
            return Head(str(d["source"]), int(d["seq"]), str(d["hash"]), d.get("time_ms"), int(d.get("max_litter", 0)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path}: unreadable chain head file: {e}") from None

    def write(self, head: Head) -> None:
        text = json.dumps(
            {
                "source": head.source,
                "seq": head.seq,
                "hash": head.hash,
                "time_ms": head.time_ms,
                "max_litter": head.max_litter,
            }
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dirfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)  # the rename itself survives a power cut
        finally:
            os.close(dirfd)


def head_file_for(key_path: Path) -> Path:
    """Where the chain head of a camera is kept: beside its key (`cam.key` -> `cam.head`)."""
    return Path(key_path).with_suffix(".head")


class ChainBehind(UserError):
    """The outbox is behind the chain head kept beside the key: it went backwards or vanished."""


@dataclass(frozen=True)
class Pending:
    source: str
    seq: int
    event: dict


@dataclass(frozen=True)
class Blocked:
    source: str
    seq: int
    event_id: str
    reason: str
    detail: str
    since: float


# What an operator can do about each kind of refusal (shown by `outbox status` and the logs).
_RECOVERY = {
    "unknown_key": "register this camera's public key with the backend, then `detector outbox retry`; "
    "or re-sign under a registered key with `detector outbox resign`",
    "key_mismatch": "the key is registered for another camera: register the right one, then `detector outbox retry`",
    "revoked_key": "generate a new key, register it with the backend, then `detector outbox resign --key NEW.key`",
    "bad_signature": "the key registered for this camera is not the one signing: fix it, then `detector outbox retry`",
    "seq_gap": "the backend lost or never got earlier events: its admin runs `detector backend accept-gap SOURCE`, "
    "then `detector outbox retry`",
    "prevhash_mismatch": "the chain was continued from a kept head: the backend's admin runs "
    "`detector backend accept-gap SOURCE`, then `detector outbox retry`",
    "replayed_seq": "this chain restarted below the backend's head: `detector outbox adopt-head --after-seq N` "
    "(N from the detail), then the backend's admin accepts the gap",
    "time_ahead": "the camera's clock was ahead when it signed: fix the clock; once the backend's clock passes the "
    "event's time `detector outbox retry`, or `detector outbox skip` it (and accept the gap on the backend)",
    "time_behind": "raise the backend's clock.max_behind_s, then `detector outbox retry`; or `detector outbox skip`",
}


def recovery_hint(reason: str) -> str:
    return _RECOVERY.get(reason, "fix the cause, then `detector outbox retry`; or `detector outbox skip` the event")


class Outbox:
    def __init__(
        self,
        path: Path,
        signer: EventSigner | None = None,
        head_file: Path | None = None,
        create: bool | None = None,
        check: bool = True,
    ):
        """`signer`: this outbox signs and adds acts (a new file may be created). Without one,
        the file must already be an outbox (senders, status). `head_file`: where the chain head
        is kept beside the key; remembered in the outbox, so a sender checks it too. `check`:
        refuse (ChainBehind) an outbox behind that head."""
        self.path = Path(path)
        self.signer = signer
        self.conn = connect(self.path, create=signer is not None if create is None else create)
        self._lock = threading.Lock()
        if head_file is not None:
            self._set_meta("head_file", str(Path(head_file).resolve()))
        kept = self._meta("head_file")
        self.head_file = HeadFile(Path(kept)) if kept else None
        if check:
            try:
                self.check_head()
            except ChainBehind:
                self.conn.close()
                raise
        if signer is not None:  # a new run of the recogniser: its litter ids go above the chain's
            with self._lock:
                signer.begin_run(self.chain_state(signer.source))

    def close(self) -> None:
        self.conn.close()

    # -- meta, journal ---------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _journal(self, source: str, action: str, detail: str) -> None:
        """Inside a transaction: keep what an operator did and why."""
        self.conn.execute(
            "INSERT INTO journal (at, source, action, detail) VALUES (?, ?, ?, ?)",
            (time.time(), source, action, detail),
        )
        log.warning("outbox %s: %s %s: %s", self.path, action, source, detail)

    def journal(self, limit: int = 20) -> list[tuple[float, str, str, str]]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT at, source, action, detail FROM journal ORDER BY rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [tuple(r) for r in reversed(rows)]

    # -- chain ---------------------------------------------------------------------------
    def chain_state(self, source: str) -> ChainState:
        row = self.conn.execute("SELECT state FROM chain WHERE source = ?", (source,)).fetchone()
        return ChainState.from_json(row[0]) if row else ChainState()

    def sources(self) -> list[str]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT source FROM chain UNION SELECT source FROM events UNION SELECT source FROM blocked"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def behind(self) -> tuple[Head, int] | None:
        """(kept head, this outbox's seq) when the outbox is behind the head kept beside the key."""
        if self.head_file is None:
            return None
        head = self.head_file.read()
        if head is None:
            return None
        with self._lock:
            have = self.chain_state(head.source).seq
        return (head, have) if have < head.seq else None

    def check_head(self) -> None:
        b = self.behind()
        if b is not None:
            head, have = b
            raise ChainBehind(
                f"{self.path}: the outbox is behind its chain head kept in {self.head_file.path} "
                f"({head.source} seq {have} < {head.seq}): it went backwards or was lost; refusing to start a new "
                f"chain. Restore the newest copy, or continue after the kept head: "
                f"`detector outbox adopt-head --db {self.path} --reason ...`"
            )

    def _write_head(self, source: str, state: ChainState) -> None:
        if self.head_file is not None:
            self.head_file.write(Head(source, state.seq, state.prevhash, state.time_ms, state.max_litter))

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
                self._put_state(self.signer.source, new_state)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            # after the commit: the kept head is never ahead of an outbox that did not lose events
            self._write_head(self.signer.source, new_state)
        return event

    def _put_state(self, source: str, state: ChainState) -> None:
        self.conn.execute(
            "INSERT INTO chain (source, state) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET state = excluded.state",
            (source, state.to_json()),
        )

    # -- delivery --------------------------------------------------------------------------
    def pending(self, limit: int = 100) -> list[Pending]:
        """Undelivered events in chain order, except those of blocked chains."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT source, seq, body FROM events WHERE delivered_at IS NULL AND abandoned_at IS NULL "
                "AND source NOT IN (SELECT source FROM blocked) ORDER BY source, seq LIMIT ?",
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
            total, pending = self.conn.execute(
                "SELECT COUNT(*), COUNT(*) - COUNT(delivered_at) - COUNT(abandoned_at) FROM events"
            ).fetchone()
        return int(total), int(pending or 0)

    def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Delete delivered events older than this; the chain state is kept, so the chain continues."""
        with self._lock:
            cur = self.conn.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND delivered_at < ?", (time.time() - older_than_s,)
            )
        return cur.rowcount

    # -- a blocked chain and the ways out ------------------------------------------------------------
    def block(self, item: Pending, reason: str, detail: str) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO blocked (source, seq, event_id, reason, detail, since) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(source) DO NOTHING",
                (item.source, item.seq, str(item.event.get("id", "")), reason, detail, time.time()),
            )
        log.error(
            "outbox %s: chain %s BLOCKED at seq %d: %s: %s. What to do: %s",
            self.path,
            item.source,
            item.seq,
            reason,
            detail,
            recovery_hint(reason),
        )

    def blocked(self) -> list[Blocked]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT source, seq, event_id, reason, detail, since FROM blocked ORDER BY source"
            ).fetchall()
        return [Blocked(*r) for r in rows]

    def _source(self, source: str | None) -> str:
        known = self.sources()
        if source is None:
            if len(known) != 1:
                raise UserError(f"{self.path}: holds {len(known)} chains ({', '.join(known) or 'none'}): give --source")
            return known[0]
        if source not in known:
            raise UserError(f"{self.path}: no chain {source} here (have: {', '.join(known) or 'none'})")
        return source

    def unblock(self, source: str | None = None, note: str = "") -> Blocked | None:
        """Let the sender try the blocked chain again (after the operator fixed the cause)."""
        source = self._source(source)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                row = self.conn.execute(
                    "SELECT source, seq, event_id, reason, detail, since FROM blocked WHERE source = ?", (source,)
                ).fetchone()
                self.conn.execute("DELETE FROM blocked WHERE source = ?", (source,))
                if row is not None:
                    self._journal(source, "retry", f"after {row[3]} at seq {row[1]}" + (f": {note}" if note else ""))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return Blocked(*row) if row else None

    def resign(self, key: Ed25519PrivateKey, reason: str, source: str | None = None) -> int:
        """Re-sign the chain's undelivered events under `key` (a new key registered for this
        camera), keeping their ids, seqs, times and data; the first keeps its prevhash, the hash
        of the last event the receiver acknowledged, so the new signatures continue the old
        chain (the receiver records the key change). Unblocks the chain. Returns how many."""
        source = self._source(source)
        new_keyid = keys_mod.keyid(key)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self.conn.execute(
                    "SELECT seq, body FROM events WHERE source = ? AND delivered_at IS NULL AND abandoned_at IS NULL "
                    "ORDER BY seq",
                    (source,),
                ).fetchall()
                state = self.chain_state(source)
                if rows and rows[-1][0] != state.seq:
                    raise UserError(f"{self.path}: undelivered events of {source} do not end at the chain head")
                prevhash, old = None, set()
                for seq, body in rows:
                    event = json.loads(body)
                    old.add(event["keyid"])
                    unsigned = {k: v for k, v in event.items() if k != "sig"}
                    unsigned["keyid"] = new_keyid
                    if prevhash is not None:
                        unsigned["prevhash"] = prevhash
                    signed = sign_event(unsigned, key)
                    check_envelope(signed)
                    self.conn.execute(
                        "UPDATE events SET body = ? WHERE source = ? AND seq = ?", (canonical(signed), source, seq)
                    )
                    prevhash = event_hash(signed)
                if prevhash is not None:
                    state.prevhash = prevhash
                    self._put_state(source, state)
                self.conn.execute("DELETE FROM blocked WHERE source = ?", (source,))
                span = f"seq {rows[0][0]}..{rows[-1][0]}" if rows else "no undelivered events"
                self._journal(
                    source,
                    "resign",
                    f"{span} re-signed from key {', '.join(sorted(old)) or '-'} to {new_keyid}: {reason}",
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._write_head(source, state)
        return len(rows)

    def adopt_head(self, reason: str, after_seq: int | None = None, source: str | None = None) -> ChainState:
        """Continue the chain after the head kept beside the key (or, when that is lost too,
        after `after_seq`, e.g. the receiver's head from a `replayed_seq` refusal, with a
        prevhash the receiver must accept as a gap). For an outbox that went backwards or was
        lost: the events it lost are gone; if the receiver had them all, the chain goes on
        seamlessly, else its admin accepts the gap. Outstanding litter starts empty (clean-ups
        of litter counted before claim nothing; the receiver applies its own record)."""
        kept = self.head_file.read() if self.head_file is not None else None
        if after_seq is None:
            if kept is None:
                raise UserError(f"{self.path}: no chain head is kept for this outbox: give --after-seq N")
            source = source or kept.source
            new = ChainState(kept.seq, kept.hash, {}, kept.time_ms, kept.max_litter)
        else:
            if after_seq < 0:
                raise UserError("--after-seq must be >= 0")
            source = source or (kept.source if kept else None) or self._source(None)
            # Nothing says which litter ids the lost chain used: number new litter above any it
            # can have used (ids are small counters; the clock in ms is far above them).
            new = ChainState(
                after_seq, GENESIS_PREVHASH if after_seq == 0 else "0" * 64, {}, None, int(time.time() * 1000)
            )
            if kept is not None and kept.source == source and kept.seq == after_seq:
                new = ChainState(kept.seq, kept.hash, {}, kept.time_ms, kept.max_litter)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                old = self.chain_state(source)
                new.max_litter = max(new.max_litter, old.max_litter)
                if new.seq < old.seq:
                    raise UserError(f"{self.path}: {source} is already at seq {old.seq}, after {new.seq}")
                newer = self.conn.execute(
                    "SELECT COUNT(*) FROM events WHERE source = ? AND seq > ?", (source, new.seq)
                ).fetchone()[0]
                if newer:
                    raise UserError(f"{self.path}: {source} holds events after seq {new.seq}")
                self._put_state(source, new)
                self.conn.execute("DELETE FROM blocked WHERE source = ?", (source,))
                self._journal(
                    source, "adopt-head", f"chain moved from seq {old.seq} to continue after {new.seq}: {reason}"
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._write_head(source, new)
        return new

    def skip(self, through_seq: int, reason: str, source: str | None = None) -> int:
        """Abandon the chain's undelivered events up to `through_seq` (they will never be sent;
        kept, marked, for the audit). The next event then needs the receiver's admin to accept
        the gap. Unblocks the chain. Returns how many."""
        source = self._source(source)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self.conn.execute(
                    "UPDATE events SET abandoned_at = ? WHERE source = ? AND seq <= ? AND delivered_at IS NULL "
                    "AND abandoned_at IS NULL",
                    (time.time(), source, through_seq),
                )
                self.conn.execute("DELETE FROM blocked WHERE source = ?", (source,))
                self._journal(source, "skip", f"{cur.rowcount} undelivered events through seq {through_seq}: {reason}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
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
        give_up_after: int | None = None,
    ):
        """`give_up_after`: with run(until_empty=True), stop after this many failed attempts in
        a row (an unreachable receiver) instead of retrying forever."""
        self.outbox, self.sink = outbox, sink
        self.batch_size = batch_size
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.idle_wait_s = idle_wait_s
        self.give_up_after = give_up_after
        self.rng = rng or random.Random()
        self.failures = 0
        self.last_error: str | None = None
        self.delivered_total = 0
        self.blocked: Blocked | None = None  # the chain this sender found refused for good
        self.gave_up = False
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
            blocked = self.outbox.blocked()
            self.blocked = blocked[0] if blocked else None  # an operator may have unblocked it
            return 0
        result = self.sink.deliver([p.event for p in batch])
        done = max(0, min(result.delivered, len(batch)))
        self.outbox.mark_delivered(batch[:done])
        self.delivered_total += done
        if result.ok:
            self.failures, self.last_error = 0, None
        elif result.permanent and done < len(batch):
            # Retrying the same bytes cannot pass: hold the chain, say why, until an operator acts.
            self.failures, self.last_error = 0, result.error
            self.outbox.block(batch[done], result.reason or "refused", result.error or "")
            blocked = self.outbox.blocked()
            self.blocked = blocked[0] if blocked else None
        else:
            self.failures += 1
            self.last_error = result.error
            log.warning("delivery failed (%d in a row): %s", self.failures, result.error)
        return done

    def run(self, until_empty: bool = False) -> int:
        """Deliver until stop() (or, with until_empty, until nothing deliverable is pending, a
        chain is blocked, or give_up_after failures in a row)."""
        while not self._stop.is_set():
            batch_failed_before = self.failures
            n = self.run_once()
            if self.failures > batch_failed_before:
                if until_empty and self.give_up_after is not None and self.failures >= self.give_up_after:
                    self.gave_up = True
                    break
                self._sleep(self.backoff_s())
            elif n == 0:
                if until_empty:
                    break
                self._sleep(self.idle_wait_s)
        return self.delivered_total

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class SendResult:
    delivered: int
    total: int
    pending: int
    blocked: list[Blocked]
    unreachable: str | None  # why the receiver could not be reached (gave up), else None


def send_pending(
    db: Path, url: str, batch_size: int = 100, once: bool = False, max_backoff_s: float = 30.0, attempts: int = 5
) -> SendResult:
    """`detector outbox send`: drain an outbox into a backend, until a chain is blocked, or until
    interrupted (with `once`: until nothing is pending, or after `attempts` failed tries in a row)."""
    from detector.sinks.http import HttpSink

    if batch_size < 1 or max_backoff_s <= 0 or attempts < 1:
        raise UserError("--batch and --attempts must be >= 1 and --max-backoff > 0")
    outbox = Outbox(db)  # an existing outbox, not behind its kept head
    sender = Sender(
        outbox,
        HttpSink(url),
        batch_size=batch_size,
        backoff_max_s=max_backoff_s,
        give_up_after=attempts if once else None,
    )
    try:
        if once:
            n = sender.run(until_empty=True)
        else:  # until interrupted, but a blocked chain ends it: nothing else is left to deliver
            n = 0
            while not outbox.blocked():
                n = sender.run(until_empty=True)
                time.sleep(sender.idle_wait_s)
    finally:
        sender.sink.close()
    try:
        total, pending = outbox.counts()
        return SendResult(n, total, pending, outbox.blocked(), sender.last_error if sender.gave_up else None)
    finally:
        outbox.close()


@dataclass(frozen=True)
class Status:
    path: Path
    total: int
    pending: int
    blocked: list[Blocked]
    behind: tuple[Head, int] | None
    journal: list[tuple[float, str, str, str]]


def outbox_status(db: Path) -> Status:
    """`detector outbox status`: counts, blocked chains and why, and whether the outbox is behind
    its kept chain head (reported, not refused: status is how an operator finds out)."""
    ob = Outbox(db, check=False)
    try:
        total, pending = ob.counts()
        return Status(Path(db), total, pending, ob.blocked(), ob.behind(), ob.journal(10))
    finally:
        ob.close()


def outbox_counts(db: Path) -> tuple[int, int]:
    """(events kept, pending) of an existing outbox."""
    st = outbox_status(db)
    return st.total, st.pending
