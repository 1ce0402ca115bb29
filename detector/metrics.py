"""Per-site Prometheus metrics and health, served by the supervisor.

Workers send each camera's cumulative counters (`WorkerStats`, as itself) once a second over
their own pipe; the supervisor keeps the newest per camera and a custom collector turns them
into metrics at scrape time. This is simpler and sturdier than prometheus multiprocess mode
(no shared directory of mmap files to clean after a crash): when a worker dies, its last
counters are folded into a per-camera carry so that counters never go backwards.

The histograms a worker keeps are made here (`detector_histogram`, `act_latency_histogram`):
the metric owns its buckets, and a histogram carries them with its counts.

Overload is judged over the last `overload_window_s`: a camera that had frames due for analysis
replaced by newer ones (dropped) in that window is overloaded; the site says so in /healthz
(status "overloaded", HTTP 200: it still watches every camera, at a lower rate) and in
`detector_analysis_drop_ratio`. A stale camera makes the site "degraded" (HTTP 503).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from detector.values import CameraState

if TYPE_CHECKING:
    from detector.worker import WorkerStats


@dataclass
class Histogram:
    """Counts per bucket (upper bounds, then +Inf) and the sum of what was observed."""

    bounds: tuple[float, ...]
    counts: list[int]
    total: float = 0.0

    @classmethod
    def of(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(tuple(bounds), [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        i = next((k for k, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        self.counts[i] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)

    def __add__(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:  # an older worker with other buckets: start over
            return other.copy()
        return Histogram(
            self.bounds, [a + b for a, b in zip(self.counts, other.counts, strict=True)], self.total + other.total
        )

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs as Prometheus writes them."""
        out, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
        return out


# Detector run on one frame: 14 ms is YOLOX-nano's median on one core; the tail shows contention.
DETECTOR_SECONDS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
# Act latency (frame arrival to event committed in the outbox): fine below the 2 s that matters.
ACT_LATENCY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def detector_histogram() -> Histogram:
    return Histogram.of(DETECTOR_SECONDS)


def act_latency_histogram() -> Histogram:
    return Histogram.of(ACT_LATENCY_SECONDS)


_COUNTERS = {
    "frames_read": "frames decoded from the camera",
    "frames_analysed": "frames run through the pipeline",
    "frames_dropped": "frames due for analysis but not analysed: pushed out or passed over (analysis too slow)",
    "frames_passed_over": "frames not decoded at all while the analysis was behind (until the next keyframe)",
    "reconnects": "times the camera stream was lost and reopened",
    "acts": "littering and clean-up acts recognised",
    "snapshots": "blurred evidence snapshots stored",
    "delivered": "events acknowledged by the sinks",
    "delivery_failures": "failed delivery attempts",
}
_HISTOGRAMS = ("detector_s", "act_latency_s")
_TOTALS = (*_COUNTERS, "restarts", "connects", "cpu_s")  # summed over a camera's worker incarnations
_DONE = (CameraState.FINISHED, CameraState.STOPPED, CameraState.ERROR)


@dataclass
class Supervised:
    """What the supervisor itself knows of a camera (its worker process)."""

    state: CameraState = CameraState.STARTING
    restarts: int = 0  # worker processes restarted
    pid: int | None = None
    since: float = field(default_factory=time.time)  # staleness clock of a camera with no frame yet
    last_exit: str | None = None


def fold(carry: WorkerStats, last: WorkerStats) -> WorkerStats:
    """The counters of two incarnations of one camera added up (gauges: the later one's)."""
    out = dataclasses.replace(last)
    for key in _TOTALS:
        setattr(out, key, getattr(carry, key) + getattr(last, key))
    for key in _HISTOGRAMS:
        setattr(out, key, getattr(carry, key) + getattr(last, key))
    out.last_frame_wall = last.last_frame_wall or carry.last_frame_wall
    out.video_time_s = last.video_time_s if last.video_time_s is not None else carry.video_time_s
    return out


class SiteMetrics:
    """What the supervisor knows about every camera; thread-safe."""

    def __init__(
        self, site: str, cameras: list[str], stale_after_s: float = 30.0, overload_window_s: float = 30.0
    ) -> None:
        from detector.worker import WorkerStats

        self.site = site
        self.stale_after_s = stale_after_s
        self.overload_window_s = overload_window_s
        self._lock = threading.Lock()
        self.latest: dict[str, WorkerStats | None] = {c: None for c in cameras}
        self.carry: dict[str, WorkerStats] = {c: WorkerStats(c) for c in cameras}
        self.supervised: dict[str, Supervised] = {c: Supervised() for c in cameras}
        self._recent: dict[str, deque[tuple[float, int, int]]] = {c: deque() for c in cameras}

    # -- updates -------------------------------------------------------------------------
    def update(self, stats: WorkerStats, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            if stats.camera not in self.latest:
                return
            self.latest[stats.camera] = stats
            total = fold(self.carry[stats.camera], stats)
            recent = self._recent[stats.camera]
            recent.append((now, total.frames_analysed, total.frames_dropped))
            while len(recent) > 2 and now - recent[1][0] >= self.overload_window_s:
                recent.popleft()

    def retire(self, camera: str) -> None:
        """A worker incarnation ended: fold its counters into the carry (the next starts at 0)."""
        with self._lock:
            last = self.latest.get(camera)
            if last is not None:
                self.carry[camera] = fold(self.carry[camera], last)
            self.latest[camera] = None

    def set_supervised(self, camera: str, **fields) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self.supervised[camera], key, value)

    def last_state(self, camera: str) -> CameraState | None:
        """The state its worker last reported (None: no report from the current worker)."""
        with self._lock:
            last = self.latest.get(camera)
        return None if last is None else CameraState(last.state)

    # -- views ---------------------------------------------------------------------------
    def totals(self, camera: str) -> WorkerStats:
        with self._lock:
            last = self.latest[camera]
            return fold(self.carry[camera], last) if last is not None else dataclasses.replace(self.carry[camera])

    def camera_view(self, camera: str, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        total = self.totals(camera)
        with self._lock:
            last, sup = self.latest[camera], dataclasses.replace(self.supervised[camera])
            recent = list(self._recent[camera])
        view = {k: int(getattr(total, k)) for k in _COUNTERS}
        # A worker's own state (running/reconnecting/...) wins while it runs; the supervisor's
        # (backoff/stopped) when it does not.
        state = sup.state
        if state in (CameraState.STARTING, CameraState.RUNNING) and last is not None:
            state = CameraState(last.state)
        last_frame = total.last_frame_wall
        age = None if last_frame is None else now - last_frame
        reference = last_frame if last_frame is not None else sup.since
        analysed_fps = drop_ratio = None
        if len(recent) >= 2 and recent[-1][0] > recent[0][0]:
            (t0, a0, d0), (t1, a1, d1) = recent[0], recent[-1]
            analysed_fps = round((a1 - a0) / (t1 - t0), 2)
            drop_ratio = round((d1 - d0) / max(1, (a1 - a0) + (d1 - d0)), 3)
        view.update(
            state=state,
            restarts=sup.restarts + total.restarts,
            pid=sup.pid,
            last_frame_wall=last_frame,
            last_frame_age_s=None if age is None else round(age, 1),
            stale=state not in (CameraState.FINISHED, CameraState.STOPPED) and now - reference > self.stale_after_s,
            analysed_fps=analysed_fps,
            drop_ratio=drop_ratio,
            overloaded=bool(drop_ratio) and state not in _DONE,
            video_time_s=None if total.video_time_s is None else round(total.video_time_s, 3),
            outbox_depth=total.outbox_depth,
            cpu_s=total.cpu_s,
            detector_s=total.detector_s,
            act_latency_s=total.act_latency_s,
            last_error=(last.last_error if last is not None else None) or total.last_error or sup.last_exit,
            delivery_blocked=total.delivery_blocked,
        )
        return view

    def health(self) -> dict:
        now = time.time()
        cams = {c: self.camera_view(c, now) for c in self.latest}
        stale = sorted(c for c, v in cams.items() if v["stale"])
        overloaded = sorted(c for c, v in cams.items() if v["overloaded"])
        blocked = sorted(c for c, v in cams.items() if v["delivery_blocked"])
        keys = (
            "state",
            "pid",
            "last_frame_age_s",
            "stale",
            "restarts",
            "reconnects",
            "frames_analysed",
            "frames_dropped",
            "analysed_fps",
            "drop_ratio",
            "video_time_s",
            "outbox_depth",
            "delivery_blocked",
            "last_error",
        )
        return {
            "status": "degraded" if stale or blocked else "overloaded" if overloaded else "ok",
            "site": self.site,
            "stale": stale,
            "overloaded": overloaded,
            "blocked": blocked,  # cameras whose chain the backend refused for good (reason per camera)
            "cameras": {c: {k: v[k] for k in keys} for c, v in cams.items()},
        }

    def table(self) -> str:
        """The camera state table logged by the supervisor."""
        now = time.time()
        rows = [
            f"{'camera':16} {'state':12} {'last frame':>10} {'analysed':>9} {'fps':>5} {'dropped':>8} "
            f"{'reconn':>6} {'restarts':>8} {'acts':>5} {'outbox':>6}"
        ]
        for c in self.latest:
            v = self.camera_view(c, now)
            age = "-" if v["last_frame_age_s"] is None else f"{v['last_frame_age_s']:.1f}s ago"
            fps = "-" if v["analysed_fps"] is None else f"{v['analysed_fps']:.1f}"
            rows.append(
                f"{c:16} {v['state'] + ('!' if v['stale'] else ''):12} {age:>10} {v['frames_analysed']:>9} {fps:>5} "
                f"{v['frames_dropped']:>8} {v['reconnects']:>6} {v['restarts']:>8} {v['acts']:>5} "
                f"{v['outbox_depth']:>6}"
            )
        return "\n".join(rows)

    # -- prometheus collector ----------------------------------------------------------------
    def collect(self):
        now = time.time()
        views = {c: self.camera_view(c, now) for c in self.latest}
        labels = ["site", "camera"]
        for key, doc in _COUNTERS.items():
            fam = CounterMetricFamily(f"detector_{key}", doc, labels=labels)
            for c, v in views.items():
                fam.add_metric([self.site, c], v[key])
            yield fam
        restarts = CounterMetricFamily(
            "detector_worker_restarts", "camera workers restarted after a crash", labels=labels
        )
        cpu = CounterMetricFamily(
            "detector_camera_cpu_seconds", "CPU time of the camera's decoding and analysis", labels=labels
        )
        depth = GaugeMetricFamily("detector_outbox_depth", "events in the outbox not yet delivered", labels=labels)
        last = GaugeMetricFamily(
            "detector_last_frame_timestamp_seconds", "unix time of the last analysed frame", labels=labels
        )
        stale = GaugeMetricFamily(
            "detector_camera_stale", "1 when a camera has had no frame for too long", labels=labels
        )
        blocked = GaugeMetricFamily(
            "detector_delivery_blocked",
            "1 when the backend refused the camera's chain for good (see /healthz for the reason)",
            labels=labels,
        )
        drops = GaugeMetricFamily(
            "detector_analysis_drop_ratio",
            f"share of the frames due for analysis dropped over the last {self.overload_window_s:g} s (overload)",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "detector_camera_state", "1 for the camera's current state", labels=[*labels, "state"]
        )
        hist = HistogramMetricFamily(
            "detector_inference_seconds", "object detector latency per analysed frame", labels=labels
        )
        act_hist = HistogramMetricFamily(
            "detector_act_latency_seconds",
            "time from the arrival of the frame an act was recognised on to its event committed in the outbox",
            labels=labels,
        )
        for c, v in views.items():
            restarts.add_metric([self.site, c], v["restarts"])
            cpu.add_metric([self.site, c], v["cpu_s"])
            depth.add_metric([self.site, c], v["outbox_depth"])
            if v["last_frame_wall"] is not None:
                last.add_metric([self.site, c], v["last_frame_wall"])
            stale.add_metric([self.site, c], 1 if v["stale"] else 0)
            blocked.add_metric([self.site, c], 1 if v["delivery_blocked"] else 0)
            drops.add_metric([self.site, c], v["drop_ratio"] or 0.0)
            for s in CameraState:
                state.add_metric([self.site, c, s.value], 1 if v["state"] == s else 0)
            hist.add_metric([self.site, c], v["detector_s"].cumulative(), v["detector_s"].total)
            act_hist.add_metric([self.site, c], v["act_latency_s"].cumulative(), v["act_latency_s"].total)
        overloaded = GaugeMetricFamily(
            "detector_site_overloaded", "1 when some camera dropped frames due for analysis lately", labels=["site"]
        )
        overloaded.add_metric([self.site], 1 if any(v["overloaded"] for v in views.values()) else 0)
        yield from (restarts, cpu, depth, last, stale, blocked, drops, state, hist, act_hist, overloaded)


class _Handler(BaseHTTPRequestHandler):
    metrics: SiteMetrics
    registry: CollectorRegistry

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype, code = generate_latest(self.registry), CONTENT_TYPE_LATEST, 200
        elif path in ("/healthz", "/health"):
            health = self.metrics.health()
            body, ctype = json.dumps(health).encode(), "application/json"
            code = 503 if health["status"] == "degraded" else 200
        else:
            body, ctype, code = b"not found: try /metrics or /healthz\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # scrapes every few seconds would flood stderr
        pass


def serve(metrics: SiteMetrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz in a daemon thread; `server.server_address[1]` is the port.

    prometheus_client's own server serves only /metrics; a health route needs a handler anyway.
    """
    registry = CollectorRegistry()
    registry.register(metrics)
    handler = type("Handler", (_Handler,), {"metrics": metrics, "registry": registry})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
