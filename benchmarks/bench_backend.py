"""Backend and sender throughput on this machine (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_backend.py [--events 2000]

Starts `detector backend serve` in its own process on a free loopback port with a fresh
SQLite ledger, then measures signed events accepted per second:
  1. single-event POSTs (one HTTP request per event, keep-alive),
  2. batches of 100 per POST,
  3. the edge path: events committed to an outbox, drained by `Sender` + `HttpSink`,
and prints a table. Signing is done before timing (except for the outbox fill, reported apart).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from detector import signer
from detector.outbox import Outbox, Sender
from detector.protocol import events, keys
from detector.signer import EventSigner
from detector.sinks.http import HttpSink
from detector.values import Act


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _acts(camera: str, n: int):
    sev = ("small", "bag", "bulky")
    for i in range(n):
        yield Act("littering", camera, f"z{i % 10}", "bottle", (10, 20, 30, 40), sev[i % 3], i * 0.1, i * 0.1 + 0.05, i)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000, help="events per measurement (default 2000)")
    n = ap.parse_args().events
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cams = ["single", "batch", "edge"]
        ks = {c: keys.generate(c, d) for c in cams}
        cfg = d / "backend.yaml"
        cfg.write_text(
            yaml.safe_dump({"db": "ledger.sqlite3", "keys": {f"/sites/b/cameras/{c}": ks[c][1].name for c in cams}})
        )
        port = _port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "detector", "backend", "serve", "--config", str(cfg), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        client = httpx.Client(base_url=url, timeout=30)
        try:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            rows = []

            evs = list(signer.sign_acts(_acts("single", n), ks["single"][0], "b", "single"))
            t = time.perf_counter()
            for e in evs:
                r = client.post("/v1/events", content=events.canonical(e))
                assert r.status_code == 200, r.text
            rows.append(("single-event POSTs", n, time.perf_counter() - t))

            evs = list(signer.sign_acts(_acts("batch", n), ks["batch"][0], "b", "batch"))
            t = time.perf_counter()
            for i in range(0, n, 100):
                r = client.post("/v1/events", content=events.canonical(evs[i : i + 100]))
                assert r.status_code == 200, r.text
            rows.append(("batches of 100", n, time.perf_counter() - t))

            ob = Outbox(d / "outbox.sqlite3", EventSigner(keys.load_private_key(ks["edge"][0]), "b", "edge"))
            t = time.perf_counter()
            for a in _acts("edge", n):
                ob.add(a)
            rows.append(("outbox add (sign + commit, no network)", n, time.perf_counter() - t))
            t = time.perf_counter()
            sender = Sender(ob, HttpSink(url), batch_size=100)
            sent = sender.run(until_empty=True)
            rows.append(("sender: outbox -> backend, batches of 100", sent, time.perf_counter() - t))
            assert client.get("/healthz").json()["ledger_entries"] == 3 * n
        finally:
            proc.terminate()
            proc.wait()

    print(f"{'measurement':44} {'events':>7} {'seconds':>8} {'events/s':>9}")
    for name, count, secs in rows:
        print(f"{name:44} {count:7d} {secs:8.2f} {count / secs:9.0f}")


if __name__ == "__main__":
    main()
