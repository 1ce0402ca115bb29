"""Shared test helpers: keys, backend configs, a real backend process, signed events built with
`detector.protocol` only (the backend's tests run without the edge installed), acts, scratch
databases, free ports, polling.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from detector.protocol import events, keys

if TYPE_CHECKING:
    from detector.values import Act

SITE = "s1"
POINTS = {"small": 10, "bag": 30, "bulky": 100}
SEVERITIES = ("small", "bag", "bulky")


def source_of(camera: str) -> str:
    return f"/sites/{SITE}/cameras/{camera}"


def make_keys(dirpath: Path, *cameras: str) -> dict[str, tuple[Path, Path, str]]:
    return {c: keys.generate(c, dirpath) for c in cameras}


def write_config(path: Path, key_files: dict[str, Path], revoked: list[str] = (), **extra) -> Path:
    cfg = {
        "db": "ledger.sqlite3",
        "keys": {source_of(c): str(p.name) if p.parent == path.parent else str(p) for c, p in key_files.items()},
        "revoked": list(revoked),
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def act(
    i: int,
    camera: str,
    zone: str = "z1",
    kind: str = "littering",
    severity: str = "small",
    litter: int | None = None,
    snapshot: bytes | None = None,
) -> Act:
    from detector.values import Act  # the edge's value type: imported only by edge tests

    return Act(
        kind,
        camera,
        zone,
        "bottle",
        (10 + i % 50, 20, 30 + i % 50, 40),
        severity,
        t_release=i * 0.5,
        t_notify=i * 0.5 + 0.25,
        litter_id=i if litter is None else litter,
        frame_index=i * 3,
        snapshot=snapshot,
    )


def detector_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "detector", *args]


def add_user(config: Path, name: str, role: str) -> str:
    """`detector backend users add`: the API key it prints alone on its last line."""
    r = subprocess.run(
        detector_cmd("backend", "users", "add", name, "--role", role, "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


class BackendProcess:
    """`detector backend serve` in its own process on a free loopback port, with an admin API
    key for its reads (made with the real CLI unless one is given)."""

    def __init__(self, config: Path, port: int | None = None, api_key: str | None = None, verify=True):
        self.config = config
        self.port = port or free_port()
        tls = (yaml.safe_load(Path(config).read_text()) or {}).get("listen", {}).get("tls_cert")
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.api_key = api_key
        self.verify = verify
        self.client = httpx.Client(base_url=self.url, timeout=10, verify=verify)

    def start(self, wait: bool = True) -> BackendProcess:
        if self.api_key is None:
            self.api_key = add_user(self.config, f"admin-{uuid.uuid4().hex[:8]}", "admin")
        self.client.headers["Authorization"] = f"Bearer {self.api_key}"
        self.proc = subprocess.Popen(
            detector_cmd("backend", "serve", "--config", str(self.config), "--port", str(self.port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if wait:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"backend exited: {self.proc.stderr.read().decode()}")
                try:
                    if self.client.get("/healthz").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            raise RuntimeError("backend did not start")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def ledger_count(self) -> int:
        return self.client.get("/v1/stats").json()["ledger_entries"]

    def zones(self, site: str = SITE) -> dict[str, dict]:
        return {z["zone"]: z for z in self.client.get(f"/v1/sites/{site}/zones").json()["zones"]}

    def zone(self, zone: str, site: str = SITE, **params) -> httpx.Response:
        return self.client.get(f"/v1/sites/{site}/zones/{zone}", params=params)

    def post(self, payload=None, content: bytes | None = None) -> httpx.Response:
        if content is not None:
            return self.client.post("/v1/events", content=content, headers={"content-type": "application/json"})
        return self.client.post("/v1/events", json=payload)

    def metric(self, name: str, **labels: str) -> float:
        text = self.client.get("/metrics").text
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0


@contextmanager
def running_backend(config: Path, port: int | None = None, **kw):
    b = BackendProcess(config, port, **kw).start()
    try:
        yield b
    finally:
        b.stop()


def wait_until(pred, timeout: float = 60, interval: float = 0.1, tolerate: tuple = ()):
    """Poll `pred` until it returns something truthy (returned) or `timeout` passes (the last
    value is returned). Exceptions of the `tolerate` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
        except tolerate:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def tampered(value):
    """A different value of the same JSON type (strings keep their length and alphabet)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [tampered(value[0])] + value[1:]
    if isinstance(value, dict):
        return {**value, "extra": 1}
    last = value[-1]
    return value[:-1] + (
        "1" if last == "0" else "0" if last.isdigit() or last in "abcdef" else "x" if last != "x" else "y"
    )


def event_fields(event: dict) -> list[str]:
    """Every leaf attribute of an event, as 'name' or 'data.name'."""
    return [k for k in event if k != "data"] + [f"data.{k}" for k in event["data"]]


def with_field(event: dict, field: str, value) -> dict:
    import copy

    e = copy.deepcopy(event)
    obj, k = (e["data"], field[5:]) if field.startswith("data.") else (e, field)
    obj[k] = value
    return e


def get_field(event: dict, field: str):
    return event["data"][field[5:]] if field.startswith("data.") else event[field]


# -- signed events with detector.protocol only ------------------------------------------------


@dataclass
class Chain:
    """One camera's chain of signed events, built the way the edge builds them (RFC 8785,
    Ed25519, seq and prevhash) but from `detector.protocol` alone. Event times are now (ms),
    never running backwards, and each id's UUIDv7 timestamp is its time."""

    key: object  # Ed25519PrivateKey
    site: str
    camera: str
    seq: int = 0
    prevhash: str = events.GENESIS_PREVHASH
    last: datetime | None = None

    @classmethod
    def of(cls, key_path: Path, camera: str, site: str = SITE) -> Chain:
        return cls(keys.load_private_key(key_path), site, camera)

    @property
    def source(self) -> str:
        return events.make_source(self.site, self.camera)

    def event(
        self,
        kind: str = "littering",
        zone: str = "z1",
        severity: str = "small",
        litter: int = 0,
        also: tuple[tuple[int, str], ...] = (),
        evidence: bytes | None = None,
        object_class: str = "bottle",
        advance: bool = True,
    ) -> dict:
        """The next signed event (the chain moves on unless advance=False: a fork)."""
        now = datetime.now(UTC)
        when = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self.last is not None and when <= self.last:
            when = self.last + timedelta(milliseconds=1)
        ms = (when - events.EPOCH) // timedelta(milliseconds=1)
        sign = -1 if kind == "littering" else 1
        data = {
            "act": kind,
            "object_class": object_class,
            "box": [10, 20, 30 + litter % 50, 40],
            "severity": severity,
            "t_release_ms": 1000 * (self.seq + 1),
            "t_notify_ms": 1000 * (self.seq + 1) + 250,
            "frame_index": 3 * (self.seq + 1),
            "litter": litter,
            "points": sign * (POINTS[severity] + sum(POINTS[s] for _, s in also)),
        }
        if also:
            data["also"] = [{"litter": lid, "severity": sev} for lid, sev in also]
        if evidence is not None:
            data["evidence_sha256"] = hashlib.sha256(evidence).hexdigest()
        ev = {
            "specversion": events.SPECVERSION,
            "id": events.uuid7(ms, os.urandom(10)),
            "source": self.source,
            "type": events.TYPES[kind],
            "subject": zone,
            "time": events.rfc3339(when),
            "datacontenttype": events.DATACONTENTTYPE,
            "seq": self.seq + 1,
            "prevhash": self.prevhash,
            "keyid": keys.keyid(self.key),
            "data": data,
        }
        ev = events.sign_event(ev, self.key)
        if advance:
            self.seq += 1
            self.prevhash = events.event_hash(ev)
            self.last = when
        return ev

    def littering(self, n: int, zone: str = "z1", severity: str = "small", first_litter: int = 0) -> list[dict]:
        return [self.event("littering", zone, severity, litter=first_litter + i) for i in range(n)]


def resign(event: dict, key) -> dict:
    """`event` (changed by a test) signed again by `key`."""
    body = {k: v for k, v in event.items() if k != events.SIG_ATTR}
    return events.sign_event(body, key)


# -- scratch databases ------------------------------------------------------------------------

PG_SERVER = os.environ.get("DETECTOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
DB_KINDS = ("sqlite", "postgresql")


@contextmanager
def scratch_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger database for one test: a SQLite path, or a PostgreSQL database created on
    the local server (DETECTOR_TEST_PG) and dropped afterwards. Without a reachable server the
    PostgreSQL case skips, except in CI (CI=true), where it fails."""
    if kind == "sqlite":
        yield str(tmp_path / f"ledger-{uuid.uuid4().hex[:8]}.sqlite3")
        return
    import psycopg

    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER} (set DETECTOR_TEST_PG): {str(e).strip()[:120]}")
    name = f"detector_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
