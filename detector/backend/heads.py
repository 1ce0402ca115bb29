"""The chain heads kept outside the ledger, so that a lost ledger cannot take them with it.

After every request that accepted events, the backend records each source's newest accepted
seq here (a small SQLite file, by default beside the ledger; put it on another disk with
`heads:` in the config). At start the backend compares: a ledger whose chain of some source
is behind what that source already delivered (a ledger truncated, replaced by an empty file,
or restored from an older backup) is refused with a one-line error instead of serving a
silently emptied score. The heads only ever move forward (a crash between the ledger commit
and this write leaves them behind the ledger, which is harmless).

Recovery when it refuses: restore the newest backup of the ledger, or accept the loss per
source with `detector backend accept-gap` (audited), which lets that source's next event
continue its chain across the missing part.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from detector.protocol.errors import UserError

_SCHEMA = "CREATE TABLE IF NOT EXISTS heads (source TEXT PRIMARY KEY, seq INTEGER NOT NULL)"


class ChainHeads:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: in WAL mode a power cut may lose the last write, never corrupt the file;
            # a lost write only leaves the heads behind the ledger, which the check tolerates.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise UserError(f"{path}: cannot open the chain heads file: {e}") from None
        self._lock = threading.Lock()

    def record(self, heads: Iterable[tuple[str, int]]) -> None:
        """Move sources' kept heads forward (never back)."""
        rows = list(heads)
        if not rows:
            return
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT INTO heads (source, seq) VALUES (?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    rows,
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def all(self) -> dict[str, int]:
        with self._lock:
            return dict(self.conn.execute("SELECT source, seq FROM heads").fetchall())

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def behind(kept: dict[str, int], ledger_seq, gap_open) -> list[tuple[str, int, int]]:
    """Sources whose ledger chain (`ledger_seq(source)`) is behind the kept head and that have
    no operator-accepted gap (`gap_open(source)`): (source, kept seq, ledger seq)."""
    out = []
    for source, seq in sorted(kept.items()):
        have = ledger_seq(source)
        if have < seq and not gap_open(source):
            out.append((source, seq, have))
    return out


def refusal(path: Path, missing: list[tuple[str, int, int]]) -> str:
    source, kept, have = missing[0]
    more = f" (and {len(missing) - 1} more sources)" if len(missing) > 1 else ""
    return (
        f"{path}: the ledger is behind what cameras already delivered: {source} reached seq {kept}, "
        f"the ledger has {have}{more}; restore the newest backup, or accept the loss with "
        f"`detector backend accept-gap SOURCE --reason ...` (or --all-behind)"
    )
