"""`detector run --config SITE.yaml`: worker processes for the cameras, kept alive for months.

- Cameras run in groups of at most `supervisor.cameras_per_process` per worker process (see
  `detector.worker` for why several share one); `cameras_per_process: 1` gives every camera a
  process of its own, trading memory for isolation from a crash of a neighbour.
- Workers are `spawn`ed (no inherited threads, locks or onnxruntime state from the parent).
- A worker that dies is restarted after an exponential backoff (reset once it has stayed
  up for `stable_after_s`), with those of its cameras that had not finished. A file camera that
  reaches its end without `loop` is finished and not restarted; a camera stopped by a
  configuration error (state `error`) is reported and not restarted either, nor is a worker
  that exits with code 2 (a configuration error before its cameras could start).
- SIGTERM/SIGINT: SIGTERM to every worker asks it to flush its outboxes and exit; whoever is
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
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from detector.config import SiteCamera, SiteConfig
from detector.metrics import SiteMetrics, serve
from detector.protocol.errors import UserError
from detector.values import CameraState
from detector.worker import worker_main

log = logging.getLogger("detector.supervisor")

_FINAL = (CameraState.FINISHED, CameraState.ERROR)  # a camera in these states is not restarted


@dataclass
class _Group:
    cams: list[SiteCamera]
    proc: mp.process.BaseProcess | None = None
    conn: object | None = None  # read end of this worker's stats pipe
    started: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    done: set[str] = field(default_factory=set)  # cameras finished or stopped for good
    stopped: bool = False  # nothing left to run

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cams]

    def pending(self) -> list[str]:
        return [c.name for c in self.cams if c.name not in self.done]


def groups_of(cameras: list[SiteCamera], per_process: int) -> list[list[SiteCamera]]:
    """Cameras dealt round-robin into as few groups as `per_process` allows (equal sizes)."""
    n = max(1, -(-len(cameras) // per_process))
    return [cameras[i::n] for i in range(n) if cameras[i::n]]


def preflight(cam: SiteCamera, timeout_s: float = 2.0) -> str | None:
    """A one-line warning when a camera is unreachable at start (RTSP cameras are retried)."""
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
        return f"camera {cam.name!r}: url: {e}"
    return None


def check_site(site: SiteConfig, metrics_port: int | None = None) -> tuple[list[str], list[str]]:
    """What `detector run` would trip on, found without running it: (errors, warnings).

    Errors: a file camera whose clip is missing or unreadable, a model that does not resolve, a
    key that does not load, a directory that cannot be made or written, a metrics port in use.
    Warnings: an RTSP camera that does not answer now (it is retried at run time).
    """
    import os
    import tempfile
    from pathlib import Path

    from detector.models import resolve_model
    from detector.protocol import keys

    errors: list[str] = []
    warnings: list[str] = []
    enabled = [c for c in site.cameras if c.enabled]
    if not enabled:
        errors.append("no enabled camera in the site config")
    for cam in enabled:
        if cam.is_rtsp:
            problem = preflight(cam)
            if problem:
                warnings.append(problem)
            continue
        from detector.samples import resolve_clip
        from detector.sources import open_video

        try:
            open_video(str(resolve_clip(cam.url)))[0].close()
        except UserError as e:
            errors.append(f"camera {cam.name!r}: url: {e}")
        except Exception as e:  # PyAV's errors for a file that is not a video
            errors.append(f"camera {cam.name!r}: url: {cam.url}: cannot open as video ({e})")
    models = {(s.detector.model, s.detector.model_path) for s in (site.camera_settings(c) for c in enabled)}
    if site.privacy.snapshots or site.privacy.sample_every:
        models.add((site.privacy.face_model, site.privacy.face_model_path))
    for name, path in sorted(models, key=str):
        try:
            resolve_model(name, path)
        except UserError as e:
            errors.append(f"model: {e}")
    for label, directory in (
        ("outbox.dir", site.outbox.dir),
        ("outbox.key_dir", site.outbox.key_dir),
        ("privacy.evidence_dir", site.privacy.evidence_dir),
    ):
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory):
                pass
        except OSError as e:
            errors.append(f"{label}: {directory}: cannot create or write there ({e.strerror or e})")
    for cam in enabled:
        key = Path(site.outbox.key_dir) / f"{cam.name}.key"
        if key.exists():
            try:
                keys.load_private_key(key)
            except UserError as e:
                errors.append(f"camera {cam.name!r}: key: {e}")
        elif not os.access(site.outbox.key_dir, os.W_OK) and Path(site.outbox.key_dir).exists():
            errors.append(f"camera {cam.name!r}: key: {key} is missing and cannot be made there")
    port = site.metrics.port if metrics_port is None else metrics_port
    if site.metrics.enabled and port:
        try:
            with socket.socket() as s:
                s.bind((site.metrics.host, port))
        except OSError as e:
            errors.append(f"metrics: cannot listen on {site.metrics.host}:{port}: {e.strerror or e}")
    return errors, warnings


class Supervisor:
    def __init__(self, site: SiteConfig, start_method: str = "spawn", metrics_port: int | None = None) -> None:
        self.site = site
        self.cfg = site.supervisor
        self.ctx = mp.get_context(start_method)
        cams = [c for c in site.cameras if c.enabled]
        if not cams:
            raise UserError("no enabled camera in the site config")
        self.groups = [
            _Group(g, backoff=self.cfg.restart_backoff_initial_s) for g in groups_of(cams, self.cfg.cameras_per_process)
        ]
        self.metrics = SiteMetrics(site.site, [c.name for c in cams], site.metrics.stale_after_s)
        self._signalled = False
        self.server = None
        self.metrics_port = site.metrics.port if metrics_port is None else metrics_port

    # -- lifecycle -------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        # Only a plain attribute here: this runs as a signal handler, and Event.set() from a
        # handler can deadlock with the main thread waiting on that Event.
        self._signalled = True

    def _start(self, group: _Group) -> None:
        names = group.pending()
        # One pipe per worker, not a shared Queue: a worker killed while holding a shared
        # queue's write lock would silence every other worker's reports.
        reader, writer = self.ctx.Pipe(duplex=False)
        label = names[0] if len(names) == 1 else f"{names[0]}+{len(names) - 1}"
        proc = self.ctx.Process(target=worker_main, args=(self.site, names, writer), name=f"camera-{label}")
        proc.start()
        writer.close()
        group.proc, group.conn, group.started = proc, reader, time.monotonic()
        # `since` (the staleness clock of a camera that never delivered a frame) is not reset
        # here: a worker that crashes before its first frame, again and again, must go stale.
        for name in names:
            self.metrics.set_supervised(name, state=CameraState.RUNNING, pid=proc.pid)
        log.info("worker %d started for %s", proc.pid, ", ".join(repr(n) for n in names))

    def _reap(self, group: _Group, now: float) -> None:
        proc = group.proc
        code = proc.exitcode
        proc.join(0)
        self._drain()
        group.proc = None
        if group.conn is not None:
            group.conn.close()
            group.conn = None
        running = group.pending()
        for name in running:
            state = self.metrics.last_state(name)
            if state in _FINAL:  # it reported its end: finished, or stopped on a configuration error
                group.done.add(name)
            self.metrics.retire(name)
            if state in _FINAL:
                self.metrics.set_supervised(name, state=state, pid=None)
                log.info("camera %r: %s", name, "finished its file" if state == CameraState.FINISHED else "stopped")
        left = group.pending()
        if not left:
            group.stopped = True
            return
        if code == 2:  # a configuration error before the cameras could report: retrying cannot help
            for name in left:
                group.done.add(name)
                self.metrics.set_supervised(
                    name, state=CameraState.ERROR, pid=None, last_exit="worker exited with a configuration error"
                )
            group.stopped = True
            log.error("worker for %s exited with a configuration error; not restarted", ", ".join(map(repr, left)))
            return
        if code == 0 and self._signalled:
            for name in left:
                self.metrics.set_supervised(name, state=CameraState.STOPPED, pid=None)
            group.stopped = True
            return
        if now - group.started >= self.cfg.stable_after_s:
            group.backoff = self.cfg.restart_backoff_initial_s
        group.next_start = now + group.backoff
        for name in left:
            restarts = self.metrics.supervised[name].restarts + 1
            self.metrics.set_supervised(
                name,
                state=CameraState.BACKOFF,
                pid=None,
                restarts=restarts,
                last_exit=f"worker exited with code {code}",
            )
        log.warning(
            "worker for %s exited with code %s; restart in %.1f s", ", ".join(map(repr, left)), code, group.backoff
        )
        group.backoff = min(group.backoff * 2, self.cfg.restart_backoff_max_s)

    def _drain(self) -> None:
        for group in self.groups:
            conn = group.conn
            try:
                while conn is not None and conn.poll():
                    kind, payload = conn.recv()
                    if kind == "stats":
                        for stats in payload:
                            self.metrics.update(stats)
            except (EOFError, OSError):  # the worker is gone; _reap notices and restarts it
                conn.close()
                group.conn = None

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        for group in self.groups:
            for cam in group.cams:
                warning = preflight(cam)
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
        for group in self.groups:
            self._start(group)
        last_table = time.monotonic()
        try:
            while not self._signalled:
                self._drain()
                now = time.monotonic()
                for group in self.groups:
                    if group.proc is not None and not group.proc.is_alive():
                        self._reap(group, now)
                    elif group.proc is None and not group.stopped and now >= group.next_start:
                        self._start(group)
                if all(g.stopped for g in self.groups):
                    log.info("every camera has finished or stopped")
                    break
                if now - last_table >= self.cfg.state_log_interval_s:
                    last_table = now
                    log.info("camera states:\n%s", self.metrics.table())
                time.sleep(0.2)  # a signal interrupts the sleep and sets _signalled
        finally:
            self._shutdown()
        return 0

    def _shutdown(self) -> None:
        live = [g for g in self.groups if g.proc is not None and g.proc.is_alive()]
        for g in live:
            g.proc.terminate()  # SIGTERM: the worker stops reading, flushes its outboxes and exits
        deadline = time.monotonic() + self.cfg.stop_timeout_s
        for g in live:
            g.proc.join(max(0.0, deadline - time.monotonic()))
        for g in live:
            if g.proc.is_alive():
                log.warning("worker %d did not stop in %.0f s; killing it", g.proc.pid, self.cfg.stop_timeout_s)
                g.proc.kill()
                g.proc.join(2)
        self._drain()
        for g in self.groups:
            if g.proc is not None:
                for name in g.pending():
                    state = self.metrics.last_state(name)
                    self.metrics.retire(name)
                    final = state if state in _FINAL else CameraState.STOPPED
                    self.metrics.set_supervised(name, state=final, pid=None)
                g.proc = None
        log.info("camera states at exit:\n%s", self.metrics.table())
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def run_site(site, metrics_port: int | None = None) -> int:
    """Run every camera of a loaded site until stopped; the exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return Supervisor(site, metrics_port=metrics_port).run()
