"""`detector run --config SITE.yaml`: one worker process per camera, kept alive for months.

- Workers are `spawn`ed (no inherited threads, locks or onnxruntime state from the parent).
- A worker that dies is restarted after an exponential backoff (reset once it has stayed
  up for `stable_after_s`); a file camera that reaches its end without `loop` is finished
  and not restarted. One camera failing never touches the others.
- SIGTERM/SIGINT: SIGTERM to every worker asks it to flush its outbox and exit; whoever is
  still alive after `stop_timeout_s` is killed. (No multiprocessing Event: a waiter killed
  with SIGKILL leaves it inconsistent, and set() then blocks forever.) Workers also stop
  by themselves when the supervisor dies.
- The camera state table goes to stderr periodically; /metrics and /healthz are served.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from detector.config import SiteCamera, SiteConfig
from detector.metrics import SiteMetrics, serve
from detector.protocol.errors import UserError
from detector.worker import worker_main

log = logging.getLogger("detector.supervisor")


@dataclass
class _Slot:
    cam: SiteCamera
    proc: mp.process.BaseProcess | None = None
    conn: object | None = None  # read end of this worker's stats pipe
    started: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    done: bool = False  # finished file camera, or stopping


def preflight(cam: SiteCamera, timeout_s: float = 2.0) -> str | None:
    """A one-line warning when a camera is unreachable at start (it is started anyway and retried)."""
    if cam.is_rtsp:
        parts = urlsplit(cam.url)
        host, port = parts.hostname, parts.port or 554
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as e:
            return f"camera {cam.name!r}: url: cannot reach {host}:{port} ({e.strerror or e}); will keep retrying"
    from detector.samples import resolve_clip

    try:
        resolve_clip(cam.url)
    except UserError as e:
        return f"camera {cam.name!r}: url: {e}; will keep retrying"
    return None


class Supervisor:
    def __init__(self, site: SiteConfig, start_method: str = "spawn", metrics_port: int | None = None) -> None:
        self.site = site
        self.cfg = site.supervisor
        self.ctx = mp.get_context(start_method)
        cams = [c for c in site.cameras if c.enabled]
        if not cams:
            raise UserError("no enabled camera in the site config")
        self.slots = {c.name: _Slot(c, backoff=self.cfg.restart_backoff_initial_s) for c in cams}
        self.metrics = SiteMetrics(site.site, list(self.slots), site.metrics.stale_after_s)
        self._signalled = False
        self.server = None
        self.metrics_port = site.metrics.port if metrics_port is None else metrics_port

    # -- lifecycle -------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        # Only a plain attribute here: this runs as a signal handler, and Event.set() from a
        # handler can deadlock with the main thread waiting on that Event.
        self._signalled = True

    def _start(self, slot: _Slot) -> None:
        name = slot.cam.name
        # One pipe per worker, not a shared Queue: a worker killed while holding a shared
        # queue's write lock would silence every other worker's reports.
        reader, writer = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=worker_main, args=(self.site, name, writer), name=f"camera-{name}")
        proc.start()
        writer.close()
        slot.proc, slot.conn, slot.started = proc, reader, time.monotonic()
        # `since` (the staleness clock of a camera that never delivered a frame) is not reset
        # here: a worker that crashes before its first frame, again and again, must go stale.
        self.metrics.set_supervised(name, state="running", pid=proc.pid)
        log.info("camera %r: worker started (pid %d)", name, proc.pid)

    def _reap(self, slot: _Slot, now: float) -> None:
        proc, name = slot.proc, slot.cam.name
        code = proc.exitcode
        proc.join(0)
        self._drain()
        slot.proc = None
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None
        finished = self.metrics.latest.get(name, {}).get("state") == "finished"
        self.metrics.retire(name)
        if code == 0 and (finished or self._signalled):
            slot.done = True
            self.metrics.set_supervised(name, state="finished" if finished else "stopped", pid=None)
            log.info("camera %r: worker %s", name, "finished its file" if finished else "stopped")
            return
        if now - slot.started >= self.cfg.stable_after_s:
            slot.backoff = self.cfg.restart_backoff_initial_s
        slot.next_start = now + slot.backoff
        restarts = self.metrics.supervised[name]["restarts"] + 1
        self.metrics.set_supervised(
            name, state="backoff", pid=None, restarts=restarts, last_exit=f"worker exited with code {code}"
        )
        log.warning("camera %r: worker exited with code %s; restart %d in %.1f s", name, code, restarts, slot.backoff)
        slot.backoff = min(slot.backoff * 2, self.cfg.restart_backoff_max_s)

    def _drain(self) -> None:
        for slot in self.slots.values():
            conn = slot.conn
            try:
                while conn is not None and conn.poll():
                    kind, camera, payload = conn.recv()
                    if kind == "stats":
                        self.metrics.update(camera, payload)
            except (EOFError, OSError):  # the worker is gone; _reap notices and restarts it
                conn.close()
                slot.conn = None

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        for slot in self.slots.values():
            warning = preflight(slot.cam)
            if warning:
                log.error("%s", warning)
        if self.site.metrics.enabled:
            try:
                self.server = serve(self.metrics, self.site.metrics.host, self.metrics_port)
            except OSError as e:
                raise UserError(
                    f"metrics: cannot listen on {self.site.metrics.host}:{self.metrics_port}: {e.strerror or e}"
                ) from None
            host, port = self.server.server_address[:2]
            log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
        for slot in self.slots.values():
            self._start(slot)
        last_table = time.monotonic()
        try:
            while not self._signalled:
                self._drain()
                now = time.monotonic()
                for slot in self.slots.values():
                    if slot.proc is not None and not slot.proc.is_alive():
                        self._reap(slot, now)
                    elif slot.proc is None and not slot.done and now >= slot.next_start:
                        self._start(slot)
                if all(s.done for s in self.slots.values()):
                    log.info("every camera has finished")
                    break
                if now - last_table >= self.cfg.state_log_interval_s:
                    last_table = now
                    log.info("camera states:\n%s", self.metrics.table())
                time.sleep(0.2)  # a signal interrupts the sleep and sets _signalled
        finally:
            self._shutdown()
        return 0

    def _shutdown(self) -> None:
        live = [s for s in self.slots.values() if s.proc is not None and s.proc.is_alive()]
        for s in live:
            s.proc.terminate()  # SIGTERM: the worker stops reading, flushes its outbox and exits
        deadline = time.monotonic() + self.cfg.stop_timeout_s
        for s in live:
            s.proc.join(max(0.0, deadline - time.monotonic()))
        for s in live:
            if s.proc.is_alive():
                log.warning("camera %r: worker did not stop in %.0f s; killing it", s.cam.name, self.cfg.stop_timeout_s)
                s.proc.kill()
                s.proc.join(2)
        self._drain()
        for name, s in self.slots.items():
            if s.proc is not None:
                self.metrics.retire(name)
                self.metrics.set_supervised(name, state="stopped", pid=None)
                s.proc = None
        log.info("camera states at exit:\n%s", self.metrics.table())
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def run_site(site, metrics_port: int | None = None) -> int:
    """Run every camera of a loaded site until stopped; the exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return Supervisor(site, metrics_port=metrics_port).run()
