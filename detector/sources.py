"""Frame sources: decoded frames with the stream's own timestamps, decimated to an analysis rate.

Timestamps come from the container (OpenCV's CAP_PROP_POS_MSEC, i.e. the packet pts)
rather than `index / CAP_PROP_FPS`: some files report the wrong fps (the shared
`crowd_overhead_vtest.avi` says 50 fps for 25 fps content). They are shifted so that the
first frame is at 0 s and repaired where a container gives none or runs backwards
(AVI B-frames, the last packet): such a frame gets the previous time plus one nominal
frame interval.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2

from detector.protocol.errors import UserError
from detector.values import Frame


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    nominal_fps: float  # what the container header claims; used only to repair timestamps
    frame_count: int  # the header's count; may be wrong


def open_capture(path: Path) -> tuple[cv2.VideoCapture, ClipInfo]:
    if not path.exists():
        raise UserError(f"clip not found: {path}")
    if not path.is_file():
        raise UserError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
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
        step = 1.0 / info.nominal_fps
        interval = 1.0 / self.analysis_fps if self.analysis_fps else 0.0
        next_due = 0.0
        origin: float | None = None
        last_t = -step
        index = -1
        yielded = 0
        try:
            while cap.grab():
                index += 1
                pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if origin is None:
                    origin = pos
                t = pos - origin
                if not (t > last_t) or (index > 0 and pos == 0.0):
                    t = last_t + step
                last_t = t
                if self.max_seconds is not None and t > self.max_seconds:
                    break
                if t + 1e-6 < next_due:
                    continue
                ok, image = cap.retrieve()
                if not ok or image is None:
                    continue
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                elif image.shape[2] == 4:
                    image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
                yielded += 1
                # Catch up in whole intervals so that a late frame does not shift the grid.
                next_due = next_due + interval * max(1, int((t - next_due) / interval) + 1) if interval else 0.0
                yield Frame(index=index, time_s=round(t, 6), image=image)
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
