"""YAML -> validated settings. Strict: unknown keys and wrong types are errors naming the key.

The model tree mirrors the YAML (one class per section). Every field has a default, so an
empty file, or no file at all, is a valid configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(Section):
    analysis_fps: float = Field(5.0, gt=0, description="frames analysed per second of video; 0 < fps")
    max_seconds: float | None = Field(None, gt=0, description="stop after this much video time")


class DetectorConfig(Section):
    model: str = Field("yolox-nano", description="model name from models/manifest.yaml")
    model_path: Path | None = Field(None, description="explicit ONNX file; overrides the lookup")
    score_threshold: float | None = Field(None, ge=0, le=1, description="default: the model's own")
    nms_iou: float = Field(0.45, gt=0, le=1, description="boxes of one class overlapping more than this are merged")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    # Persons, the COCO classes that people carry and drop, and the scenery classes
    # (vehicles, furniture): scene memory needs to see a vehicle to know that what changes
    # around it (a door, a load, the ground it uncovers) is not litter.
    classes: list[str] = Field(
        default_factory=lambda: [
            "person", "backpack", "umbrella", "handbag", "suitcase", "sports ball",
            "bottle", "wine glass", "cup", "bowl", "banana", "apple", "sandwich",
            "orange", "pizza", "donut", "cell phone", "book", "teddy bear", "vase",
            "bicycle", "car", "motorcycle", "bus", "truck", "boat", "train", "airplane",
            "bench", "chair", "couch", "potted plant", "dining table", "bed", "toilet", "tv",
            "refrigerator", "fire hydrant", "stop sign", "parking meter", "traffic light",
        ],
        description="detector classes reported; scenery classes must be here to be recognised as scenery",
    )


class MotionConfig(Section):
    """Motion gate: the detector runs only on frames with motion, people in view, or a periodic re-check."""

    enabled: bool = Field(True, description="false: run the detector on every analysed frame")
    width: int = Field(160, ge=32, le=1280, description="width of the small grey frame the gate compares")
    pixel_threshold: int = Field(25, ge=1, le=255, description="grey-level change that counts as motion")
    min_fraction: float = Field(0.002, ge=0, le=1, description="share of moving pixels that wakes the detector")
    global_fraction: float = Field(0.5, gt=0, le=1, description="share of the view changing at once that means lights/exposure: recalibrate")
    recheck_s: float = Field(2.0, gt=0, description="run the detector at least this often, to classify static objects")
    tracking_interval_s: float = Field(
        0.4, ge=0, description="while only tracked objects move, run the detector this often and reuse its "
        "last result in between (0: every analysed frame); motion anywhere else runs it at once",
    )


class TrackerConfig(Section):
    lost_track_buffer_s: float = Field(2.0, gt=0, description="how long a lost track is kept")
    track_activation_threshold: float = Field(0.4, ge=0, le=1, description="detection score that may start a track")
    high_conf_det_threshold: float = Field(0.5, ge=0, le=1, description="ByteTrack's first-round (high-confidence) score")
    minimum_iou_threshold: float = Field(0.1, ge=0, le=1, description="least overlap that links a detection to a track")
    minimum_consecutive_frames: int = Field(2, ge=1, description="detector runs in a row before a track is reported")


class ZoneConfig(Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="zone id used by the ledger")
    polygon: list[tuple[float, float]] = Field(min_length=3, description="[x, y] corners in frame pixels")


class CameraConfig(Section):
    name: str = Field("camera", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field("site", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    zones: list[ZoneConfig] = Field(default_factory=list, description="no zones: the whole view is one zone")

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        ids = [z.id for z in zones]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate zone ids: {sorted({i for i in ids if ids.count(i) > 1})}")
        return zones


class SceneConfig(Section):
    """Scene memory: static objects from a long-term vs short-term background model."""

    work_width: int = Field(320, ge=64, le=1920, description="width of the grey copy the background model runs on")
    short_tau_s: float = Field(1.0, gt=0, description="time constant of the short-term background (s)")
    long_tau_s: float = Field(30.0, gt=0, description="time constant of the long-term background (s)")
    diff_threshold: float = Field(20.0, gt=0, le=255, description="grey-level difference that counts as a change")
    persist_s: float = Field(1.5, ge=0, description="a change must stay this long before it is a static region")
    warmup_s: float = Field(3.0, ge=0, description="after a (re)start the long-term model is built from this much video")
    warmup_frames: int = Field(30, ge=1, le=200, description="at most this many (latest) warm-up frames go into its median")
    min_area_frac: float = Field(0.0005, gt=0, lt=1, description="smallest static region, as a fraction of the view")
    max_area_frac: float = Field(0.2, gt=0, le=1, description="largest static region, as a fraction of the view")
    relight_fraction: float = Field(0.4, gt=0, le=1, description="if this fraction of the view changes at once, it is a lighting change or the view itself changed")
    shift_check_fraction: float = Field(0.05, gt=0, le=1, description="if this fraction of the view changes at once, check whether the camera was knocked (a shift of the whole view is undone, memory kept)")
    relight_unexplained: float = Field(0.15, ge=0, le=1, description="a lighting change is carried over (memory kept) if a smooth gain leaves at most this fraction of the view unexplained; else the backgrounds start afresh")
    person_margin: float = Field(0.1, ge=0, le=1, description="person boxes grow by this fraction before masking")
    region_memory_s: float = Field(3.0, ge=0, description="a static region hidden this long keeps its key")
    candidate_hold_s: float = Field(30.0, gt=0, description="the long-term model stays frozen under a static region this long")
    ghost_ratio: float = Field(1.2, gt=0, description="old-outline/new-outline edge ratio above which a region counts as removed")
    min_thickness_px: float = Field(4.0, ge=0, description="a static region must be at least this thick somewhere (grey-copy pixels); thinner is an edge, not an object")
    vote_max_area_ratio: float = Field(4.0, gt=0, description="a detection lends its class to a static region only if at most this many times its area")
    scenery_classes: list[str] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle", "bicycle", "bench", "chair", "potted plant",
                                 "dining table", "couch", "bed", "toilet", "tv", "refrigerator", "fire hydrant",
                                 "stop sign", "parking meter", "traffic light", "boat", "train", "airplane"],
        description="detector classes that are never litter",
    )


class ActsConfig(Section):
    """Littering / clean-up recogniser."""

    dwell_s: float = Field(1.0, ge=0, description="an object must lie unattended this long before it is litter")
    min_static_s: float = Field(1.5, ge=0, description="an object must have been static this long before it is litter")
    confirm_s: float = Field(0.5, ge=0, description="a static region must be seen this long before it counts")
    min_size_frac: float = Field(0.08, ge=0, description="objects smaller than this fraction of a person's height are ignored")
    upright_ratio: float = Field(1.2, gt=0, description="a person box this much taller than wide counts as someone able to pick up")
    attend_factor: float = Field(1.0, gt=0, description="attended while a person's box is within this many object sizes")
    attend_person_frac: float = Field(0.15, ge=0, description="...or within this fraction of that person's height")
    owner_reach: float = Field(1.0, gt=0, description="an owner was within this many person heights when the object appeared")
    owner_lookback_s: float = Field(4.0, ge=0, description="how far back to look for the owner around the appearance")
    foot_band: float = Field(0.35, ge=0, le=2, description="an owner's foot line is within this fraction of their height of the object's bottom (same ground)")
    max_height_frac: float = Field(1.0, gt=0, description="a dropped object's region is at most this fraction of its owner's height tall")
    person_like_frac: float = Field(0.7, gt=0, le=2, description="a region this tall against the person box that held it is that person's ghost")
    startup_s: float = Field(3.0, ge=0, description="carryable objects detected this early are existing litter")
    startup_min_score: float = Field(0.3, ge=0, le=1, description="detector score for existing litter at startup")
    gone_fraction: float = Field(0.5, gt=0, le=1, description="a litter region this changed counts as gone")
    gone_s: float = Field(1.0, ge=0, description="litter must look gone this long, after people left it, for a clean-up")
    pickup_window_s: float = Field(1.0, ge=0, description="litter lying together whose last touches are this close in time went in one pick-up: one clean-up act")
    touch_memory_s: float = Field(20.0, gt=0, description="a person overlap counts for a clean-up this long")
    lift_frac: float = Field(0.25, gt=0, description="known litter detected with its bottom this fraction of its height above where it lay is being handled (counts as a touch)")
    settle_s: float = Field(2.0, ge=0, description="after a recalibration (lighting/camera motion), no new acts this long")
    small_frac: float = Field(0.15, gt=0, description="object height below this fraction of a person's height: small item")
    bulky_frac: float = Field(0.6, gt=0, description="object height above this fraction of a person's height: bulky load")
    vehicle_classes: list[str] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle", "bicycle", "boat", "train", "airplane"],
        description="detector classes whose doors, loads and uncovered ground are never litter",
    )
    vehicle_margin: float = Field(0.1, ge=0, le=1, description="a region within this fraction of a vehicle's size of its box belongs to it")
    vehicle_memory_s: float = Field(10.0, ge=0, description="where a vehicle was seen this recently, changes belong to it")
    carryable_classes: list[str] = Field(
        default_factory=lambda: ["backpack", "umbrella", "handbag", "suitcase", "sports ball", "bottle", "wine glass",
                                 "cup", "bowl", "banana", "apple", "sandwich", "orange", "pizza", "donut",
                                 "cell phone", "book", "teddy bear", "vase", "frisbee", "kite", "remote"],
        description="detector classes that can be litter",
    )
    bag_classes: list[str] = Field(
        default_factory=lambda: ["backpack", "handbag", "suitcase"], description="classes that are at least a bag"
    )


class Settings(Section):
    """Settings of one camera's pipeline (what `detector replay` and each worker use)."""

    camera: CameraConfig = CameraConfig()
    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    scene: SceneConfig = SceneConfig()
    acts: ActsConfig = ActsConfig()


M = TypeVar("M", bound=BaseModel)


def _format_error(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{origin}: {key}: {msg}{more}"


def load_yaml(path: Path) -> Any:
    """Read a YAML file, turning every failure into a one-line UserError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read config: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None


def validate(model: type[M], data: Any, origin: str) -> M:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e, origin)) from None


def load_config(model: type[M], path: Path | None) -> M:
    """Load and validate a config file into `model`; no path gives the defaults."""
    if path is None:
        return model()
    return validate(model, load_yaml(path), str(path))


def load_settings(path: Path | None) -> Settings:
    return load_config(Settings, path)


# -- issue 5: live sites (SiteConfig and its site-wide sections) ----------------------------


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


class PrivacyConfig(Section):
    snapshots: bool = Field(True, description="store a face-blurred JPEG with each act")
    face_model: str = Field("yunet-dynamic", description="face model from models/manifest.yaml (family yunet)")
    face_model_path: Path | None = Field(None, description="explicit ONNX file; overrides the lookup")
    face_score_threshold: float = Field(
        0.45, ge=0, le=1, description="blur what YuNet scores above this; below its own 0.6 to err towards blurring"
    )
    blur_passes: int = Field(2, ge=1, le=5, description="detect again on the blurred image and blur what is still found")
    face_max_side: int = Field(640, ge=64, le=4096, description="downscale frames to this long side for YuNet")
    face_margin: float = Field(0.3, ge=0, le=2, description="grow each face box by this fraction before blurring")
    head_fraction: float = Field(0.2, gt=0, le=1, description="top part of a person box blurred when no face is found in it")
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
    zones: list[ZoneConfig] = Field(default_factory=list, description="no zones: the whole view is one zone")
    # Per-camera overrides of the pipeline Settings sections (detector, tracker, ...), written
    # as keys of the camera itself; see SiteConfig.camera_settings.
    pipeline: dict[str, Any] = Field(default_factory=dict, description="(filled from section keys)")

    @property
    def is_rtsp(self) -> bool:
        return self.url.lower().startswith(("rtsp://", "rtsps://"))


class SiteConfig(Section):
    site: str = Field("site", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    pipeline: dict[str, Any] = Field(default_factory=dict, description="Settings sections shared by every camera")
    cameras: list[SiteCamera] = Field(default_factory=list, description="one worker process per camera")
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
        merged["camera"] = {**merged.get("camera", {}), "name": cam.name, "site": self.site,
                            "zones": [z.model_dump() for z in cam.zones]}
        if cam.analysis_fps is not None:
            merged["source"] = {**merged.get("source", {}), "analysis_fps": cam.analysis_fps}
        return Settings.model_validate(merged)


def _site_error(err: ValidationError, origin: str, cameras: list) -> str:
    first = err.errors()[0]
    loc = list(first["loc"])
    where = origin
    if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
        raw = cameras[loc[1]] if loc[1] < len(cameras) else None
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{origin}: camera {name!r}" if name else f"{origin}: camera #{loc[1] + 1}"
        loc = loc[2:]
    key = ".".join(str(p) for p in loc) or "(top level)"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{where}: {key}: {msg}"


def validate_site(data: Any, origin: str) -> SiteConfig:
    """Validate a site mapping; every error is one line naming the camera and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
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
        raise UserError(_site_error(e, origin, cameras)) from None
    for key in site.pipeline:
        if key not in sections:
            raise UserError(f"{origin}: pipeline.{key}: unknown key (sections: {', '.join(sorted(sections))})")
    for cam in site.cameras:
        for zone in cam.zones:
            _check_polygon(zone, f"{origin}: camera {cam.name!r}: zones.{zone.id}.polygon")
        try:
            site.camera_settings(cam)
        except ValidationError as e:
            raise UserError(_format_error(e, f"{origin}: camera {cam.name!r}")) from None
    return site


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
