"""Camera workers: source -> pipeline -> blurred evidence -> signed event in the outbox -> sinks.

`CameraWorker` is one camera (its source, pipeline, evidence store and outbox); `analyse(frame)`
is the whole per-frame path. `WorkerGroup` runs several cameras in one process, and
`worker_main` runs a group as a child process of the supervisor, reporting each camera's
cumulative counters (`WorkerStats`, as itself) on its own pipe once a second.

Why several cameras share a process: the libraries and models a camera needs (OpenCV, FFmpeg,
onnxruntime, supervision, the detector and face models) take about 250 MB per process, more
than the camera itself; one process holds them once and its cameras share one detector session
and one face detector (onnxruntime sessions are thread-safe). Each camera decodes in its own
reader thread; a few analysis threads (one per core) take the waiting frames oldest first, so
when frames come faster than they can be analysed every camera skips its share of frames and
none starves. Decoding and inference release the GIL; the Python part of a frame's analysis is
a few milliseconds, so one process keeps two cores busy.

An unexpected error in one camera restarts that camera alone (with backoff); a configuration
error (a missing file, an unusable model) stops it with state `error` and is not retried. Track
ids and unblurred frames never leave the process: only acts, blurred JPEGs and signed events do.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detector.config import DetectorConfig, PrivacyConfig, SiteCamera, SiteConfig
from detector.metrics import Histogram, act_latency_histogram, detector_histogram
from detector.protocol.errors import UserError
from detector.values import Act, CameraState, Frame

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Cumulative counters of one camera in one worker incarnation (sent to the supervisor as itself)."""

    camera: str
    state: CameraState = CameraState.STARTING
    frames_read: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    frames_passed_over: int = 0  # frames drained undecoded while the analysis was behind (overload)
    reconnects: int = 0
    connects: int = 0
    restarts: int = 0  # the camera was restarted inside its worker after an unexpected error
    acts: int = 0
    snapshots: int = 0
    outbox_depth: int = 0
    delivered: int = 0
    delivery_failures: int = 0
    delivery_blocked: str | None = None  # why the backend refused this camera's chain for good (None: not blocked)
    cpu_s: float = 0.0  # the camera's reader thread plus its frames' analysis
    detector_s: Histogram = field(default_factory=detector_histogram)
    act_latency_s: Histogram = field(default_factory=act_latency_histogram)
    last_frame_wall: float | None = None  # time.time() of the last analysed frame
    video_time_s: float | None = None  # stream time of the last analysed frame
    last_error: str | None = None

    def copy(self) -> WorkerStats:
        return dataclasses.replace(self, detector_s=self.detector_s.copy(), act_latency_s=self.act_latency_s.copy())


def _load_or_make_key(key_dir: Path, camera: str):
    from detector.protocol import keys

    path = Path(key_dir) / f"{camera}.key"
    if not path.exists() and path.with_suffix(".head").exists():
        # The key is gone but its chain's head is still here: a new key would sign events the
        # backend does not know; say so rather than start over silently.
        raise UserError(
            f"camera {camera!r}: signing key {path} is missing but its chain head {path.with_suffix('.head')} is "
            "there: restore the key, or generate a new one with `detector keys generate`, register it with the "
            "backend and re-sign what is pending with `detector outbox resign`"
        )
    if not path.exists():
        _, pub, kid = keys.generate(camera, Path(key_dir))
        log.warning(
            "camera %r: generated a new signing key %s (public key %s); register it with the backend", camera, kid, pub
        )
    return keys.load_private_key(path)


class _AllSinks:
    """Adapter: the outbox Sender takes one sink; an event counts as delivered when every sink has it.

    It also counts failed deliveries (the Sender's own counter resets on success).

    A sink that already took an event may get it again on a retry; receivers deduplicate
    by event id (the backend does, MQTT consumers must).
    """

    def __init__(self, sinks: list) -> None:
        self.sinks = sinks
        self.failures = 0  # failed deliveries, counted for the metrics

    def deliver(self, events: list[dict]):
        from detector.sinks import DeliveryResult

        results = [s.deliver(events) for s in self.sinks]
        done = min(r.delivered for r in results)
        errors = [r.error for r in results if r.error]
        if errors:
            self.failures += 1
        refused = [r for r in results if r.permanent]
        return DeliveryResult(
            done, "; ".join(errors) if errors else None, bool(refused), refused[0].reason if refused else None
        )

    def close(self) -> None:
        for s in self.sinks:
            s.close()


def build_sinks(site: SiteConfig, camera: str) -> list:
    sinks = []
    if site.delivery.url:
        from detector.sinks.http import HttpSink

        # snapshots go up after their events (the backend keeps only what an accepted event names)
        evidence = site.privacy.evidence_dir if site.privacy.snapshots else None
        sinks.append(HttpSink(site.delivery.url, evidence_dir=evidence))
    if site.mqtt.enabled:
        from detector.sinks.mqtt import MqttSink

        sinks.append(MqttSink(site.mqtt, camera))
    return sinks


class SharedModels:
    """Models loaded once per worker process and shared by its cameras (onnxruntime sessions
    may run from several threads at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detectors: dict[str, object] = {}
        self._redactors: dict[str, object] = {}

    def detector(self, cfg: DetectorConfig):
        from detector.detection import build_detector

        key = cfg.model_dump_json()
        with self._lock:
            if key not in self._detectors:
                self._detectors[key] = build_detector(cfg)
            return self._detectors[key]

    def redactor(self, cfg: PrivacyConfig):
        from detector.privacy import Redactor

        key = cfg.model_dump_json()
        with self._lock:
            if key not in self._redactors:
                self._redactors[key] = Redactor(cfg)
            return self._redactors[key]


def open_source(site: SiteConfig, cam: SiteCamera, fps: float, stop: threading.Event):
    """The camera's live source (not started): RTSP, or a file played like a camera."""
    if cam.is_rtsp:
        from detector.rtsp import RtspSource

        return RtspSource(cam.url, fps, site.rtsp, stop)
    from detector.samples import resolve_clip
    from detector.sources import LiveFile

    try:
        return LiveFile(resolve_clip(cam.url), fps, cam.loop, cam.realtime, stop)
    except UserError as e:
        raise UserError(f"camera {cam.name!r}: url: {e}") from None


class CameraWorker:
    """One camera. `run()` is a camera alone in the calling thread; a `WorkerGroup` instead calls
    `open()`, starts the source, `analyse()`s the frames it hands on and `close()`s."""

    def __init__(
        self,
        site: SiteConfig,
        camera: SiteCamera,
        stop: threading.Event | None = None,
        report: Callable[[WorkerStats], None] | None = None,
        on_act: Callable[[Act, dict], None] | None = None,
        report_interval_s: float = 1.0,
        models: SharedModels | None = None,
        stats: WorkerStats | None = None,
    ) -> None:
        self.site, self.cam = site, camera
        self.stop = stop or threading.Event()
        self.report = report
        self.on_act = on_act
        self.report_interval_s = report_interval_s
        self.models = models or SharedModels()
        self.stats = stats or WorkerStats(camera.name)
        self.settings = site.camera_settings(camera)
        self.source = None
        self.pipeline = None
        self.outbox = None
        self.sender = None
        self._sender_thread: threading.Thread | None = None
        self._evidence = None
        self._redactor = None
        self._analysis_cpu_s = 0.0
        self._closed = threading.Event()
        self._view_sent = False  # the reference frame and zones go to the backend once per start
        # Counters of earlier sources (a camera restarted in its worker gets a new one).
        self._base = self.stats.copy()

    # -- parts ---------------------------------------------------------------------------
    def open(self) -> None:
        """Everything but the source's reader; raises UserError on a configuration error."""
        from detector.evidence import EvidenceStore
        from detector.pipeline import Pipeline

        privacy = self.site.privacy
        self.source = open_source(self.site, self.cam, self.settings.source.analysis_fps, self.stop)
        self.pipeline = Pipeline(self.settings, self.models.detector(self.settings.detector))
        if privacy.snapshots or privacy.sample_every:
            self._redactor = self.models.redactor(privacy)
        self._evidence = EvidenceStore(privacy.evidence_dir, privacy.retention_days, privacy.purge_interval_s)
        self._open_outbox()

    def _open_outbox(self) -> None:
        from detector.outbox import Outbox, Sender, head_file_for
        from detector.signer import EventSigner

        key = _load_or_make_key(self.site.outbox.key_dir, self.cam.name)
        signer = EventSigner(key, self.site.site, self.cam.name)
        # The chain head is also kept beside the key: an outbox that went backwards or vanished
        # is refused here (ChainBehind, a UserError) instead of starting a chain the backend refuses.
        head = head_file_for(Path(self.site.outbox.key_dir) / f"{self.cam.name}.key")
        self.outbox = Outbox(Path(self.site.outbox.dir) / f"{self.cam.name}.db", signer, head)
        self.outbox.prune(self.site.outbox.prune_after_days * 86400)
        sinks = build_sinks(self.site, self.cam.name)
        if sinks:
            sink = _AllSinks(sinks)
            d = self.site.delivery
            self.sender = Sender(
                self.outbox,
                sink,
                batch_size=d.batch_size,
                backoff_initial_s=d.backoff_initial_s,
                backoff_max_s=d.backoff_max_s,
            )
            self._sender_thread = threading.Thread(target=self.sender.run, name=f"sender-{self.cam.name}", daemon=True)
            self._sender_thread.start()

    def _close_outbox(self, flush_s: float = 2.0) -> None:
        """Stop the sender and try, briefly, to deliver what is pending (the outbox keeps the rest)."""
        if self.sender is not None:
            self.sender.stop()
            if self._sender_thread is not None:
                self._sender_thread.join(timeout=flush_s)
            deadline = time.monotonic() + flush_s
            try:
                while time.monotonic() < deadline and self.outbox.counts()[1] and self.sender.run_once():
                    pass
            except Exception as e:  # a flush failure must not hide the shutdown
                log.warning("camera %r: final flush failed: %s", self.cam.name, e)
            self.sender.sink.close()
        if self.outbox is not None:
            self._refresh_outbox_stats()
            self.outbox.close()
            self.outbox = None

    def _refresh_outbox_stats(self) -> None:
        try:
            self.stats.outbox_depth = self.outbox.counts()[1]
        except Exception:  # sqlite busy during a sender batch: keep the last value
            pass
        if self.sender is not None:
            self.stats.delivered = self._base.delivered + self.sender.delivered_total
            self.stats.delivery_failures = self._base.delivery_failures + self.sender.sink.failures
            b = self.sender.blocked
            self.stats.delivery_blocked = f"{b.reason} at seq {b.seq}: {b.detail}" if b else None

    def close(self, state: CameraState | None = None) -> None:
        """Stop the source, flush the outbox; the final state is the source's unless given."""
        self._closed.set()
        if self.source is not None:
            self.source.close()
        self.sync_stats()
        self._close_outbox()
        if state is not None:
            self.stats.state = state
        elif self.source is not None and self.source.state == CameraState.FINISHED:
            self.stats.state = CameraState.FINISHED
        else:
            self.stats.state = CameraState.STOPPED

    # -- per frame -----------------------------------------------------------------------
    def analyse(self, frame: Frame) -> None:
        """One frame through the pipeline; acts are signed into the outbox with their evidence."""
        from detector.privacy import Seen

        cpu0 = time.thread_time()
        st, privacy = self.stats, self.site.privacy
        result = self.pipeline.process(frame)
        st.frames_analysed += 1
        st.last_frame_wall = time.time()
        st.video_time_s = frame.time_s
        if result.detector_ran:  # frames the motion gate skipped have no latency
            st.detector_s.observe(result.detector_ms / 1000)
        sample = privacy.sample_every and st.frames_analysed % privacy.sample_every == 0
        jpeg = None
        if sample or (result.acts and privacy.snapshots):  # either implies a redactor
            # One face search, blur and encode per frame, shared by the sample and every act.
            jpeg = self._redactor.snapshot(frame.image, Seen.of(result, self.pipeline))
            self._evidence.put(jpeg)
            st.snapshots += 1
        for act in result.acts:
            self._emit(act, jpeg if privacy.snapshots else None, frame)
        if not self._view_sent and self._redactor is not None and self.site.delivery.url:
            self._send_view(frame, self._redactor.snapshot(frame.image, Seen.of(result, self.pipeline)))
        self._evidence.maybe_purge()
        self._analysis_cpu_s += time.thread_time() - cpu0

    def _send_view(self, frame: Frame, jpeg: bytes) -> None:
        """Once per start: the camera's reference frame (blurred like any snapshot) and its zones,
        signed with the camera's key, so the backend's dashboard can draw the zones over it. Sent
        from a thread: the frame loop never waits on the network."""
        import hashlib
        from datetime import UTC, datetime

        from detector.protocol.views import make_view
        from detector.sinks.http import HttpSink

        self._view_sent = True
        h, w = frame.image.shape[:2]
        zones = {z.id: [tuple(p) for p in z.polygon] for z in self.cam.zones} or {
            self.cam.name: [(0, 0), (w, 0), (w, h), (0, h)]  # no zones: one, named after the camera
        }
        view = make_view(
            self.outbox.signer.key,
            self.site.site,
            self.cam.name,
            hashlib.sha256(jpeg).hexdigest(),
            w,
            h,
            zones,
            datetime.now(UTC),
        )

        def send() -> None:
            sink = HttpSink(self.site.delivery.url)
            try:
                for attempt in range(5):
                    if sink.send_view(view, jpeg) or self._closed.wait(min(60, 2**attempt)):
                        return
            finally:
                sink.close()

        threading.Thread(target=send, name=f"view-{self.cam.name}", daemon=True).start()

    def _emit(self, act: Act, jpeg: bytes | None, frame: Frame) -> None:
        """Sign and queue one act; `jpeg` is its blurred snapshot, already in the evidence store."""
        if jpeg is not None:
            act = dataclasses.replace(act, snapshot=jpeg)
        event = self.outbox.add(act)
        if frame.received is not None:
            self.stats.act_latency_s.observe(time.time() - frame.received)
        if act.is_act:  # litter found or vanished is kept in the ledger but is nobody's act
            self.stats.acts += 1
        log.info(
            "camera %r: %s in zone %s (%s) -> event seq %d",
            self.cam.name,
            act.kind,
            act.zone,
            act.object_class,
            event["seq"],
        )
        if self.on_act is not None:
            self.on_act(act, event)

    def sync_stats(self) -> WorkerStats:
        """Refresh the counters kept by the source and the outbox; a copy to send."""
        st, src, base = self.stats, self.source, self._base
        if src is not None:
            st.frames_read = base.frames_read + src.frames_read
            st.frames_dropped = base.frames_dropped + src.frames_dropped
            st.frames_passed_over = base.frames_passed_over + src.frames_passed_over
            st.reconnects = base.reconnects + src.reconnects
            st.connects = base.connects + src.connects
            st.cpu_s = base.cpu_s + src.cpu_s + self._analysis_cpu_s
            st.last_error = src.last_error or st.last_error
            st.state = CameraState(src.state)
        if self.outbox is not None:
            self._refresh_outbox_stats()
        return st.copy()

    # -- a camera alone ----------------------------------------------------------------------
    def run(self) -> WorkerStats:
        """The whole life of one camera in this thread, until its file ends or `stop` is set."""
        done = threading.Event()

        def report_loop() -> None:  # a camera that delivers no frames must still show its state
            while not done.wait(self.report_interval_s):
                self._report()

        self.open()
        reporter = threading.Thread(target=report_loop, name="report", daemon=True)
        reporter.start()
        try:
            for frame in self.source:
                self.analyse(frame)
        finally:
            done.set()
            reporter.join(2)
            self.close()
            self._report()
        return self.stats

    def _report(self) -> None:
        snapshot = self.sync_stats()
        if self.report is not None:
            self.report(snapshot)


@dataclass
class _Camera:
    """A camera's place in a group: its current worker and what to do when it fails."""

    cfg: SiteCamera
    stats: WorkerStats
    worker: CameraWorker | None = None
    done: bool = False
    failure: BaseException | None = None
    next_start: float = 0.0
    backoff: float = 0.0
    started: float = 0.0


class WorkerGroup:
    """Several cameras in one process: a reader thread per camera and `threads` analysis
    threads that take waiting frames oldest first (every camera gets its turn)."""

    def __init__(
        self,
        site: SiteConfig,
        cameras: list[SiteCamera],
        stop: threading.Event | None = None,
        report: Callable[[list[WorkerStats]], None] | None = None,
        threads: int | None = None,
        report_interval_s: float = 1.0,
    ) -> None:
        self.site = site
        self.stop = stop or threading.Event()
        self.report = report
        self.report_interval_s = report_interval_s
        self.threads = threads or site.supervisor.analysis_threads or _cpu_count()
        self.models = SharedModels()
        sup = site.supervisor
        self.cams = {c.name: _Camera(c, WorkerStats(c.name), backoff=sup.restart_backoff_initial_s) for c in cameras}
        self._cv = threading.Condition()
        self._waiting: dict[str, float] = {}  # camera -> monotonic time its oldest unserved frame came
        self._busy: set[str] = set()

    # -- scheduling ------------------------------------------------------------------------
    def _ready(self, name: str) -> None:
        with self._cv:
            if name not in self._waiting:
                self._waiting[name] = time.monotonic()
                self._cv.notify()

    def _analysis_loop(self) -> None:
        while not self.stop.is_set():
            with self._cv:
                free = [(t, n) for n, t in self._waiting.items() if n not in self._busy]
                if not free:
                    self._cv.wait(0.5)
                    continue
                _, name = min(free)
                del self._waiting[name]
                self._busy.add(name)
            cam = self.cams[name]
            worker = cam.worker
            try:
                frame = worker.source.take() if worker is not None and cam.failure is None else None
                if frame is not None:
                    worker.analyse(frame)
            except BaseException as e:  # the manager restarts or stops this camera
                cam.failure = e
            finally:
                with self._cv:
                    self._busy.discard(name)
                    if worker is not None and worker.source.pending and name not in self._waiting:
                        self._waiting[name] = time.monotonic()
                    self._cv.notify_all()

    # -- camera life -----------------------------------------------------------------------
    def _start(self, cam: _Camera) -> None:
        cam.failure = None
        cam.started = time.monotonic()
        worker = CameraWorker(self.site, cam.cfg, self.stop, models=self.models, stats=cam.stats)
        try:
            worker.open()
        except BaseException:
            worker.close(CameraState.BACKOFF)
            raise
        cam.worker = worker
        cam.stats.state = CameraState.RUNNING
        worker.source.start(lambda name=cam.cfg.name: self._ready(name))

    def _retire(self, cam: _Camera, state: CameraState) -> None:
        """Close the camera's worker once no analysis thread is inside it."""
        with self._cv:
            while cam.cfg.name in self._busy:
                self._cv.wait(0.1)
            self._waiting.pop(cam.cfg.name, None)
        if cam.worker is not None:
            cam.worker.close(state)
            cam.worker = None
        cam.stats.state = state

    def _fail(self, cam: _Camera, error: BaseException, now: float) -> None:
        name = cam.cfg.name
        if isinstance(error, UserError):
            log.error("%s", error)
            cam.stats.last_error = str(error)
            self._retire(cam, CameraState.ERROR)
            cam.done = True
            return
        sup = self.site.supervisor
        log.error("camera %r: unexpected error, restarting it in %.1f s", name, cam.backoff, exc_info=error)
        cam.stats.last_error = f"{type(error).__name__}: {error}"
        self._retire(cam, CameraState.BACKOFF)
        if now - cam.started >= sup.stable_after_s:
            cam.backoff = sup.restart_backoff_initial_s
        cam.next_start = now + cam.backoff
        cam.backoff = min(cam.backoff * 2, sup.restart_backoff_max_s)
        cam.stats.restarts += 1

    def _tend(self, cam: _Camera, now: float) -> None:
        """One look at a camera by the manager thread."""
        if cam.done:
            return
        if cam.worker is None:
            if now >= cam.next_start:
                try:
                    self._start(cam)
                except BaseException as e:
                    self._fail(cam, e, now)
            return
        source = cam.worker.source
        error = cam.failure or source.error
        if error is not None:
            self._fail(cam, error, now)
        elif source.ended and cam.cfg.name not in self._busy:
            log.info("camera %r: file finished", cam.cfg.name)
            self._retire(cam, CameraState.FINISHED)
            cam.done = True
        else:
            source.watch()

    def _send_report(self) -> None:
        if self.report is None:
            return
        out = []
        for cam in self.cams.values():
            out.append(cam.worker.sync_stats() if cam.worker is not None else cam.stats.copy())
        self.report(out)

    def run(self) -> int:
        """Run every camera until each has finished or failed for good, or `stop`; the exit code
        (2: every camera stopped on a configuration error)."""
        import sys

        import cv2

        # Parallelism comes from the cameras: OpenCV's own thread pool would only contend with them.
        cv2.setNumThreads(1)
        # A reader thread needs the GIL for a few microseconds per packet, between FFmpeg calls that
        # release it; behind an analysis thread in Python code it would wait the whole switch
        # interval (5 ms by default) each time. 1 ms keeps decoding at the camera's pace.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        pool = [
            threading.Thread(target=self._analysis_loop, name=f"analysis-{i}", daemon=True) for i in range(self.threads)
        ]
        for t in pool:
            t.start()
        last_report = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                for cam in self.cams.values():
                    self._tend(cam, now)
                if now - last_report >= self.report_interval_s:
                    last_report = now
                    self._send_report()
                if all(c.done for c in self.cams.values()):
                    break
                self.stop.wait(0.1)
        finally:
            self.stop.set()
            for cam in self.cams.values():
                if cam.worker is not None:
                    self._retire(cam, CameraState.STOPPED)
            for t in pool:
                t.join(2)
            self._send_report()
        errors = [c for c in self.cams.values() if c.stats.state == CameraState.ERROR]
        return 2 if errors and len(errors) == len(self.cams) else 0


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_main(site: SiteConfig, camera_names: list[str], conn) -> None:
    """Child-process entry point (multiprocessing spawn): one group of cameras."""
    label = camera_names[0] if len(camera_names) == 1 else f"{len(camera_names)} cameras"
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{label}] %(levelname)s %(message)s")
    cams = [c for c in site.cameras if c.name in set(camera_names)]
    local_stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor decides
    # SIGTERM is taken by a thread with sigwait, not by a handler: a handler calling Event.set()
    # while the main thread waits on that same Event deadlocks. Block it before any thread starts.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=lambda: (signal.sigwait({signal.SIGTERM}), local_stop.set()), daemon=True).start()
    parent = os.getppid()

    def orphan_watch() -> None:  # the supervisor died without stopping us: stop, do not run headless
        while not local_stop.wait(1.0):
            if os.getppid() != parent:
                log.warning("supervisor is gone; stopping")
                local_stop.set()

    threading.Thread(target=orphan_watch, daemon=True).start()

    send_lock = threading.Lock()

    def report(stats: list[WorkerStats]) -> None:
        try:
            with send_lock:
                conn.send(("stats", stats))
        except (OSError, ValueError):  # the supervisor is gone: the orphan watch stops us
            pass

    code = WorkerGroup(site, cams, local_stop, report).run()
    if code:
        raise SystemExit(code)
