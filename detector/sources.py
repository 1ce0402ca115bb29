"""Frame sources: decoded frames with the stream's own timestamps, decimated to an analysis rate.

Every source is a `FrameSource`: iterating it yields the frames due for analysis.
- `FileSource`: a recorded clip, read as fast as it decodes (replay, bench).
- `LiveFile`: a file played like a camera: at the pace of its own timestamps, optionally looped.
- `RtspSource` (`detector.rtsp`): a network camera, reconnected forever.
The last two are `LiveSource`s: a reader thread decodes the stream as it comes and keeps the
last few frames due for analysis (`QUEUE_DEPTH`), so a slow pipeline skips frames (counted as
dropped) instead of falling behind the camera. A worker running many cameras takes their frames
with `take()` when `start(listener)` tells it one is waiting; one camera alone just iterates.

Timestamps come from the container (the packet pts) rather than `index / fps`: some files
report the wrong fps (the shared `crowd_overhead_vtest.avi` says 50 fps for 25 fps content).
They are shifted so that the first frame is at 0 s and repaired where a container gives none or
runs backwards (AVI B-frames, the last packet): such a frame gets the previous time plus one
nominal frame interval (`StreamClock`). The analysis rate picks the first frame at or after each
tick k / fps (`Decimator`).

Live sources decode with PyAV (FFmpeg), one decoder thread each, and skip the frames that
nothing refers to (B-frames and other non-reference frames) when they cannot be due for
analysis: at 25 fps analysed at 5, most of them. When the analysis falls behind a camera (its
queue of due frames is full), its reader stops decoding altogether and only drains packets until
the next keyframe, where it starts decoding again: decoding the rest of a group of pictures
nobody will analyse is what made an overloaded site collapse (24 decoders crowding out the
analysis). Each analysis tick that passes undecoded is counted as dropped, so the overload stays
visible. Frames that are decoded are converted to BGR exactly as OpenCV does (same swscale path,
checked bit for bit on H.264), so a live file camera analyses the very frames `detector replay`
analyses on the same file.
"""

from __future__ import annotations

import bisect
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2

from detector.protocol.errors import UserError
from detector.values import CameraState, Frame

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """Anything that yields the frames of one camera or clip due for analysis, in order."""

    def __iter__(self) -> Iterator[Frame]: ...


# -- timing shared by every source ---------------------------------------------------------
_EPS = 1e-6  # seconds; container times are rounded to microseconds or coarser


class StreamClock:
    """Stream timestamps shifted to start at 0; a missing, repeated or backwards one becomes the
    previous time plus one nominal frame interval."""

    def __init__(self, nominal_fps: float) -> None:
        self.step = 1.0 / nominal_fps
        self.origin: float | None = None
        self.last = -self.step
        self.index = -1

    def time(self, pos: float | None) -> float:
        """Video time of the next frame in presentation order, from its container time `pos`."""
        self.index += 1
        if pos is not None and self.origin is None:
            self.origin = pos
        t = None if pos is None or self.origin is None else pos - self.origin
        if t is None or not (t > self.last) or (self.index > 0 and pos == 0.0):
            t = self.last + self.step
        self.last = t
        return t


class Decimator:
    """Picks the first frame at or after each tick k / fps of video time (None: every frame).

    A frame that comes late does not shift the grid: the next pick is due at the first tick after it.
    """

    def __init__(self, fps: float | None) -> None:
        self.interval = 1.0 / fps if fps else 0.0
        self.next_due = 0.0

    def is_due(self, t: float) -> bool:
        return not (t + _EPS < self.next_due)

    def taken(self, t: float) -> None:
        """A frame at `t` was picked: the next one is due at the first tick after it."""
        if self.interval:
            # Catch up in whole intervals so that a late frame does not shift the grid.
            self.next_due += self.interval * max(1, int((t - self.next_due) / self.interval) + 1)

    def may_be_due(self, t: float, previous: float | None) -> bool:
        """Whether a frame at `t` could be picked when the frame before it in presentation order
        is at `previous` or later: is there a tick in (previous, t]? Used, before decoding, to skip
        frames that cannot be analysed; it errs towards decoding (a missing `previous` says yes)."""
        if not self.interval or previous is None:
            return True
        last_tick = math.floor((t + 2 * _EPS) / self.interval) * self.interval
        return last_tick > previous + _EPS / 2


# -- recorded clips (OpenCV) -----------------------------------------------------------------
@dataclass(frozen=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    nominal_fps: float  # what the container header claims; used only to repair timestamps
    frame_count: int  # the header's count; may be wrong


def check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"clip not found: {path}")
    if not path.is_file():
        raise UserError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")


def open_capture(path: Path) -> tuple[cv2.VideoCapture, ClipInfo]:
    check_file(path)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap = cv2.VideoCapture(str(path))  # GIFs and image sequences via other backends
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open as video (unknown format or corrupt file)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = ClipInfo(
        path=path,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        nominal_fps=fps if 0 < fps < 1000 else 25.0,
        frame_count=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
    )
    return cap, info


class FileSource:
    """Frames of a video file, optionally decimated to `analysis_fps` (None: every frame).

    Frames that are not analysed are grabbed (decoded, which inter-frame codecs require)
    but never converted to BGR, which is the expensive half of reading a frame.
    """

    def __init__(self, path: Path, analysis_fps: float | None = 5.0, max_seconds: float | None = None) -> None:
        self.path = Path(path)
        self.analysis_fps = analysis_fps
        self.max_seconds = max_seconds
        cap, self.info = open_capture(self.path)
        cap.release()

    @property
    def duration_estimate_s(self) -> float:
        return self.info.frame_count / self.info.nominal_fps if self.info.frame_count else 0.0

    def __iter__(self) -> Iterator[Frame]:
        cap, info = open_capture(self.path)
        clock = StreamClock(info.nominal_fps)
        picker = Decimator(self.analysis_fps)
        yielded = 0
        try:
            while cap.grab():
                t = clock.time(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                if self.max_seconds is not None and t > self.max_seconds:
                    break
                if not picker.is_due(t):
                    continue
                ok, image = cap.retrieve()
                if not ok or image is None:
                    continue
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                elif image.shape[2] == 4:
                    image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
                yielded += 1
                picker.taken(t)
                yield Frame(index=clock.index, time_s=round(t, 6), image=image)
        finally:
            cap.release()
        if yielded == 0:
            raise UserError(f"{self.path}: no frame could be decoded (empty or corrupt video)")


_END = object()


def prefetched(frames: Iterable[Frame], depth: int = 4) -> Iterator[Frame]:
    """Decode in a background thread so decoding overlaps with inference.

    OpenCV and onnxruntime release the GIL, so one reader thread is enough to keep a core
    busy decoding while the other runs the detector. The bounded queue keeps memory flat;
    an exception in the reader (a corrupt file) is re-raised in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        q.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    reader = threading.Thread(target=read, name="frame-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=2.0)


# -- live sources (PyAV) ----------------------------------------------------------------------
# Due frames a live source keeps for the analysis (oldest first). More than one: under overload a
# camera decodes a few frames after each keyframe, passes over the rest of that group of pictures
# and is analysed from its queue in the meantime. With one slot, the cameras' keyframes coming at
# about the same time (cameras started together, same GOP) made every camera's second frame find
# its first still waiting, so all passed over at once and the analysis sat idle until the next
# keyframes (bench_site, 24 cameras: 115% CPU of 200). Three 720p BGR frames are 8 MB.
QUEUE_DEPTH = 3
# A stream whose keyframes come further apart than this (some cameras send one every 10 s) is
# never passed over: the gap in its analysis would be a whole group of pictures long; its reader
# goes on decoding what it needs, as before.
PASS_OVER_MAX_GOP_S = 4.0


class LiveSource:
    """A camera: a reader thread decodes its stream and queues the frames due for analysis.

    A due frame that finds the queue full (`QUEUE_DEPTH`) pushes out the oldest, counted as
    dropped, and the source is then `behind`: the reader drains packets undecoded until the next
    keyframe (`_pass_over`), counting each analysis tick it passes as dropped. With `drop=False`
    (a file replayed as fast as it can be analysed) the reader waits for room instead.
    The counters are cumulative and read by the worker's stats; `cpu_s` is the reader thread's
    own CPU time (decoding is most of a camera's cost besides the detector).
    """

    kind = "live"

    def __init__(self, analysis_fps: float, stop: threading.Event | None = None, drop: bool = True) -> None:
        self.analysis_fps = analysis_fps
        self.stop = stop or threading.Event()
        self.drop = drop
        self.state = CameraState.STARTING
        self.frames_read = 0  # frames decoded (frames skipped undecoded are not counted)
        self.frames_dropped = 0  # due frames pushed out of the queue untaken, or passed over undecoded
        self.frames_passed_over = 0  # frames (packets) drained undecoded while behind (overload)
        self.reconnects = 0
        self.connects = 0
        self.last_error: str | None = None
        self.error: BaseException | None = None  # what ended the reader, raised to the consumer
        self.cpu_s = 0.0
        self._closing = threading.Event()
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._depth = QUEUE_DEPTH if drop else 1
        self._gen = 0
        self._ended = False
        self._listener: Callable[[], None] | None = None
        self.behind = False  # the reader drains packets undecoded until the next keyframe
        self._key_t: float | None = None  # video time of the last keyframe
        self._gop_s: float | None = None  # time between the last two keyframes

    # -- reader side -----------------------------------------------------------------------
    def _read(self, gen: int) -> None:
        """The reader thread's body: decode, call `_offer` with each due frame, until `_halted`."""
        raise NotImplementedError

    def _halted(self, gen: int) -> bool:
        return self.stop.is_set() or self._closing.is_set() or gen != self._gen

    def _offer(self, frame: Frame, gen: int) -> None:
        with self._cond:
            if len(self._queue) >= self._depth:
                if self.drop:
                    self._queue.popleft()
                    self.frames_dropped += 1
                    gop = self._gop_s
                    if gop is not None and gop <= PASS_OVER_MAX_GOP_S:
                        self.behind = True
                else:
                    while len(self._queue) >= self._depth and not self._halted(gen):
                        self._cond.wait(0.1)
            self._queue.append(frame)
            self._cond.notify_all()
        self.cpu_s = time.thread_time()
        if self._listener is not None:
            self._listener()

    def _pass_over(self, packet, t: float | None, picker: Decimator) -> bool:
        """Called with every packet before it is decoded: True if it is to be drained undecoded
        (the source is `behind`). A keyframe ends that (a decoder needs nothing before it); an
        analysis tick at `t` (the packet's video time, None if unknown) passed over undecoded is
        a frame dropped from the analysis rate."""
        if packet.is_keyframe:
            if t is not None:
                if self._key_t is not None and t > self._key_t:
                    self._gop_s = t - self._key_t
                self._key_t = t
            self.behind = False
            return False
        if not self.behind or not packet.size:  # an empty packet flushes the decoder at the end
            return False
        self.frames_passed_over += 1
        if t is not None and picker.is_due(t):
            picker.taken(t)
            self.frames_dropped += 1
        return True

    def _sleep(self, seconds: float, gen: int) -> bool:
        """Wait unless stopped or superseded; True when the reader should go on."""
        deadline = time.monotonic() + seconds
        while not self._halted(gen):
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self._closing.wait(min(left, 0.25))  # `stop` is seen within a quarter second
        return False

    def _guarded(self, gen: int) -> None:
        try:
            self._read(gen)
        except BaseException as e:  # raised to the consumer (UserError: a configuration error)
            if gen == self._gen:
                self.error = e
                self.last_error = str(e)
        finally:
            if gen == self._gen:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()
                if self._listener is not None:
                    self._listener()

    def _start_reader(self) -> None:
        self._gen += 1
        threading.Thread(
            target=self._guarded, args=(self._gen,), name=f"{self.kind}-reader-{self._gen}", daemon=True
        ).start()

    # -- consumer side ---------------------------------------------------------------------
    def start(self, listener: Callable[[], None] | None = None) -> None:
        """Start reading; `listener()` is called (from the reader thread) when a frame is waiting
        or the reader has ended."""
        self._listener = listener
        self._start_reader()

    def take(self) -> Frame | None:
        """The oldest frame waiting for analysis, or None."""
        with self._cond:
            frame = self._queue.popleft() if self._queue else None
            if frame is not None:
                self._cond.notify_all()  # a reader waiting for room (drop=False) goes on
        return frame

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    @property
    def ended(self) -> bool:
        """The reader has stopped for good (end of a file, or an error) and nothing is pending."""
        return self._ended and not self._queue

    def watch(self) -> None:
        """Called now and then by the consumer: a source may check its reader's health here."""

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        if self.state not in (CameraState.FINISHED, CameraState.ERROR):
            self.state = CameraState.STOPPED

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        try:
            while not self.stop.is_set():
                with self._cond:
                    if not self._queue and not self._ended:
                        self._cond.wait(0.25)
                frame = self.take()
                if frame is not None:
                    yield frame
                elif self._ended:
                    if self.error is not None:
                        raise self.error
                    return
                else:
                    self.watch()
        finally:
            self.close()


def open_video(url: str, **kwargs):
    """(container, video stream) of a file or URL through PyAV, decoding on the calling thread."""
    import av

    container = av.open(url, **kwargs)
    if not container.streams.video:
        container.close()
        raise UserError(f"{url}: no video stream")
    stream = container.streams.video[0]
    # One thread: a site decodes many cameras at once, so the parallelism is across cameras;
    # FFmpeg's own threads would only add buffers (memory) and hand-offs.
    stream.codec_context.thread_count = 1
    return container, stream


def nominal_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return fps if 0 < fps < 1000 else 25.0


def to_bgr(frame) -> object:
    # SWS_BICUBIC is what OpenCV's FFmpeg backend asks swscale for: the same BGR pixels.
    return frame.to_ndarray(format="bgr24", interpolation="BICUBIC")


class LiveFile(LiveSource):
    """A video file played like a camera: at the pace of its own timestamps (`realtime`), or as
    fast as the consumer takes frames (no frame dropped); looped forever with `loop`, video time
    going on across loops so the tracker and the act recogniser see one long stream."""

    kind = "file"

    def __init__(
        self,
        path: Path,
        analysis_fps: float,
        loop: bool = False,
        realtime: bool = True,
        stop: threading.Event | None = None,
        skip_undue: bool = True,
    ) -> None:
        super().__init__(analysis_fps, stop, drop=realtime)
        self.path = Path(path)
        check_file(self.path)
        self.loop, self.realtime, self.skip_undue = loop, realtime, skip_undue

    def _read(self, gen: int) -> None:
        picker = Decimator(self.analysis_fps)
        start = time.monotonic()
        offset_t, offset_i = 0.0, 0
        self.connects = 1
        self.state = CameraState.RUNNING
        while not self._halted(gen):
            last = self._play(gen, picker, start, offset_t, offset_i)
            if last is None:
                if self._halted(gen):
                    return
                raise UserError(f"{self.path}: no frame could be decoded (empty or corrupt video)")
            if not self.loop:
                self.state = CameraState.FINISHED
                return
            offset_t, offset_i = last[0], last[1]

    def _play(
        self, gen: int, picker: Decimator, start: float, offset_t: float, offset_i: int
    ) -> tuple[float, int] | None:
        """One pass over the file; (video time, index) where the next pass starts, None if no frame."""
        import av

        try:
            container, stream = open_video(str(self.path))
        except av.error.FFmpegError as e:
            raise UserError(f"{self.path}: cannot open as video ({e.strerror or e})") from None
        ctx = stream.codec_context
        tb = float(stream.time_base) if stream.time_base else None
        clock = StreamClock(nominal_fps(stream))
        # Skipping needs presentation times that packets already carry: AVI has none for
        # B-frames (its "pts" are in decode order), and a stream whose decoded times go backwards
        # is not trusted either (checked as it plays).
        avi = "avi" in container.format.name.split(",")
        by_pts = tb is not None and not avi  # a frame's index from its place among the packets' pts
        may_skip = self.skip_undue and by_pts
        last_pts: int | None = None
        skipping = False
        seen: deque[float] = deque(maxlen=32)  # recent packet times, to find a packet's predecessor
        order: list[int] = []  # every packet's pts: a frame's index counts the frames skipped before it
        first_packet: float | None = None
        got = 0
        end = 0.0  # the latest presentation time among the packets, decoded or passed over
        try:
            for packet in container.demux(stream):
                if self._halted(gen):
                    return None
                when = packet.dts if packet.dts is not None else packet.pts
                if self.realtime and when is not None and tb:
                    first_packet = when * tb if first_packet is None else first_packet
                    # A camera sends each packet at its time: decoding is spread the same way.
                    if not self._sleep(start + offset_t + when * tb - first_packet - time.monotonic(), gen):
                        return None
                if packet.pts is not None:
                    bisect.insort(order, packet.pts)
                skip = False
                t = (
                    None
                    if packet.pts is None or clock.origin is None or not by_pts
                    else offset_t + packet.pts * tb - clock.origin
                )
                if t is not None:
                    end = max(end, t - offset_t)
                if by_pts and self.drop and self._pass_over(packet, t, picker):
                    continue
                if may_skip and t is not None:
                    previous = max((x for x in seen if x < t), default=None)
                    skip = not picker.may_be_due(t, previous)
                    seen.append(t)
                if skip != skipping:  # only frames nothing refers to are skipped, never a reference
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                try:
                    frames = ctx.decode(packet)
                except av.error.InvalidDataError:
                    continue  # a damaged packet: FFmpeg conceals what it can in later frames
                for frame in frames:
                    if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                        may_skip = False
                    last_pts = frame.pts
                    # AVI: decode order is the only order its timestamps know (as OpenCV reads them).
                    pos = frame.dts * tb if avi and frame.dts is not None else frame.time
                    t = offset_t + clock.time(pos)
                    self.frames_read += 1
                    got += 1
                    if not picker.is_due(t):
                        continue
                    picker.taken(t)
                    index = bisect.bisect_left(order, frame.pts) if by_pts and frame.pts is not None else clock.index
                    image = to_bgr(frame)
                    self._offer(
                        Frame(index=offset_i + index, time_s=round(t, 6), image=image, received=time.time()), gen
                    )
                self.cpu_s = time.thread_time()
        finally:
            container.close()
        if not got:
            return None
        # The next pass starts after this one's last frame, decoded or not (a pass that ended while
        # behind has not decoded its last frames).
        return offset_t + max(clock.last, end) + clock.step, offset_i + max(clock.index + 1, len(order))
