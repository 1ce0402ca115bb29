"""Shared test helpers: keys, backend configs, a real backend process, acts, free ports, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from detector.protocol import keys
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


class BackendProcess:
    """`detector backend serve` in its own process on a free loopback port."""

    def __init__(self, config: Path, port: int | None = None):
        self.config = config
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, wait: bool = True) -> BackendProcess:
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
        return self.client.get("/healthz").json()["ledger_entries"]

    def zones(self) -> dict[str, dict]:
        return {z["zone"]: z for z in self.client.get("/v1/zones").json()["zones"]}

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
def running_backend(config: Path, port: int | None = None):
    b = BackendProcess(config, port).start()
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
