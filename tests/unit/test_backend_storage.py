"""A ledger that cannot be written: 503 with the reason (never a 500), /healthz reports it,
and it recovers when there is room again. The full disk here is SQLite's own limit on the
database size (`PRAGMA max_page_count`), which fails writes with the same SQLITE_FULL a full
file system gives; tests/integration/test_full_disk.py fills a real (tmpfs) file system."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from helpers import Chain

from detector.backend.app import create_app
from detector.backend.config import BackendConfig, resolve
from detector.backend.store import SqliteLedgerStore
from detector.protocol import keys


class LimitedStore(SqliteLedgerStore):
    """The real SQLite store with SQLite's size limit on every connection it opens (the limit
    is per connection, and the store opens one per thread)."""

    max_pages = 1073741823  # SQLite's default

    def _conn(self):
        conn = super()._conn()
        conn.execute(f"PRAGMA max_page_count = {self.max_pages}")
        return conn


def test_full_database_gives_503_and_unhealthy_until_there_is_room(tmp_path):
    key_path, pub_path, _ = keys.generate("cam", tmp_path)
    cfg = BackendConfig.model_validate(
        {"db": str(tmp_path / "l.sqlite3"), "keys": {"/sites/s1/cameras/cam": str(pub_path)}}
    )
    store = LimitedStore(tmp_path / "l.sqlite3")
    evs = Chain.of(key_path, "cam").littering(120, zone="z", first_litter=1)  # protocol only: no edge import
    with TestClient(create_app(resolve(cfg, tmp_path, "t"), store), raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        store.max_pages = store._conn().execute("PRAGMA page_count").fetchone()[0] + 2
        sent, r = 0, None
        for ev in evs:
            r = client.post("/v1/events", content=json.dumps(ev))
            if r.status_code != 200:
                break
            sent += 1
        assert r is not None and r.status_code == 503, r.text
        assert r.json()["reason"] == "storage_full" and "full" in r.json()["detail"]
        assert 0 < sent < len(evs)
        h = client.get("/healthz")
        assert h.status_code == 503 and h.json()["reason"] == "storage_full", h.text
        assert store.zone("s1", "z") is not None  # what was written is still read
        # room again: the refused event goes in (the sender retried it), health comes back
        store.max_pages = 1073741823
        for ev in evs[sent:]:
            assert client.post("/v1/events", content=json.dumps(ev)).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert store.ledger_count() == len(evs)
