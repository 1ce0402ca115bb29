"""Evidence store: blurred JPEG snapshots in one directory, named `<sha256>.jpg`, with retention.

Content addressing makes a snapshot verifiable from the event that references it (the
event carries the sha256) and makes writes idempotent. Files are written to a temporary
name and renamed, so a reader never sees half a file. Only `Redactor.snapshot` output
(already blurred) is ever passed in here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from detector.protocol.errors import UserError

log = logging.getLogger(__name__)


class EvidenceStore:
    def __init__(self, directory: Path, retention_days: float = 30.0, purge_interval_s: float = 3600.0) -> None:
        self.dir = Path(directory)
        self.retention_s = retention_days * 86400
        self.purge_interval_s = purge_interval_s
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{self.dir}: cannot create evidence directory: {e.strerror}") from None
        self._last_purge = 0.0
        self.purge()

    def path_of(self, sha256: str) -> Path:
        return self.dir / f"{sha256}.jpg"

    def put(self, jpeg: bytes) -> str:
        """Store a (blurred) snapshot; returns its sha256."""
        digest = hashlib.sha256(jpeg).hexdigest()
        path = self.path_of(digest)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(jpeg)
            os.replace(tmp, path)
        self.maybe_purge()
        return digest

    def maybe_purge(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if now - self._last_purge < self.purge_interval_s:
            return 0
        return self.purge(now)

    def purge(self, now: float | None = None) -> int:
        """Delete snapshots older than the retention period; returns how many were deleted."""
        now = time.time() if now is None else now
        self._last_purge = now
        removed = 0
        # A `.tmp<pid>` left by a crash between write and rename is evidence too: it ages out alike.
        for p in [*self.dir.glob("*.jpg"), *self.dir.glob("*.tmp*")]:
            try:
                if now - p.stat().st_mtime > self.retention_s:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:  # another camera's worker purged it first
                pass
        if removed:
            log.info("evidence: purged %d snapshots older than %.1f days", removed, self.retention_s / 86400)
        return removed
