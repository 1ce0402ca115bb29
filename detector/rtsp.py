"""Live RTSP frames that survive camera drop-outs: read in a thread, reconnect forever.

- Transport is TCP (interleaved RTSP): UDP loses packets on busy links and smears frames.
  OpenCV's FFmpeg backend takes the option from OPENCV_FFMPEG_CAPTURE_OPTIONS, which must be
  set before the capture opens; open and read timeouts use OpenCV's capture properties.
- A reader thread grabs every packet (H.264 needs them all) but converts to BGR only the
  frames due at the analysis rate, and keeps only the newest one: a slow pipeline skips
  frames (counted as dropped) instead of falling behind the live stream.
- Errors, end of stream, or no frame for `stall_s` mean reconnect, after a capped
  exponential backoff, forever. A read stuck inside FFmpeg cannot block the worker: the
  consumer abandons that reader thread and starts a new one.
- Timestamps are monotonic seconds since the source started (live streams have no
  meaningful container time, and the stream restarts at 0 after a reconnect).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from detector.config import RtspConfig
from detector.values import Frame

log = logging.getLogger(__name__)


def _prefer_tcp() -> None:
    opts = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    if "rtsp_transport" not in opts:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join(p for p in (opts, "rtsp_transport;tcp") if p)


def redact_url(url: str) -> str:
    """The URL without credentials, for logs and health output. The credentials end at the
    last "@" of the authority (a password may hold "@"); one in the path is no credential."""
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"***@{host}")) if at else url


class RtspSource:
    """Iterate to get frames at `analysis_fps` until `stop` is set; never ends on its own."""

    def __init__(
        self, url: str, analysis_fps: float, cfg: RtspConfig | None = None, stop: threading.Event | None = None
    ) -> None:
        self.url = url
        self.analysis_fps = analysis_fps
        self.cfg = cfg or RtspConfig()
        self.stop = stop or threading.Event()
        self.state = "connecting"  # connecting | running | reconnecting | backoff | stopped
        self.connects = 0  # successful opens
        self.reconnects = 0  # times the stream was lost (error, end, stall) and reopened
        self.frames_read = 0  # packets decoded
        self.frames_dropped = 0  # due frames replaced before the pipeline took them
        self.last_error: str | None = None
        self.last_frame_mono: float | None = None
        self._t0 = time.monotonic()
        self._gen = 0
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._next_due = 0.0

    # -- reader thread ---------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        _prefer_tcp()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.cfg.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _wait(self, seconds: float, gen: int) -> bool:
        """Sleep unless stopped or superseded; True when the reader should go on."""
        self.stop.wait(seconds)
        return not self.stop.is_set() and gen == self._gen

    def _reader(self, gen: int) -> None:
        backoff = self.cfg.backoff_initial_s
        interval = 1.0 / self.analysis_fps
        while not self.stop.is_set() and gen == self._gen:
            self.state = "connecting"
            cap = self._open()
            if not cap.isOpened():
                cap.release()
                self.last_error = "cannot open stream"
                self.state = "backoff"
                log.warning("%s: cannot open; retrying in %.1f s", redact_url(self.url), backoff)
                if not self._wait(backoff, gen):
                    break
                backoff = min(backoff * 2, self.cfg.backoff_max_s)
                continue
            self.connects += 1
            self.state = "running"
            self.last_frame_mono = time.monotonic()  # the stall clock starts at the open
            got = 0
            try:
                while not self.stop.is_set() and gen == self._gen:
                    if not cap.grab():
                        self.last_error = "read failed or stream ended"
                        break
                    now = time.monotonic()
                    self.frames_read += 1
                    self.last_frame_mono = now
                    got += 1
                    t = now - self._t0
                    if t + 1e-6 < self._next_due:
                        continue
                    ok, image = cap.retrieve()
                    if not ok or image is None:
                        continue
                    self._next_due += interval * max(1, int((t - self._next_due) / interval) + 1)
                    frame = Frame(index=self.frames_read - 1, time_s=round(t, 6), image=np.ascontiguousarray(image))
                    with self._cond:
                        if self._slot is not None:
                            self.frames_dropped += 1
                        self._slot = frame
                        self._cond.notify()
            finally:
                cap.release()
            if self.stop.is_set() or gen != self._gen:
                break
            if got:
                backoff = self.cfg.backoff_initial_s  # the stream worked: start the backoff over
            self.reconnects += 1
            self.state = "reconnecting"
            log.warning("%s: stream lost (%s); reconnecting in %.1f s", redact_url(self.url), self.last_error, backoff)
            if not self._wait(backoff, gen):
                break
            backoff = min(backoff * 2, self.cfg.backoff_max_s)

    def _start_reader(self) -> None:
        self._gen += 1
        threading.Thread(target=self._reader, args=(self._gen,), name=f"rtsp-reader-{self._gen}", daemon=True).start()

    # -- consumer ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        self._start_reader()
        try:
            while not self.stop.is_set():
                with self._cond:
                    if self._slot is None:
                        self._cond.wait(0.25)
                    frame, self._slot = self._slot, None
                if frame is not None:
                    yield frame
                    continue
                last = self.last_frame_mono
                if self.state == "running" and last is not None and time.monotonic() - last > self.cfg.stall_s:
                    # The reader is stuck in a read: abandon it (it exits when the read returns).
                    self.last_error = f"no frame for {self.cfg.stall_s:g} s"
                    log.warning("%s: %s; reconnecting", redact_url(self.url), self.last_error)
                    self.reconnects += 1
                    self.state = "reconnecting"
                    self.last_frame_mono = None
                    self._start_reader()
        finally:
            self._gen += 1  # tell the reader to leave
            self.state = "stopped"
