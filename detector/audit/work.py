"""What a worker does: probe a recording, analyse one segment of it.

Tasks are small picklable values with a `run()` method, executed the same way by every engine
(a local process pool or Ray actors), and they return plain values. A failure is returned as a
message, never raised: one unreadable recording must not stop the others, and a worker process
stays alive for the next task.

Each worker process keeps its model sessions (object detector, face detector) loaded between
tasks: `_models` caches them by their settings, so only the first task of a worker pays the
load.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from detector.audit.segments import Segment
from detector.protocol.errors import UserError

_HASH_CHUNK = 1 << 20


# -- probing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    path: str
    sha256: str = ""
    size: int = 0
    duration_s: float = 0.0  # from the container header; the last segment reads to the real end
    start_time: str | None = None  # the container's own start time (RFC 3339), if it has one
    error: str | None = None


@dataclass(frozen=True)
class ProbeTask:
    path: str

    def run(self) -> Probe:
        try:
            sha, size = _sha256(Path(self.path))
            duration, start = _container_facts(Path(self.path))
            return Probe(self.path, sha, size, duration, start)
        except UserError as e:
            return Probe(self.path, error=str(e))
        except OSError as e:
            return Probe(self.path, error=f"{self.path}: cannot read: {e.strerror}")
        except Exception as e:  # whatever the container library raises for a broken file
            return Probe(self.path, error=f"{self.path}: {type(e).__name__}: {e}")


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _container_facts(path: Path) -> tuple[float, str | None]:
    """Duration and start time from the container (PyAV, which reads the header's duration
    and metadata); OpenCV's frame count / fps when PyAV cannot say."""
    import av

    from detector.sources import open_capture

    duration = 0.0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise UserError(f"{path}: no video stream")
            s = c.streams.video[0]
            if c.duration:
                duration = c.duration / 1e6
            elif s.duration and s.time_base:
                duration = float(s.duration * s.time_base)
    except av.FFmpegError:
        pass  # GIFs and odd files: OpenCV below decides whether it is a video at all
    cap, info = open_capture(path)  # raises a one-line UserError for what is not a video
    cap.release()
    if duration <= 0 and info.frame_count:
        duration = info.frame_count / info.nominal_fps
    from detector.replay import container_start_time

    when = container_start_time(path)
    start = when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None
    return duration, start


# -- analysing a segment ---------------------------------------------------------------------------


@dataclass
class SegmentOutput:
    key: str  # the recording's key
    index: int  # the segment's
    acts: list[dict] = field(default_factory=list)  # Act.to_json() + "evidence_sha256", in emission order
    evidence: dict[str, bytes] = field(default_factory=dict)  # sha256 -> blurred JPEG
    frames: int = 0  # frames analysed (warm-up included)
    analysed_s: float = 0.0  # video time processed (warm-up included)
    last_t: float = 0.0  # time of the last frame read
    video: bytes | None = None  # the annotated part of the own range (MP4), if asked
    wall_s: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class SegmentTask:
    key: str
    path: str
    settings_json: str
    segment: Segment
    margin_s: float  # acts this far before the own range may pair with the previous segment's
    video: bool = False

    def run(self) -> SegmentOutput:
        t0 = time.perf_counter()
        try:
            out = _analyse(self)
        except UserError as e:
            out = SegmentOutput(self.key, self.segment.index, error=str(e))
        except Exception as e:  # a decoder or model failure on this file: report it, go on with the others
            out = SegmentOutput(self.key, self.segment.index, error=f"{self.path}: {type(e).__name__}: {e}")
        out.wall_s = time.perf_counter() - t0
        return out


def _analyse(task: SegmentTask) -> SegmentOutput:
    from detector.audit.reader import SegmentSource
    from detector.config import PrivacyConfig, Settings
    from detector.pipeline import Pipeline
    from detector.privacy import Redactor, Seen
    from detector.sources import prefetched

    settings = Settings.model_validate_json(task.settings_json)
    detector, faces = _models(settings)
    pipeline = Pipeline(settings, detector=detector)
    # A fresh redactor (it remembers the faces of the frames just before) on the loaded face
    # model: nothing from the worker's previous task may change this segment's bytes.
    redactor = Redactor(PrivacyConfig(), faces=faces)
    seg = task.segment
    out = SegmentOutput(task.key, seg.index)
    source = SegmentSource(Path(task.path), settings.source.analysis_fps, seg.start_s, seg.end_s)
    keep_from = seg.own_from - task.margin_s
    video = _VideoPart(settings, pipeline, redactor) if task.video else None
    first_t = None
    try:
        for frame in prefetched(source):
            result = pipeline.process(frame)
            first_t = frame.time_s if first_t is None else first_t
            out.frames += 1
            out.last_t = frame.time_s
            for act in result.acts:
                record = act.to_json()
                if act.t_notify + 1e-6 >= keep_from:
                    # Evidence only for acts that may be kept: faces blurred before encoding.
                    jpeg = redactor.snapshot(frame.image, Seen.of(result, pipeline))
                    sha = hashlib.sha256(jpeg).hexdigest()
                    out.evidence[sha] = jpeg
                    record["evidence_sha256"] = sha
                out.acts.append(record)
            if video is not None and frame.time_s + 1e-6 >= seg.own_from:
                if seg.own_to is None or frame.time_s + 1e-6 < seg.own_to:
                    video.add(result)
        if video is not None:
            out.video = video.finish()
    finally:
        if video is not None:
            video.discard()
    if first_t is None and seg.index == 0:
        raise UserError(f"{task.path}: no frame could be decoded (empty or corrupt video)")
    out.analysed_s = 0.0 if first_t is None else out.last_t - first_t
    return out


class _VideoPart:
    """The annotated video of a segment's own range, as `detector replay --video` draws it:
    faces blurred first (the Redactor), then tracks, litter and acts drawn, written by replay's
    H.264 writer into a temporary file whose bytes go back to the driver."""

    def __init__(self, settings, pipeline, redactor) -> None:
        fd, name = tempfile.mkstemp(suffix=".mp4", prefix="detector-audit-")
        os.close(fd)
        self.path = Path(name)
        self.settings = settings
        self.pipeline = pipeline
        self.redactor = redactor
        self.writer = None
        self.recent: list = []

    def add(self, result) -> None:
        from detector.annotate import draw_frame
        from detector.privacy import Seen
        from detector.replay import H264Writer

        t = result.frame.time_s
        self.recent = [(ts, a) for ts, a in self.recent if t - ts < 3.0] + [(t, a) for a in result.acts]
        p = self.pipeline
        image = draw_frame(
            self.redactor.redact(result.frame.image, Seen.of(result, p)),
            t,
            result.tracks,
            p.class_names,
            zones=p.zones.polygons(),
            litter=p.litter_overlay(),
            acts=[a for _, a in self.recent],
        )
        if self.writer is None:
            self.writer = H264Writer(self.path, image.shape[1], image.shape[0], self.settings.source.analysis_fps)
        self.writer.write(image)

    def finish(self) -> bytes | None:
        if self.writer is None:
            return None
        self.writer.close()
        self.writer = None
        return self.path.read_bytes()

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.path.unlink(missing_ok=True)


# -- the worker process's loaded models ------------------------------------------------------------

_MODELS: dict[str, tuple] = {}


def _models(settings):
    """(object detector, face detector) for these settings, loaded once per worker process.
    Both are stateless between frames (the state lives in the pipeline and the redactor)."""
    from detector.config import PrivacyConfig
    from detector.detection import build_detector
    from detector.privacy import Redactor

    key = settings.detector.model_dump_json()
    if key not in _MODELS:
        _MODELS.clear()  # one configuration per audit: never hold two copies of a model
        # The face model exactly as a Redactor builds it from the privacy settings.
        _MODELS[key] = (build_detector(settings.detector), Redactor(PrivacyConfig()).faces)
    return _MODELS[key]


def init_worker(env: dict[str, str]) -> None:
    """Run once in every worker process: the driver's model location, one OpenCV thread
    (parallelism comes from the workers; the detector's threads from the config)."""
    os.environ.update(env)
    import cv2

    cv2.setNumThreads(1)
