"""Several real backend processes on one database, and what the database itself enforces.

The multi-process test runs three `detector backend serve` processes on one ledger (PostgreSQL,
and SQLite for comparison) and six sender threads that post the same and interleaved events,
in batches of one camera or of several, to whichever process they pick. Every event must be
applied exactly once and every chain must end intact.
"""

from __future__ import annotations

import random
import sqlite3
import threading

import httpx
import pytest
from helpers import DB_KINDS, BackendProcess, Chain, add_user, make_keys, scratch_database, write_config

from detector.backend.store import open_store

CAMERAS = ["a", "b", "c", "d"]
PER_CAMERA = 120


@pytest.mark.slow
@pytest.mark.parametrize("kind", DB_KINDS)
def test_several_processes_apply_every_event_once(kind, tmp_path):
    ks = make_keys(tmp_path, *CAMERAS)
    chains = {c: Chain.of(ks[c][0], c) for c in CAMERAS}
    events = {
        c: [
            chains[c].event("littering" if i % 3 else "cleanup", f"z{i % 3}", "small", litter=i // 2)
            for i in range(PER_CAMERA)
        ]
        for c in CAMERAS
    }
    with scratch_database(kind, tmp_path) as db:
        cfg = write_config(tmp_path / "backend.yaml", {c: ks[c][1] for c in CAMERAS}, db=db)
        key = add_user(cfg, "reader", "viewer")
        procs = [BackendProcess(cfg, api_key=key).start() for _ in range(3)]
        try:
            acked = {c: 0 for c in CAMERAS}  # events acknowledged, per camera (a prefix of its chain)
            lock = threading.Lock()
            problems: list[str] = []
            refusals: dict[str, int] = {}

            def sender(seed: int) -> None:
                rng = random.Random(seed)
                client = [httpx.Client(base_url=p.url, timeout=30) for p in procs]
                try:
                    while not problems:
                        with lock:
                            todo = [c for c in CAMERAS if acked[c] < PER_CAMERA]
                        if not todo:
                            return
                        # one camera's next slice, or two cameras' slices interleaved in one batch
                        picked = rng.sample(todo, k=min(len(todo), rng.choice([1, 1, 2])))
                        batch, owners = [], []
                        for c in picked:
                            with lock:
                                start = acked[c] - rng.randint(0, 2)  # sometimes re-send acknowledged ones
                            start = max(0, start)
                            part = events[c][start : start + rng.randint(1, 15)]
                            batch += part
                            owners += [(c, start + j) for j in range(len(part))]
                        if len(picked) == 2 and rng.random() < 0.5:  # interleave the two chains
                            order = sorted(range(len(batch)), key=lambda i: (owners[i][1], owners[i][0]))
                            batch, owners = [batch[i] for i in order], [owners[i] for i in order]
                        r = rng.choice(client).post("/v1/events", json=batch)
                        if r.status_code >= 500 or r.status_code not in (200, 409):
                            problems.append(f"{r.status_code}: {r.text[:300]}")
                            return
                        body = r.json()
                        with lock:
                            if r.status_code == 409:
                                refusals[body["reason"]] = refusals.get(body["reason"], 0) + 1
                            for res, (c, i) in zip(body["results"], owners):
                                if res["status"] in ("accepted", "duplicate"):
                                    acked[c] = max(acked[c], i + 1)
                finally:
                    for cl in client:
                        cl.close()

            threads = [threading.Thread(target=sender, args=(seed,)) for seed in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(240)
            assert not problems, problems
            assert all(v == PER_CAMERA for v in acked.values()), acked
            # only the chain's own order refuses anything: no forks, no lost races
            assert set(refusals) <= {"seq_gap"}, refusals
        finally:
            for p in procs:
                p.stop()
        store = open_store(db)  # the processes are gone: read the database itself
        try:
            heads = {s["source"]: s["seq"] for s in store.sources()}
            assert heads == {chains[c].source: PER_CAMERA for c in CAMERAS}
            # every event applied once: one ledger row per event here (each names one litter)
            assert store.ledger_count() == len(CAMERAS) * PER_CAMERA
            for c in CAMERAS:
                for e in events[c][:: PER_CAMERA // 6]:
                    assert store.event_hash(e["source"], e["id"]) is not None
            # the incremental totals agree with the rule applied once, in chain order
            expected: dict[str, int] = {}
            lying: dict[tuple[str, int], tuple[str, int]] = {}
            for c in CAMERAS:
                for e in events[c]:
                    key = (c, e["data"]["litter"])
                    if e["data"]["act"] == "littering" and key not in lying:
                        lying[key] = (e["subject"], 10)
                        expected[e["subject"]] = expected.get(e["subject"], 0) - 10
                    elif e["data"]["act"] == "cleanup" and key in lying:
                        zone, pts = lying.pop(key)  # credited where it was counted
                        expected[zone] = expected.get(zone, 0) + pts
                    else:  # nothing to open or close: a zero entry in the zone it was seen in
                        expected.setdefault(e["subject"], 0)
            got = {z.zone: z.total for z in store.zones("s1")}
            assert got == {z: t for z, t in expected.items()}, (got, expected)
        finally:
            store.close()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_the_database_refuses_changes_to_the_record(kind, tmp_path):
    ks = make_keys(tmp_path, "cam")
    with scratch_database(kind, tmp_path) as db:
        cfg = write_config(tmp_path / "backend.yaml", {"cam": ks["cam"][1]}, db=db)
        with _started(cfg) as b:
            c = Chain.of(ks["cam"][0], "cam")
            assert b.post(c.littering(3, "z")).status_code == 200
        if kind == "sqlite":
            conn = sqlite3.connect(db)
            errors = (sqlite3.DatabaseError,)
        else:
            import psycopg

            conn = psycopg.connect(db, autocommit=True)
            errors = (psycopg.Error,)
        try:
            for sql in [
                "UPDATE ledger SET points = 0",
                "DELETE FROM ledger",
                "UPDATE events SET seq = seq + 100",
                "DELETE FROM events",
            ] + (["TRUNCATE ledger", "TRUNCATE events"] if kind == "postgresql" else []):
                with pytest.raises(errors, match="append-only"):
                    conn.execute(sql)
            assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 3
        finally:
            conn.close()


class _started:
    def __init__(self, cfg):
        self.b = BackendProcess(cfg)

    def __enter__(self):
        return self.b.start()

    def __exit__(self, *exc):
        self.b.stop()


def test_a_version_2_sqlite_ledger_is_migrated(tmp_path):
    """A ledger written by the previous schema (version 2) is upgraded in place at start:
    sites, zone totals and outstanding counts are filled from its rows."""
    from detector.backend.store import sqlite as sqlite_store

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(sqlite_store._V2 + "\nPRAGMA user_version = 2;")
    rows = [
        (
            "kerb",
            "/sites/north/cameras/a",
            1,
            "e1",
            "littering",
            "bag",
            "bag",
            1,
            -30,
            -30,
            "2026-01-01T10:00:00.000Z",
            0,
        ),
        (
            "kerb",
            "/sites/north/cameras/a",
            2,
            "e2",
            "littering",
            "small",
            "cup",
            2,
            -10,
            -10,
            "2026-01-02T10:00:00.000Z",
            0,
        ),
        (
            "kerb",
            "/sites/south/cameras/b",
            1,
            "e3",
            "littering",
            "small",
            "cup",
            1,
            -10,
            -10,
            "2026-01-02T11:00:00.000Z",
            0,
        ),
    ]
    conn.executemany(
        "INSERT INTO ledger (zone, source, seq, event_id, kind, severity, object_class, litter, points,"
        " claimed_points, time, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO outstanding VALUES (?,?,?,?,?)",
        [
            ("/sites/north/cameras/a", 1, "kerb", 30, "bag"),
            ("/sites/north/cameras/a", 2, "kerb", 10, "small"),
            ("/sites/south/cameras/b", 1, "kerb", 10, "small"),
        ],
    )
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        assert store.schema_version() == sqlite_store.SCHEMA_VERSION
        zones = {(z.site, z.zone): (z.total, z.entries, z.outstanding) for z in store.zones()}
        assert zones == {("north", "kerb"): (-40, 2, 2), ("south", "kerb"): (-10, 1, 1)}
        assert store.daily("north", "kerb", 30) == [("2026-01-01", -30), ("2026-01-02", -10)]
        assert [e["event_id"] for e in store.recent("north", "kerb", 10)] == ["e2", "e1"]
    finally:
        store.close()
    # opening again changes nothing
    store = open_store(str(path))
    try:
        assert len(store.zones()) == 2
    finally:
        store.close()
