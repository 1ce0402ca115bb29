"""Settings of a live site: its cameras and the site-wide sections (RTSP, supervisor,
privacy, outbox, delivery, MQTT, metrics). Each camera's pipeline settings are the site's
`pipeline:` defaults with the camera's own overrides (`SiteConfig.camera_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from detector.config.pipeline import Settings, ZoneConfig
from detector.protocol.config import Section, format_error, load_yaml, require_mapping
from detector.protocol.errors import UserError


class RtspConfig(Section):
    open_timeout_s: float = Field(10.0, gt=0, description="give up opening a stream after this long")
    read_timeout_s: float = Field(5.0, gt=0, description="FFmpeg read timeout of one frame")
    stall_s: float = Field(10.0, gt=0, description="no frame for this long means reconnect")
    backoff_initial_s: float = Field(1.0, gt=0, description="first wait before reconnecting")
    backoff_max_s: float = Field(30.0, gt=0, description="cap of the exponential reconnect backoff")


class SupervisorConfig(Section):
    restart_backoff_initial_s: float = Field(1.0, gt=0, description="first wait before restarting a crashed worker")
    restart_backoff_max_s: float = Field(60.0, gt=0, description="cap of the worker restart backoff")
    stable_after_s: float = Field(60.0, gt=0, description="a worker up this long resets its backoff")
    stop_timeout_s: float = Field(8.0, gt=0, description="wait this long for workers to exit before killing them")
    state_log_interval_s: float = Field(30.0, gt=0, description="log the camera state table this often")
    # A worker process holds ~250 MB of libraries and models whatever its cameras; its Python
    # share of a frame's analysis is a few ms, so one process can feed two cores for 32 cameras
    # at 5 fps. More processes cost memory and split the fair sharing of analysis between them.
    cameras_per_process: int = Field(
        32, ge=1, le=256, description="cameras sharing one worker process (1: a process each, isolated)"
    )
    analysis_threads: int | None = Field(
        None, ge=1, le=64, description="frames analysed at once in a worker process; default: one per CPU core"
    )


class PrivacyConfig(Section):
    snapshots: bool = Field(True, description="store a face-blurred JPEG with each act")
    face_model: str = Field(
        "yunet-dynamic", description="face model from detector/manifests/models.yaml (family yunet)"
    )
    face_model_path: Path | None = Field(None, description="explicit ONNX file; overrides the lookup")
    face_score_threshold: float = Field(
        0.45, ge=0, le=1, description="blur what YuNet scores above this; below its own 0.6 to err towards blurring"
    )
    blur_passes: int = Field(
        2, ge=1, le=5, description="detect again on the blurred image and blur what is still found"
    )
    face_pixels: int = Field(
        2560 * 1440,
        ge=64 * 64,
        le=8192 * 8192,
        description="search whole frames for faces enlarged up to roi_scale within this many pixels (a face "
        "under 10 px, too small for YuNet at 1x, can be anywhere; 2560x1440: frames up to 1280x720 at 2x)",
    )
    roi_scale: float = Field(
        2.0,
        ge=1,
        le=4,
        description="enlarge frames (beyond face_pixels: people, motion) this much to find faces of 5-14 px",
    )
    face_margin: float = Field(0.3, ge=0, le=2, description="grow each face box by this fraction on every side")
    head_fraction: float = Field(
        0.25, gt=0, le=1, description="top part of an upright person box always blurred (its head and a margin)"
    )
    carry_s: float = Field(
        0.5, ge=0, le=5, description="blur a face found on a frame again on frames up to this much later"
    )
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of stored snapshots")
    evidence_dir: Path = Field(Path("var/evidence"), description="directory of snapshots named by sha256")
    retention_days: float = Field(30.0, gt=0, description="snapshots older than this are deleted")
    purge_interval_s: float = Field(3600.0, gt=0, description="how often old snapshots are purged")
    sample_every: int = Field(0, ge=0, description="also store every Nth analysed frame (blur audits; 0: off)")
    threads: int = Field(1, ge=1, le=16, description="onnxruntime threads of the face detector")


class OutboxConfig(Section):
    dir: Path = Field(Path("var/outbox"), description="one SQLite outbox per camera: DIR/<camera>.db")
    key_dir: Path = Field(Path("var/keys"), description="camera signing keys DIR/<camera>.key (made on first run)")
    prune_after_days: float = Field(7.0, gt=0, description="delivered events older than this are deleted")


class DeliveryConfig(Section):
    url: str | None = Field(None, description="scoring backend base URL; None: no HTTP delivery")
    batch_size: int = Field(100, ge=1, le=10_000, description="events per POST")
    backoff_initial_s: float = Field(0.5, gt=0, description="first wait after a failed delivery")
    backoff_max_s: float = Field(30.0, gt=0, description="cap of the exponential delivery backoff (with jitter)")


class MqttConfig(Section):
    enabled: bool = Field(False, description="publish events to an MQTT broker")
    host: str = Field("127.0.0.1", min_length=1, description="broker host")
    port: int = Field(1883, ge=1, le=65535, description="broker port")
    topic_prefix: str = Field("detector", min_length=1, description="topics: PREFIX/<camera>/events|availability")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive; the last will fires after ~1.5x this")
    ack_timeout_s: float = Field(10.0, gt=0, description="a publish not acknowledged (PUBACK) in time is retried")
    username: str | None = Field(None, description="broker user name (password from password_env)")
    password_env: str | None = Field(None, description="environment variable holding the password")


class MetricsConfig(Section):
    enabled: bool = Field(True, description="serve /metrics (Prometheus) and /healthz")
    host: str = Field("127.0.0.1", description="bind address")
    port: int = Field(9108, ge=0, le=65535, description="0: any free port")
    stale_after_s: float = Field(30.0, gt=0, description="a camera with no frame for this long is stale")


_CAMERA_OWN_KEYS = {"name", "url", "loop", "realtime", "analysis_fps", "zones", "enabled"}


class SiteCamera(Section):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=1, description="rtsp://... stream, a video file path, or a sample name")
    loop: bool = Field(False, description="file cameras: replay the file forever")
    realtime: bool = Field(True, description="file cameras: pace frames to video time, like a live camera")
    analysis_fps: float | None = Field(None, gt=0, description="default: source.analysis_fps of the site pipeline")
    enabled: bool = Field(True, description="false: keep the camera in the config but do not run it")
    zones: list[ZoneConfig] = Field(
        default_factory=list, description="no zones: the whole view is one zone, named after the camera"
    )
    # Per-camera overrides of the pipeline Settings sections (detector, tracker, ...), written
    # as keys of the camera itself; see SiteConfig.camera_settings.
    pipeline: dict[str, Any] = Field(default_factory=dict, description="(filled from section keys)")

    @property
    def is_rtsp(self) -> bool:
        return self.url.lower().startswith(("rtsp://", "rtsps://"))


class SiteConfig(Section):
    site: str = Field("site", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    pipeline: dict[str, Any] = Field(default_factory=dict, description="Settings sections shared by every camera")
    cameras: list[SiteCamera] = Field(default_factory=list, description="the cameras (several share a worker process)")
    rtsp: RtspConfig = RtspConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    outbox: OutboxConfig = OutboxConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()

    def camera_settings(self, cam: SiteCamera) -> Settings:
        """The pipeline Settings of one camera: site pipeline defaults, then the camera's overrides."""
        merged: dict[str, Any] = {k: dict(v) for k, v in self.pipeline.items()}
        for section, values in cam.pipeline.items():
            merged[section] = {**merged.get(section, {}), **values}
        merged["camera"] = {
            **merged.get("camera", {}),
            "name": cam.name,
            "site": self.site,
            "zones": [z.model_dump() for z in cam.zones],
        }
        if cam.analysis_fps is not None:
            merged["source"] = {**merged.get("source", {}), "analysis_fps": cam.analysis_fps}
        return Settings.model_validate(merged)


def _camera_named(origin: str, cameras: list):
    """Error locations under cameras[i] name the camera (by its name, else its position)."""

    def where(loc: list) -> tuple[str, list]:
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            raw = cameras[loc[1]] if loc[1] < len(cameras) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            return (f"{origin}: camera {name!r}" if name else f"{origin}: camera #{loc[1] + 1}"), loc[2:]
        return origin, loc

    return where


def validate_site(data: Any, origin: str) -> SiteConfig:
    """Validate a site mapping; every error is one line naming the camera and the key."""
    data = require_mapping(data, origin)
    sections = set(Settings.model_fields) - {"camera"}
    cameras = data.get("cameras") or []
    if not isinstance(cameras, list):
        raise UserError(f"{origin}: cameras: expected a list of cameras")
    if not cameras:
        raise UserError(f"{origin}: cameras: at least one camera is needed")
    fixed, seen = [], set()
    for i, raw in enumerate(cameras):
        if not isinstance(raw, dict):
            raise UserError(f"{origin}: camera #{i + 1}: expected a mapping with name and url")
        name = raw.get("name")
        label = f"camera {name!r}" if name else f"camera #{i + 1}"
        if name in seen:
            raise UserError(f"{origin}: {label}: name: duplicate camera name")
        seen.add(name)
        for key in raw:
            if key not in _CAMERA_OWN_KEYS and key not in sections:
                known = ", ".join(sorted(_CAMERA_OWN_KEYS | sections))
                raise UserError(f"{origin}: {label}: {key}: unknown key (known: {known})")
        own = {k: v for k, v in raw.items() if k in _CAMERA_OWN_KEYS}
        own["pipeline"] = {k: v for k, v in raw.items() if k in sections}
        fixed.append(own)
    try:
        site = SiteConfig.model_validate({**data, "cameras": fixed})
    except ValidationError as e:
        raise UserError(format_error(e, origin, _camera_named(origin, cameras))) from None
    for key in site.pipeline:
        if key not in sections:
            raise UserError(f"{origin}: pipeline.{key}: unknown key (sections: {', '.join(sorted(sections))})")
    _check_zone_owners(site, origin)
    for cam in site.cameras:
        for zone in cam.zones:
            _check_polygon(zone, f"{origin}: camera {cam.name!r}: zones.{zone.id}.polygon")
        try:
            site.camera_settings(cam)
        except ValidationError as e:
            raise UserError(format_error(e, f"{origin}: camera {cam.name!r}")) from None
    return site


def _check_zone_owners(site: SiteConfig, origin: str) -> None:
    """Zones are per camera: two cameras may use one zone id (and add up in one score) only
    when every one of them marks it `shared: true`. A camera without zones has one named after
    itself, which is never shared."""
    users: dict[str, list[tuple[str, bool]]] = {}
    for cam in site.cameras:
        for zid, shared in [(z.id, z.shared) for z in cam.zones] or [(cam.name, False)]:
            users.setdefault(zid, []).append((cam.name, shared))
    for zid, owners in users.items():
        if len(owners) > 1 and not all(shared for _, shared in owners):
            names = " and ".join(repr(c) for c, _ in owners)
            raise UserError(
                f"{origin}: zone {zid!r} is used by cameras {names}: zones are per camera; to add their litter "
                f"up in one score, mark the zone `shared: true` on each camera (a camera without zones has one "
                f"named after itself, which cannot be shared)"
            )


def _check_polygon(zone: ZoneConfig, where: str) -> None:
    import numpy as np

    pts = np.asarray(zone.polygon, dtype=float)
    if len(np.unique(pts, axis=0)) < 3:
        raise UserError(f"{where}: needs at least 3 distinct points")
    n = len(pts)
    # Hand-written (shapely is not a dependency): proper crossings of non-adjacent edges, O(n^2).
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            c, d = pts[j], pts[(j + 1) % n]
            if _segments_cross(a, b, c, d):
                raise UserError(f"{where}: edges {i + 1} and {j + 1} cross (self-intersecting polygon)")
    x, y = pts[:, 0], pts[:, 1]
    if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) < 1e-9:
        raise UserError(f"{where}: has zero area (points on one line)")


def _segments_cross(a, b, c, d) -> bool:
    def orient(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2, d3, d4 = orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


def load_site(path: Path) -> SiteConfig:
    return validate_site(load_yaml(path), str(path))
