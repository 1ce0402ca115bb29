"""One camera's worker: source -> pipeline -> blurred evidence -> signed event in the outbox -> sinks.

`CameraWorker.run()` is the whole life of one camera; `worker_main` runs it as a child
process of the supervisor and reports cumulative counters on its own pipe once a second (the
supervisor turns them into Prometheus metrics and health). Track ids and unblurred
frames never leave this process: only acts, blurred JPEGs and signed events do.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from detector.config import SiteCamera, SiteConfig
from detector.protocol.errors import UserError
from detector.values import Act, Frame

log = logging.getLogger(__name__)

# Upper bounds (ms) of the detector latency histogram; shared with detector.metrics.
LATENCY_BUCKETS_MS = (5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000)


@dataclasses.dataclass
class WorkerStats:
    """Cumulative counters of one worker incarnation (sent to the supervisor as a dict)."""

    camera: str
    state: str = "starting"  # starting | running | reconnecting | backoff | finished | stopped | error
    frames_read: int = 0
    frames_analysed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    connects: int = 0
    acts: int = 0
    snapshots: int = 0
    outbox_depth: int = 0
    delivered: int = 0
    delivery_failures: int = 0
    latency_counts: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_sum_ms: float = 0.0
    last_frame_wall: float | None = None  # time.time() of the last analysed frame
    last_error: str | None = None

    def observe_latency(self, ms: float) -> None:
        i = int(np.searchsorted(LATENCY_BUCKETS_MS, ms))  # first bucket with bound >= ms
        self.latency_counts[i] += 1
        self.latency_sum_ms += ms


class FileCamera:
    """A file played like a camera: paced to video time (optional), looped (optional).

    Video time keeps increasing across loops, so the tracker and the act recogniser see
    one long stream rather than time jumping back.
    """

    def __init__(self, path: Path, analysis_fps: float, loop: bool, realtime: bool, stop: threading.Event) -> None:
        from detector.sources import FileSource

        self.source = FileSource(path, analysis_fps)
        self.loop, self.realtime, self.stop = loop, realtime, stop
        self.state = "running"
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.connects = 1

    def __iter__(self) -> Iterator[Frame]:
        offset_s, offset_i = 0.0, 0
        start = time.monotonic()
        while not self.stop.is_set():
            last = None
            for frame in self.source:
                if self.stop.is_set():
                    return
                t = offset_s + frame.time_s
                if self.realtime:
                    delay = start + t - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
                self.frames_read = offset_i + frame.index + 1
                last = Frame(index=offset_i + frame.index, time_s=round(t, 6), image=frame.image)
                yield last
            if not self.loop or last is None:
                self.state = "finished"
                return
            offset_s = last.time_s + 1.0 / self.source.info.nominal_fps
            offset_i = last.index + 1


def _load_or_make_key(key_dir: Path, camera: str):
    from detector.protocol import keys

    path = Path(key_dir) / f"{camera}.key"
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
        return DeliveryResult(done, "; ".join(errors) if errors else None, any(r.permanent for r in results))

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


class CameraWorker:
    def __init__(
        self,
        site: SiteConfig,
        camera: SiteCamera,
        stop: threading.Event | None = None,
        report: Callable[[WorkerStats], None] | None = None,
        on_act: Callable[[Act, dict], None] | None = None,
        report_interval_s: float = 1.0,
    ) -> None:
        self.site, self.cam = site, camera
        self.stop = stop or threading.Event()
        self.report = report
        self.on_act = on_act
        self.report_interval_s = report_interval_s
        self.stats = WorkerStats(camera.name)
        self.settings = site.camera_settings(camera)
        self.source = None
        self.outbox = None
        self.sender = None
        self._sender_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._view_sent = False  # the reference frame and zones go to the backend once per start

    # -- parts ---------------------------------------------------------------------------
    def _open_source(self):
        fps = self.settings.source.analysis_fps
        if self.cam.is_rtsp:
            from detector.rtsp import RtspSource

            return RtspSource(self.cam.url, fps, self.site.rtsp, self.stop)
        from detector.samples import resolve_clip

        try:
            path = resolve_clip(self.cam.url)
            return FileCamera(path, fps, self.cam.loop, self.cam.realtime, self.stop)
        except UserError as e:
            raise UserError(f"camera {self.cam.name!r}: url: {e}") from None

    def _open_outbox(self) -> None:
        from detector.outbox import Outbox, Sender
        from detector.signer import EventSigner

        key = _load_or_make_key(self.site.outbox.key_dir, self.cam.name)
        signer = EventSigner(key, self.site.site, self.cam.name)
        self.outbox = Outbox(Path(self.site.outbox.dir) / f"{self.cam.name}.db", signer)
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
            self._sender_thread = threading.Thread(target=self.sender.run, name="sender", daemon=True)
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

    def _refresh_outbox_stats(self) -> None:
        try:
            self.stats.outbox_depth = self.outbox.counts()[1]
        except Exception:  # sqlite busy during a sender batch: keep the last value
            pass
        if self.sender is not None:
            self.stats.delivered = self.sender.delivered_total
            self.stats.delivery_failures = self.sender.sink.failures

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> WorkerStats:
        from detector.evidence import EvidenceStore
        from detector.pipeline import Pipeline, person_boxes

        st = self.stats
        pipeline = Pipeline(self.settings)
        redactor = None
        privacy = self.site.privacy
        if privacy.snapshots or privacy.sample_every:
            from detector.privacy import Redactor

            redactor = Redactor(privacy)
        evidence = EvidenceStore(privacy.evidence_dir, privacy.retention_days, privacy.purge_interval_s)
        self._open_outbox()
        self.source = self._open_source()
        # Report from a thread: a camera that delivers no frames must still show its state.
        reporter = threading.Thread(target=self._report_loop, name="report", daemon=True)
        reporter.start()
        try:
            for frame in self.source:
                result = pipeline.process(frame)
                st.frames_analysed += 1
                st.last_frame_wall = time.time()
                if result.detector_ran:  # frames the motion gate skipped have no latency
                    st.observe_latency(result.detector_ms)
                sample = privacy.sample_every and st.frames_analysed % privacy.sample_every == 0
                jpeg = None
                if sample or (result.acts and privacy.snapshots):  # either implies a redactor
                    # One face search, blur and encode per frame, shared by the sample and every act.
                    jpeg = redactor.snapshot(frame.image, person_boxes(result, pipeline.class_names))
                    evidence.put(jpeg)
                    st.snapshots += 1
                for act in result.acts:
                    self._emit(act, jpeg if privacy.snapshots else None)
                if not self._view_sent and redactor is not None and self.site.delivery.url:
                    self._send_view(frame, redactor.snapshot(frame.image, person_boxes(result, pipeline.class_names)))
                evidence.maybe_purge()
        finally:
            self._done.set()
            reporter.join(2)
            st.state = "finished" if getattr(self.source, "state", "") == "finished" else "stopped"
            self._close_outbox()
            self._sync_stats(state=st.state)
        return st

    def _send_view(self, frame, jpeg: bytes) -> None:
        """Once per start: the camera's reference frame (blurred like any snapshot) and its zones,
        signed with the camera's key, so the backend's dashboard can draw the zones over it. Sent
        from a thread: the frame loop never waits on the network."""
        import hashlib
        from datetime import UTC, datetime

        from detector.protocol.views import make_view
        from detector.sinks.http import HttpSink
        from detector.zones import WHOLE_VIEW

        self._view_sent = True
        h, w = frame.image.shape[:2]
        zones = {z.id: [tuple(p) for p in z.polygon] for z in self.cam.zones} or {
            WHOLE_VIEW: [(0, 0), (w, 0), (w, h), (0, h)]
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
                    if sink.send_view(view, jpeg) or self._done.wait(min(60, 2**attempt)):
                        return
            finally:
                sink.close()

        threading.Thread(target=send, name="view", daemon=True).start()

    def _report_loop(self) -> None:
        while not self._done.wait(self.report_interval_s):
            self._sync_stats()

    def _emit(self, act: Act, jpeg: bytes | None) -> None:
        """Sign and queue one act; `jpeg` is its blurred snapshot, already in the evidence store."""
        if jpeg is not None:
            act = dataclasses.replace(act, snapshot=jpeg)
        event = self.outbox.add(act)
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

    def _sync_stats(self, state: str | None = None) -> None:
        st, src = self.stats, self.source
        if src is not None:
            st.frames_read = src.frames_read
            st.frames_dropped = src.frames_dropped
            st.reconnects = src.reconnects
            st.connects = src.connects
            st.last_error = getattr(src, "last_error", None)
            st.state = state or src.state
        if self.outbox is not None:
            self._refresh_outbox_stats()
        if self.report is not None:
            self.report(dataclasses.replace(st, latency_counts=list(st.latency_counts)))


def worker_main(site: SiteConfig, camera_name: str, conn) -> None:
    """Child-process entry point (multiprocessing spawn/forkserver)."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {camera_name} %(levelname)s %(message)s")
    cam = next(c for c in site.cameras if c.name == camera_name)
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

    def report(stats: WorkerStats) -> None:
        try:
            with send_lock:
                conn.send(("stats", camera_name, dataclasses.asdict(stats)))
        except (OSError, ValueError):  # the supervisor is gone: the orphan watch stops us
            pass

    worker = CameraWorker(site, cam, local_stop, report)
    try:
        worker.run()
    except UserError as e:
        report(dataclasses.replace(worker.stats, state="error", last_error=str(e)))
        log.error("%s", e)
        raise SystemExit(2) from None
