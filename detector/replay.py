"""`detector replay CLIP`: run one camera's pipeline on a recorded clip and write what it saw.

Outputs are deterministic: the same clip, config (and key) give the same bytes.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.annotate import draw_frame
from detector.config import Settings, load_settings
from detector.pipeline import FrameResult, Pipeline
from detector.privacy import Seen
from detector.protocol.errors import UserError
from detector.samples import resolve_clip
from detector.sources import FileSource, prefetched
from detector.values import Act


@dataclass(frozen=True)
class ReplayOptions:
    """What `detector replay` was asked to do (the CLI fills it in)."""

    clip: str  # a path or a sample name
    config: Path | None = None
    video: Path | None = None  # annotated MP4
    tracks: Path | None = None  # per-frame tracks, JSON lines
    acts: Path | None = None  # acts, JSON lines
    events: Path | None = None  # signed audit events, JSON lines (needs key)
    key: Path | None = None
    # Wall-clock time of the first frame, for event times. None: the container's creation_time;
    # signed events need one or the other (an invented time would be signed as if it were true).
    start_time: datetime | None = None
    progress: bool = False


@dataclass
class ReplayStats:
    clip: Path
    frames_analysed: int
    video_s: float
    wall_s: float
    acts: list[Act]
    start_time: datetime | None = None  # of the signed events, when written
    start_time_from: str = ""  # "option" (--start-time) or "container" (its creation_time)

    @property
    def realtime_factor(self) -> float:
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0


def tracks_record(result: FrameResult, class_names: list[str]) -> dict:
    t = result.tracks
    return {
        "frame": result.frame.index,
        "t": round(result.frame.time_s, 3),
        "tracks": [
            {
                "id": int(i),
                "class": class_names[int(c)],
                "score": round(float(s), 3),
                "box": [round(float(v), 1) for v in b],
            }
            for b, c, i, s in zip(t.xyxy, t.class_id, t.tracker_id, t.confidence)
        ],
    }


def open_clip(clip: Path, settings: Settings) -> FileSource:
    """The clip as a frame source, its first frame decoded: a missing, unreadable or corrupt
    clip fails here, in a second, rather than after the model has been found and loaded."""
    source = FileSource(clip, settings.source.analysis_fps, settings.source.max_seconds)
    frames = iter(source)
    try:
        next(frames)  # FileSource raises UserError when no frame decodes
    except StopIteration:
        pass
    finally:
        frames.close()
    return source


def container_start_time(clip: Path) -> datetime | None:
    """The wall-clock time a container says its recording started (`creation_time`, which
    MP4/MOV, Matroska and AVI files from cameras and NVRs carry), or None when it has none.

    A time at or before the Unix epoch is a muxer's placeholder, not a recording time.
    """
    import av

    try:
        with av.open(str(clip)) as container:
            tags = [container.metadata] + [stream.metadata for stream in container.streams.video]
    except (av.error.FFmpegError, OSError):
        return None
    for text in (t.get("creation_time") for t in tags):
        if not text:
            continue
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        when = when if when.tzinfo else when.replace(tzinfo=UTC)  # FFmpeg writes and reads UTC
        if when > datetime(1970, 1, 1, tzinfo=UTC):
            return when
    return None


def iterate(
    clip: Path,
    settings: Settings,
    pipeline: Pipeline | None = None,
    progress: bool = False,
    source: FileSource | None = None,
) -> Iterator[FrameResult]:
    """FrameResults of a whole clip (every act needs its dwell, so none is pending at the end)."""
    source = source or FileSource(clip, settings.source.analysis_fps, settings.source.max_seconds)
    pipeline = pipeline or Pipeline(settings)
    total = source.duration_estimate_s
    bar = tqdm(
        total=round(total, 1) or None,
        unit="s",
        desc=clip.name,
        disable=not progress,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s video [{elapsed}<{remaining}]",
    )
    try:
        for frame in prefetched(source):
            yield pipeline.process(frame)
            bar.update(max(0.0, min(frame.time_s, total) - bar.n))
    finally:
        bar.close()


def run(args: ReplayOptions) -> ReplayStats:
    """Replay one clip and write what was asked; deterministic bytes."""
    # Every input is checked before the model is resolved and loaded, cheapest first, so a
    # mistake fails in a second with its own message, never after a long replay.
    settings = load_settings(args.config)
    clip = resolve_clip(args.clip)
    source = open_clip(clip, settings)
    if args.events and not args.key:
        raise UserError("--events needs --key (the camera's private key)")
    if args.key:
        from detector.protocol.keys import load_private_key

        load_private_key(args.key)
    start_time, start_time_from = args.start_time, "option"
    if args.events and start_time is None:
        start_time, start_time_from = container_start_time(clip), "container"
        if start_time is None:
            raise UserError(
                f"--events needs --start-time (the wall-clock time of the first frame, e.g. "
                f"2026-11-26T08:00:00Z): {clip.name} carries no creation_time"
            )
    if start_time is not None and start_time.tzinfo is None:
        raise UserError("--start-time: give a time zone (e.g. 2026-11-26T08:00:00Z)")
    progress = args.progress
    pipeline = Pipeline(settings)
    acts: list[Act] = []
    frames = 0
    video_s = 0.0
    t0 = time.perf_counter()
    with ExitStack() as stack:
        tracks_out = stack.enter_context(_open_text(args.tracks)) if args.tracks else None
        acts_out = stack.enter_context(_open_text(args.acts)) if args.acts else None
        video: _VideoThread | None = None
        recent: list[tuple[float, Act]] = []
        redactor = _redactor() if args.video else None
        for result in iterate(clip, settings, pipeline, progress, source):
            frames += 1
            video_s = result.frame.time_s
            acts.extend(result.acts)
            if tracks_out:
                tracks_out.write(json.dumps(tracks_record(result, pipeline.class_names), separators=(",", ":")) + "\n")
            if acts_out:
                for act in result.acts:
                    acts_out.write(json.dumps(act.to_json(), separators=(",", ":"), sort_keys=True) + "\n")
            if args.video:
                recent = [(t, a) for t, a in recent if result.frame.time_s - t < 3.0] + [
                    (result.frame.time_s, a) for a in result.acts
                ]
                if video is None:  # opened here, on the first frame, so a bad path fails at once
                    h, w = result.frame.image.shape[:2]
                    writer = H264Writer(args.video, w, h, settings.source.analysis_fps)
                    video = _VideoThread(redactor, writer, pipeline.class_names, pipeline.zones.polygons())
                    stack.callback(video.close)
                # What the frame's drawing needs is taken now: the pipeline moves on meanwhile.
                video.put(
                    VideoFrameJob(
                        result.frame.image,
                        Seen.of(result, pipeline),
                        result.frame.time_s,
                        result.tracks,
                        pipeline.litter_overlay(),
                        [a for _, a in recent],
                    )
                )
    wall = time.perf_counter() - t0
    if args.events:
        _write_events(acts, args, settings, start_time)
        return ReplayStats(clip, frames, video_s, wall, acts, start_time, start_time_from)
    return ReplayStats(clip, frames, video_s, wall, acts)


@dataclass(frozen=True)
class VideoFrameJob:
    """One analysed frame as the annotated video needs it, taken when it was analysed."""

    image: np.ndarray  # the decoded frame (never modified: the redactor blurs a copy)
    seen: Seen
    time_s: float
    tracks: object  # sv.Detections of this frame
    litter: list
    acts: list[Act]


class _VideoThread:
    """Blurs, draws and encodes the annotated video beside the analysis, in frame order.

    Face search and H.264 encoding cost more than the analysis itself; done one after the other
    they leave the second core of a small box idle. onnxruntime, OpenCV and x264 release the GIL,
    so two stages run in threads of their own while the pipeline analyses the next frame: one
    blurs and draws frame n (the face search, the longest stage), the other encodes frame n-1.
    Each stage is one thread fed by a FIFO, so the redactor's memory and the bytes are those of a
    serial run; short queues bound the frames held (about 1 MB each at 720p).
    """

    def __init__(self, redactor, writer: H264Writer, class_names: list[str], zones) -> None:
        self.redactor, self.writer, self.class_names, self.zones = redactor, writer, class_names, zones
        self.jobs: queue.Queue[VideoFrameJob | None] = queue.Queue(maxsize=4)
        self.drawn: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.threads = [
            threading.Thread(target=self._draw, name="video-draw", daemon=True),
            threading.Thread(target=self._encode, name="video-encode", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def put(self, job: VideoFrameJob) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(job)

    def _draw(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                # Faces are blurred before anything is drawn or written: the video is stored evidence.
                self.drawn.put(
                    draw_frame(
                        self.redactor.redact(job.image, job.seen),
                        job.time_s,
                        job.tracks,
                        self.class_names,
                        zones=self.zones,
                        litter=job.litter,
                        acts=job.acts,
                    )
                )
        except BaseException as e:  # handed to the analysing thread, which stops on it
            self.error = self.error or e
            while self.jobs.get() is not None:  # keep taking jobs so the producer never blocks
                pass
        self.drawn.put(None)

    def _encode(self) -> None:
        try:
            while (image := self.drawn.get()) is not None:
                self.writer.write(image)
        except BaseException as e:
            self.error = self.error or e
            while self.drawn.get() is not None:  # keep the drawing stage from blocking
                pass

    def close(self) -> None:
        """Finish every frame put so far, then the file; raise what went wrong in a thread."""
        self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.writer.close()
        if self.error is not None:
            raise self.error


def _redactor():
    from detector.config import PrivacyConfig
    from detector.privacy import Redactor

    return Redactor(PrivacyConfig())


def _open_text(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8", newline="\n")
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror}") from None


class H264Writer:
    """Annotated video as H.264 (yuv420p) in MP4 through PyAV, so it plays in a browser.

    Deterministic: one x264 thread and frame times from the frame count, so the same frames give
    the same bytes (x264 itself is deterministic unless asked not to be). `+faststart` puts the
    index first, so a browser can start playing before the whole file has arrived.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 23) -> None:
        import av

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (OSError, av.error.FFmpegError) as e:
            raise UserError(f"{path}: cannot write video: {getattr(e, 'strerror', None) or e}") from None
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        # yuv420p halves the chroma resolution: odd sizes get one padding row/column.
        self.width, self.height = width + width % 2, height + height % 2
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        self._frames = 0

    def write(self, image: np.ndarray) -> None:
        import av

        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            image = cv2.copyMakeBorder(image, 0, self.height - h, 0, self.width - w, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._frames
        self._frames += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():  # flush the encoder's delayed frames
            self.container.mux(packet)
        self.container.close()


def _write_events(acts: list[Act], args: ReplayOptions, settings: Settings, start_time: datetime) -> None:
    """Signed audit events: byte-identical for the same clip, config, key and start time."""
    from detector.protocol.events import write_jsonl
    from detector.signer import sign_acts

    cam = settings.camera
    write_jsonl(sign_acts(acts, args.key, cam.site, cam.name, clip_start=start_time), args.events)
