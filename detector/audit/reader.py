"""Frames of one stretch of a recording, with the times and indices the whole file would give.

A segment is read from the middle of a long file, so it must reproduce what reading the file
from its first frame would have produced for the same frames: the same video time (the
stream's own timestamps, shifted so that the file's first frame is at 0 s), the same frame
index, and the same decimation to the analysis rate. That is what makes a file give the same
acts whether it is processed whole or in segments.

- Time origin: the pts of the file's first frame (as `detector.sources.FileSource`), read
  once by grabbing that frame.
- Seeking: OpenCV's FFmpeg backend seeks to the keyframe before the target and decodes up to
  it, so the pixels after a seek equal those of a sequential read (checked on MPEG-4,
  H.264 in MP4 and AVI). Where a seek lands after the wanted time, or a container cannot seek
  (GIF, image sequences), the stretch is reached by grabbing from the start instead: slower,
  never different.
- Decimation: analysed frames sit on a grid of whole analysis intervals counted from 0 s (an
  integer counter, so no float drift between a segment and the whole file): a frame is
  analysed when it is the first at or after a grid point, as FileSource does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2

from detector.protocol.errors import UserError
from detector.sources import open_capture
from detector.values import Frame

_TOL = 1e-6  # seconds: container times are rounded to microseconds; a frame this early still counts


class SegmentSource:
    """Analysed frames with `start_s <= time < end_s` (end None: to the end of the file)."""

    def __init__(self, path: Path, analysis_fps: float, start_s: float = 0.0, end_s: float | None = None) -> None:
        self.path = Path(path)
        self.interval = 1.0 / analysis_fps
        self.start_s = start_s
        self.end_s = end_s
        self.seeked = False  # whether the last iteration reached its start by seeking

    def __iter__(self) -> Iterator[Frame]:
        cap, info = open_capture(self.path)
        try:
            if not cap.grab():
                raise UserError(f"{self.path}: no frame could be decoded (empty or corrupt video)")
            origin = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            step = 1.0 / info.nominal_fps
            first = (0, 0.0)  # index and time of the frame the capture holds now
            if self.start_s > step:
                landed = self._seek(cap, origin, step)
                if landed is None:  # cannot seek here: read up to the start from the beginning
                    cap.release()
                    cap, info = open_capture(self.path)
                    cap.grab()
                else:
                    first = landed
            yield from self._frames(cap, origin, step, *first)
        finally:
            cap.release()

    def _seek(self, cap: cv2.VideoCapture, origin: float, step: float) -> tuple[int, float] | None:
        """Seek to just before `start_s`; (index, time) of the frame landed on, or None if the
        landing cannot be trusted (then nothing at or after the start has been skipped)."""
        target = origin + self.start_s - 2 * step - 1.0  # some containers land a frame or two late
        if not cap.set(cv2.CAP_PROP_POS_MSEC, target * 1000.0) or not cap.grab():
            return None
        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        index = int(round(cap.get(cv2.CAP_PROP_POS_FRAMES))) - 1
        t = pos - origin
        # A landing after the start may have skipped a frame the whole file analyses; one at
        # 0 s is a container without times there. Either way: read from the beginning.
        if index <= 0 or pos <= 0.0 or t > self.start_s - _TOL:
            return None
        self.seeked = True
        return index, t

    def _frames(self, cap: cv2.VideoCapture, origin: float, step: float, index: int, t: float) -> Iterator[Frame]:
        """From the frame the capture holds (at `index`, time `t`) on; FileSource's timestamp
        repair (a frame with no time, or one running backwards, gets the previous time plus
        one nominal frame) and the integer decimation grid."""
        k = math.ceil(self.start_s / self.interval - _TOL)  # next grid point to analyse
        last_t = t - step
        held = True  # the capture already holds the frame at `index`
        while True:
            if not held:
                if not cap.grab():
                    return
                pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                t = pos - origin
                if not (t > last_t) or pos == 0.0:
                    t = last_t + step
            held = False
            last_t = t
            this = index
            index += 1
            if t + _TOL < self.start_s:
                continue
            if self.end_s is not None and t + _TOL >= self.end_s:
                return
            if t + _TOL < k * self.interval:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            elif image.shape[2] == 4:
                image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
            # Catch up in whole intervals: the next grid point after this frame.
            k = max(k + 1, math.floor(t / self.interval + _TOL) + 1)
            yield Frame(index=this, time_s=round(t, 6), image=image)
