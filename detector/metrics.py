"""Per-site Prometheus metrics and health, served by the supervisor.

Workers report their cumulative counters once a second, each over its own pipe; the
supervisor keeps the newest report per camera and a custom collector turns them into
metrics at scrape time. This is simpler and sturdier than prometheus multiprocess mode
(no shared directory of mmap files to clean after a crash): when a worker dies, its last
counters are folded into a per-camera carry so that counters never go backwards.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from detector.worker import LATENCY_BUCKETS_MS

_COUNTERS = {
    "frames_read": "frames decoded from the camera",
    "frames_analysed": "frames run through the pipeline",
    "frames_dropped": "frames due for analysis but replaced by a newer one (pipeline too slow)",
    "reconnects": "times the camera stream was lost and reopened",
    "acts": "littering and clean-up acts recognised",
    "snapshots": "blurred evidence snapshots stored",
    "delivered": "events acknowledged by the sinks",
    "delivery_failures": "failed delivery attempts",
}
CAMERA_STATES = ("starting", "running", "connecting", "reconnecting", "backoff", "finished", "stopped", "error")


class SiteMetrics:
    """What the supervisor knows about every camera; thread-safe."""

    def __init__(self, site: str, cameras: list[str], stale_after_s: float = 30.0) -> None:
        self.site = site
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self.latest: dict[str, dict] = {c: {} for c in cameras}
        self.carry: dict[str, dict] = {c: {} for c in cameras}
        self.supervised: dict[str, dict] = {
            c: {"state": "starting", "restarts": 0, "pid": None, "since": time.time(), "last_exit": None}
            for c in cameras
        }

    # -- updates -------------------------------------------------------------------------
    def update(self, camera: str, stats: dict) -> None:
        with self._lock:
            if camera in self.latest:
                self.latest[camera] = stats

    def retire(self, camera: str) -> None:
        """A worker incarnation ended: fold its counters into the carry (the next starts at 0)."""
        with self._lock:
            last, carry = self.latest.get(camera) or {}, self.carry[camera]
            for key in _COUNTERS:
                carry[key] = carry.get(key, 0) + int(last.get(key, 0) or 0)
            counts = last.get("latency_counts") or []
            old = carry.get("latency_counts") or [0] * (len(LATENCY_BUCKETS_MS) + 1)
            carry["latency_counts"] = [a + b for a, b in zip(old, counts + [0] * (len(old) - len(counts)), strict=True)]
            carry["latency_sum_ms"] = carry.get("latency_sum_ms", 0.0) + float(last.get("latency_sum_ms", 0.0))
            carry["last_frame_wall"] = last.get("last_frame_wall") or carry.get("last_frame_wall")
            carry["outbox_depth"] = last.get("outbox_depth", carry.get("outbox_depth", 0))
            self.latest[camera] = {}

    def set_supervised(self, camera: str, **fields) -> None:
        with self._lock:
            self.supervised[camera].update(fields)

    # -- views ---------------------------------------------------------------------------
    def camera_view(self, camera: str, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        with self._lock:
            last, carry, sup = dict(self.latest[camera]), dict(self.carry[camera]), dict(self.supervised[camera])
        view = {k: int(last.get(k, 0) or 0) + int(carry.get(k, 0) or 0) for k in _COUNTERS}
        lc, cc = last.get("latency_counts") or [], carry.get("latency_counts") or []
        n = len(LATENCY_BUCKETS_MS) + 1
        view["latency_counts"] = [(lc[i] if i < len(lc) else 0) + (cc[i] if i < len(cc) else 0) for i in range(n)]
        view["latency_sum_ms"] = float(last.get("latency_sum_ms", 0.0)) + float(carry.get("latency_sum_ms", 0.0))
        view["outbox_depth"] = int(last.get("outbox_depth", carry.get("outbox_depth", 0)) or 0)
        last_frame = last.get("last_frame_wall") or carry.get("last_frame_wall")
        # A worker's own state (running/reconnecting/...) wins while it runs; the supervisor's
        # (backoff/stopped) when it does not.
        state = sup["state"]
        if state == "running" and last.get("state"):
            state = last["state"]
        age = None if last_frame is None else now - last_frame
        reference = last_frame if last_frame is not None else sup["since"]
        stale = state not in ("finished", "stopped") and now - reference > self.stale_after_s
        view.update(
            state=state,
            restarts=sup["restarts"],
            pid=sup["pid"],
            last_frame_wall=last_frame,
            last_frame_age_s=None if age is None else round(age, 1),
            stale=stale,
            last_error=last.get("last_error") or sup.get("last_exit"),
        )
        return view

    def health(self) -> dict:
        now = time.time()
        cams = {c: self.camera_view(c, now) for c in self.latest}
        stale = sorted(c for c, v in cams.items() if v["stale"])
        return {
            "status": "ok" if not stale else "degraded",
            "site": self.site,
            "stale": stale,
            "cameras": {
                c: {
                    k: v[k]
                    for k in (
                        "state",
                        "pid",
                        "last_frame_age_s",
                        "stale",
                        "restarts",
                        "reconnects",
                        "frames_analysed",
                        "outbox_depth",
                        "last_error",
                    )
                }
                for c, v in cams.items()
            },
        }

    def table(self) -> str:
        """The camera state table logged by the supervisor."""
        now = time.time()
        rows = [
            f"{'camera':16} {'state':12} {'last frame':>10} {'analysed':>9} {'dropped':>8} "
            f"{'reconn':>6} {'restarts':>8} {'acts':>5} {'outbox':>6}"
        ]
        for c in self.latest:
            v = self.camera_view(c, now)
            age = "-" if v["last_frame_age_s"] is None else f"{v['last_frame_age_s']:.1f}s ago"
            rows.append(
                f"{c:16} {v['state'] + ('!' if v['stale'] else ''):12} {age:>10} {v['frames_analysed']:>9} "
                f"{v['frames_dropped']:>8} {v['reconnects']:>6} {v['restarts']:>8} {v['acts']:>5} "
                f"{v['outbox_depth']:>6}"
            )
        return "\n".join(rows)

    # -- prometheus collector ----------------------------------------------------------------
    def collect(self):
        now = time.time()
        views = {c: self.camera_view(c, now) for c in self.latest}
        for key, doc in _COUNTERS.items():
            fam = CounterMetricFamily(f"detector_{key}", doc, labels=["site", "camera"])
            for c, v in views.items():
                fam.add_metric([self.site, c], v[key])
            yield fam
        restarts = CounterMetricFamily(
            "detector_worker_restarts", "worker processes restarted after a crash", labels=["site", "camera"]
        )
        depth = GaugeMetricFamily(
            "detector_outbox_depth", "events in the outbox not yet delivered", labels=["site", "camera"]
        )
        last = GaugeMetricFamily(
            "detector_last_frame_timestamp_seconds", "unix time of the last analysed frame", labels=["site", "camera"]
        )
        stale = GaugeMetricFamily(
            "detector_camera_stale", "1 when a camera has had no frame for too long", labels=["site", "camera"]
        )
        state = GaugeMetricFamily(
            "detector_camera_state", "1 for the camera's current state", labels=["site", "camera", "state"]
        )
        hist = HistogramMetricFamily(
            "detector_inference_seconds", "object detector latency per analysed frame", labels=["site", "camera"]
        )
        for c, v in views.items():
            restarts.add_metric([self.site, c], v["restarts"])
            depth.add_metric([self.site, c], v["outbox_depth"])
            if v["last_frame_wall"] is not None:
                last.add_metric([self.site, c], v["last_frame_wall"])
            stale.add_metric([self.site, c], 1 if v["stale"] else 0)
            for s in CAMERA_STATES:
                state.add_metric([self.site, c, s], 1 if v["state"] == s else 0)
            cum, buckets = 0, []
            for bound, count in zip([*LATENCY_BUCKETS_MS, float("inf")], v["latency_counts"], strict=True):
                cum += count
                buckets.append(("+Inf" if bound == float("inf") else f"{bound / 1000:g}", cum))
            hist.add_metric([self.site, c], buckets, v["latency_sum_ms"] / 1000)
        yield from (restarts, depth, last, stale, state, hist)


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
            code = 200 if health["status"] == "ok" else 503
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
