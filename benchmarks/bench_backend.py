"""Backend load: ingest rate with 1 and 2 backend processes, and zone reads while it runs
(a benchmark, not a test). Loopback only; bounded by its arguments.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_backend.py \\
        --db postgresql://postgres@127.0.0.1:5432 --db sqlite [--cameras 5000] [--rows 1000000]

For each database (`sqlite`, or a PostgreSQL server URL: a scratch database is created on it
and dropped afterwards):
  1. registers `--cameras` simulated cameras (real Ed25519 keys) over `--sites` sites, two
     zones each;
  2. fills the ledger to `--rows` rows of history (setup, not measured): `--prefill sql`
     (default) bulk-loads event and ledger rows shaped like the real ones (synthetic bodies,
     each camera's chain head left where the next real event continues it), so the tables and
     indexes are as large as after --rows events; `--prefill ingest` sends real signed events
     through the backend's own ingest code instead (two workers; slow on a busy 2-core box);
  3. for 1 and 2 `detector backend serve` processes on that database: every camera sends
     `--per-camera` more signed events (signed before timing), posted in batches of
     `--cameras-per-post` cameras (an edge box forwarding its cameras' outboxes) by
     `--senders` threads spread over the processes, while one reader thread GETs a random
     site's zones as fast as it can; reports events/s and the GET latencies.
Prints a Markdown table; `--json` also writes the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detector.backend import auth
from detector.backend.config import BackendConfig, resolve
from detector.backend.ingest import Ingestor
from detector.backend.store import open_store
from detector.protocol import events, keys

SEVERITIES = ("small", "bag", "bulky")


def camera_key(i: int) -> Ed25519PrivateKey:
    """Camera i's key, the same in every process (derived: nothing to ship between them)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bench-camera-{i}".encode()).digest())


def camera_source(i: int, sites: int) -> tuple[str, str]:
    return f"site{i % sites:03d}", f"cam{i:05d}"


@dataclass
class Chain:
    """A camera's chain state; `next` signs its next event (a littering or the clean-up of it)."""

    i: int
    site: str
    camera: str
    seq: int = 0
    prevhash: str = events.GENESIS_PREVHASH
    last_ms: int = 0

    def next(self, key: Ed25519PrivateKey, keyid: str) -> dict:
        now_ms = max(int(time.time() * 1000), self.last_ms)
        n = self.seq + 1
        litter = n // 2
        kind = "littering" if n % 2 else "cleanup"  # keeps the outstanding litter bounded
        sev = SEVERITIES[litter % 3]
        zone = f"{self.camera}-{'ab'[litter % 2]}"
        pts = {"small": 10, "bag": 30, "bulky": 100}[sev]
        ev = {
            "specversion": events.SPECVERSION,
            "id": events.uuid7(now_ms, os.urandom(10)),
            "source": events.make_source(self.site, self.camera),
            "type": events.TYPES[kind],
            "subject": zone,
            "time": events.rfc3339_ms(now_ms),
            "datacontenttype": events.DATACONTENTTYPE,
            "seq": n,
            "prevhash": self.prevhash,
            "keyid": keyid,
            "data": {
                "act": kind,
                "object_class": "bottle",
                "box": [10, 20, 30, 40],
                "severity": sev,
                "t_release_ms": n * 1000,
                "t_notify_ms": n * 1000 + 250,
                "frame_index": n * 3,
                "litter": litter,
                "points": -pts if kind == "littering" else pts,
            },
        }
        ev = events.sign_event(ev, key)
        self.seq, self.prevhash, self.last_ms = n, events.event_hash(ev), now_ms
        return ev


def _prefill_worker(args: tuple) -> int:
    """Ingest `per_camera` events for each camera in `cams` through the backend's ingest code."""
    db, cams, sites, per_camera, tmp = args
    backend = resolve(BackendConfig.model_validate({"db": db}), Path(tmp), "bench")
    store = open_store(db)
    ingestor = Ingestor(backend, store)
    done = 0
    try:
        for start in range(0, len(cams), 10):  # 10 cameras per transaction
            batch = []
            for i in cams[start : start + 10]:
                key = camera_key(i)
                ch = Chain(i, *camera_source(i, sites))
                kid = keys.keyid(key)
                batch += [ch.next(key, kid) for _ in range(per_camera)]
            out = ingestor.ingest_batch(batch)
            assert out.refusal is None, out.refusal
            done += len(batch)
    finally:
        store.close()
    return done


def _bulk_history(db: str, cameras: int, sites: int, per_camera: int) -> int:
    """`per_camera` rows of history per camera in events and ledger (littering and its clean-up
    in turn, so nothing stays outstanding), zone totals and daily sums to match, and each
    camera's chain head at the last of them with its real key id."""
    store = open_store(db)
    now = time.time()
    t_ms = int(now * 1000) - 3_600_000  # an hour ago: the real events that follow are later
    stamp = events.rfc3339_ms(t_ms)

    def rows():
        for i in range(cameras):
            site, cam = camera_source(i, sites)
            source = events.make_source(site, cam)
            for n in range(1, per_camera + 1):
                litter = n // 2
                kind = "littering" if n % 2 else "cleanup"
                pts = -10 if n % 2 else 10
                eid = f"history-{i}-{n}"
                yield (source, site, f"{cam}-{'ab'[litter % 2]}", n, eid, kind, litter, pts)

    ev_cols = "source, seq, id, hash, keyid, body, received_at"
    led_cols = (
        "site, zone, source, seq, event_id, kind, severity, object_class, litter, points, claimed_points, time,"
        " received_at"
    )
    n = 0
    with store._write() as cur:
        if store.dialect == "postgresql":
            with cur.copy(f"COPY events ({ev_cols}) FROM STDIN") as copy:
                for source, _, _, seq, eid, *_ in rows():
                    copy.write_row((source, seq, eid, "0" * 64, "history", b"{}", now))
            with cur.copy(f"COPY ledger ({led_cols}) FROM STDIN") as copy:
                for source, site, zone, seq, eid, kind, litter, pts in rows():
                    copy.write_row(
                        (site, zone, source, seq, eid, kind, "small", "bottle", litter, pts, pts, stamp, now)
                    )
                    n += 1
        else:
            it = rows()
            while chunk := [r for _, r in zip(range(50_000), it)]:
                cur.executemany(
                    f"INSERT INTO events ({ev_cols}) VALUES (?,?,?,?,?,?,?)",
                    [(so, seq, eid, "0" * 64, "history", b"{}", now) for so, _, _, seq, eid, *_ in chunk],
                )
                cur.executemany(
                    f"INSERT INTO ledger ({led_cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (si, z, so, seq, eid, k, "small", "bottle", lit, p, p, stamp, now)
                        for so, si, z, seq, eid, k, lit, p in chunk
                    ],
                )
                n += len(chunk)
        cur.execute(
            "INSERT INTO zone_totals (site, zone, total, entries, outstanding, last_time)"
            " SELECT site, zone, SUM(points), COUNT(*), 0, MAX(time) FROM ledger GROUP BY site, zone"
        )
        cur.execute(
            "INSERT INTO zone_days (site, zone, day, points)"
            f" SELECT site, zone, '{stamp[:10]}', SUM(points) FROM ledger GROUP BY site, zone"
        )
        heads = []
        for i in range(cameras):
            site, cam = camera_source(i, sites)
            heads.append((events.make_source(site, cam), site, per_camera, "f" * 64, t_ms, keys.keyid(camera_key(i))))
        cur.executemany(
            store.q(
                "INSERT INTO sources (source, site, last_seq, last_hash, last_time_ms, last_keyid) VALUES (?,?,?,?,?,?)"
            ),
            heads,
        )
    store.close()
    return n


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc): what ingest costs, whatever else
    the machine is doing (wall-clock rates on a shared box mostly measure the others)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_db(db_arg: str, a: argparse.Namespace, tmp: Path) -> list[dict]:
    admin = None
    if db_arg == "sqlite":
        db = str(tmp / f"bench-{uuid.uuid4().hex[:6]}.sqlite3")
        label = "SQLite"
    else:
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = psycopg.connect(db_arg.rstrip("/") + "/postgres", autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        db = db_arg.rstrip("/") + "/" + name
        label = "PostgreSQL"
    rows = []
    try:
        store = open_store(db)
        t = time.perf_counter()
        with store._write() as cur:  # one transaction for all (`keys add` makes one per key)
            rows = []
            for i in range(a.cameras):
                key = camera_key(i)
                site, cam = camera_source(i, a.sites)
                src = events.make_source(site, cam)
                rows.append((keys.keyid(key), src, keys.public_b64(key.public_key()), time.time(), "bench"))
            cur.executemany(
                store.q("INSERT INTO camera_keys (keyid, source, public_b64, added_at, added_by) VALUES (?,?,?,?,?)"),
                rows,
            )
        rows = []
        api_key = auth.add_user(store, "bench", "viewer")
        store.close()
        print(f"[{label}] {a.cameras} camera keys registered in {time.perf_counter() - t:.1f} s", flush=True)

        per_camera = max(2, a.rows // a.cameras)
        t = time.perf_counter()
        if a.prefill == "sql":
            done = _bulk_history(db, a.cameras, a.sites, per_camera)
        else:
            cams = list(range(a.cameras))
            parts = [cams[k :: a.workers] for k in range(a.workers)]
            with mp.get_context("fork").Pool(a.workers) as pool:
                done = sum(pool.map(_prefill_worker, [(db, p, a.sites, per_camera, str(tmp)) for p in parts]))
        print(f"[{label}] prefilled {done} ledger rows ({a.prefill}) in {time.perf_counter() - t:.0f} s", flush=True)

        cfg = tmp / f"{label}.yaml"
        cfg.write_text(yaml.safe_dump({"db": db, "heads": str(tmp / f"{label}.heads")}))
        for nproc in a.processes:
            rows.append(measure(label, db, cfg, api_key, nproc, a))
    finally:
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    return rows


def measure(label: str, db: str, cfg: Path, api_key: str, nproc: int, a: argparse.Namespace) -> dict:
    store = open_store(db)
    ledger_rows = store.ledger_count()
    chains = []
    for i in range(a.cameras):
        site, cam = camera_source(i, a.sites)
        head = store.chain_head(events.make_source(site, cam))
        chains.append(Chain(i, site, cam, head.seq, head.hash, head.time_ms or 0))
    store.close()
    t = time.perf_counter()
    bodies = []
    order = list(range(a.cameras))
    random.Random(nproc).shuffle(order)
    for start in range(0, len(order), a.cameras_per_post):
        batch = []
        for i in order[start : start + a.cameras_per_post]:
            key = camera_key(i)
            kid = keys.keyid(key)
            batch += [chains[i].next(key, kid) for _ in range(a.per_camera)]
        bodies.append(json.dumps(batch).encode())
    n_events = a.cameras * a.per_camera
    print(f"[{label} x{nproc}] signed {n_events} events in {time.perf_counter() - t:.0f} s", flush=True)

    procs, urls = [], []
    for _ in range(nproc):
        port = _port()
        p = subprocess.Popen(
            [sys.executable, "-m", "detector", "backend", "serve", "--config", str(cfg), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(p)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            for _ in range(600):
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        queue = list(enumerate(bodies))
        lock = threading.Lock()
        problems: list[str] = []
        stop_reader = threading.Event()
        latencies: list[float] = []

        def sender(k: int) -> None:
            with httpx.Client(base_url=urls[k % len(urls)], timeout=120) as c:
                while True:
                    with lock:
                        if not queue or problems:
                            return
                        _, body = queue.pop()
                    r = c.post("/v1/events", content=body, headers={"content-type": "application/json"})
                    if r.status_code != 200:
                        problems.append(f"{r.status_code} {r.text[:200]}")

        def reader() -> None:
            rng = random.Random(0)
            with httpx.Client(base_url=urls[0], timeout=30, headers={"Authorization": f"Bearer {api_key}"}) as c:
                while not stop_reader.is_set():
                    site = f"site{rng.randrange(a.sites):03d}"
                    t0 = time.perf_counter()
                    r = c.get(f"/v1/sites/{site}/zones")
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code != 200 or not r.json()["zones"]:
                        problems.append(f"GET {r.status_code}")
                        return
                    time.sleep(a.read_pause)

        # the same reads with no ingest first: what the machine gives without our load
        rt = threading.Thread(target=reader)
        rt.start()
        time.sleep(a.idle_seconds)
        stop_reader.set()
        rt.join()
        idle = [x * 1000 for x in latencies]
        latencies.clear()
        stop_reader.clear()
        db_latencies: list[float] = []

        def db_reader() -> None:
            """The same read straight from the database (no HTTP, no server process): what the
            query costs at this ledger size, apart from the server's queueing."""
            rng = random.Random(1)
            st = open_store(db)
            try:
                while not stop_reader.is_set():
                    t0 = time.perf_counter()
                    st.zones(f"site{rng.randrange(a.sites):03d}")
                    db_latencies.append(time.perf_counter() - t0)
                    time.sleep(a.read_pause)
            finally:
                st.close()

        def answered() -> dict[str, float]:
            """Where the reader's server answered reads from so far (memory: its read view)."""
            out = {}
            text = httpx.get(urls[0] + "/metrics", headers={"Authorization": f"Bearer {api_key}"}).text
            for line in text.splitlines():
                if line.startswith("detector_backend_zone_reads_total{"):
                    out[line.split('"')[1]] = float(line.split()[-1])
            return out

        before = answered()
        rt = threading.Thread(target=reader)
        rt.start()
        dbt = threading.Thread(target=db_reader)
        dbt.start()
        senders = [threading.Thread(target=sender, args=(k,)) for k in range(a.senders)]
        cpu0 = sum(_cpu_seconds(p.pid) for p in procs)
        t = time.perf_counter()
        for s in senders:
            s.start()
        for s in senders:
            s.join()
        secs = time.perf_counter() - t
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu0
        stop_reader.set()
        rt.join()
        dbt.join()
        after = answered()
        answered_in_ingest = {k: v - before.get(k, 0.0) for k, v in after.items()}
        if problems:
            raise SystemExit(f"[{label} x{nproc}] failed: {problems[:3]}")
        check = open_store(db)
        applied = check.ledger_count() - ledger_rows
        check.close()
        ms = [x * 1000 for x in latencies]
        if applied != n_events:
            raise SystemExit(f"[{label} x{nproc}] {n_events} events posted, {applied} ledger rows added")
        row = {
            "database": label,
            "processes": nproc,
            "ledger_rows_before": ledger_rows,
            "events": n_events,
            "applied": applied,
            "seconds": round(secs, 2),
            "events_per_s": round(n_events / secs),
            "backend_cpu_ms_per_event": round(cpu * 1000 / n_events, 3),
            "get_zones_n": len(ms),
            "get_zones_p50_ms": round(_pct(ms, 50), 1),
            "get_zones_p99_ms": round(_pct(ms, 99), 1),
            "db_zones_p50_ms": round(_pct([x * 1000 for x in db_latencies], 50), 2),
            "db_zones_p99_ms": round(_pct([x * 1000 for x in db_latencies], 99), 2),
            "idle_get_zones_p50_ms": round(_pct(idle, 50), 1),
            "idle_get_zones_p99_ms": round(_pct(idle, 99), 1),
            "get_zones_from_memory": round(
                answered_in_ingest.get("memory", 0) / max(1, sum(answered_in_ingest.values())), 3
            ),
        }
        print(f"[{label} x{nproc}] {row}", flush=True)
        return row
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", help="sqlite, or a PostgreSQL server URL (repeatable)")
    ap.add_argument("--cameras", type=int, default=5000)
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1_000_000, help="ledger rows before the measurements")
    ap.add_argument("--per-camera", type=int, default=4, help="events each camera sends per measurement")
    ap.add_argument("--cameras-per-post", type=int, default=25, help="cameras whose events share one POST")
    ap.add_argument("--senders", type=int, default=4, help="concurrent posting threads")
    ap.add_argument("--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    ap.add_argument("--prefill", choices=["sql", "ingest"], default="sql", help="how the history rows are made")
    ap.add_argument("--workers", type=int, default=2, help="prefill worker processes (--prefill ingest)")
    ap.add_argument("--read-pause", type=float, default=0.02, help="seconds between the reader's GETs")
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="reads measured before ingest starts")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    dbs = a.db or ["sqlite"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for db in dbs:
            rows += run_db(db, a, Path(tmp))
    print(
        f"\n{a.cameras} cameras, {a.sites} sites, {a.per_camera * a.cameras} events per run, "
        f"{a.cameras_per_post * a.per_camera} per POST, {a.senders} senders\n"
    )
    print(
        "| database | processes | ledger rows | ingest events/s | backend CPU ms/event "
        "| GET site zones during ingest p50 / p99 ms | GETs | same GET, no ingest p50 / p99 ms "
        "| the query alone during ingest p50 / p99 ms | GETs answered from memory |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['database']} | {r['processes']} | {r['ledger_rows_before']:,} | {r['events_per_s']:,} "
            f"| {r['backend_cpu_ms_per_event']} | {r['get_zones_p50_ms']} / {r['get_zones_p99_ms']} "
            f"| {r['get_zones_n']} "
            f"| {r['idle_get_zones_p50_ms']} / {r['idle_get_zones_p99_ms']} "
            f"| {r['db_zones_p50_ms']} / {r['db_zones_p99_ms']} | {r['get_zones_from_memory']:.0%} |"
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
