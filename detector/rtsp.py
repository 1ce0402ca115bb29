"""Live RTSP frames that survive camera drop-outs: read in a thread, reconnect forever.

- Transport is TCP (interleaved RTSP): UDP loses packets on busy links and smears frames.
  Streams are opened with PyAV (FFmpeg) with an open and a read timeout, so a camera that goes
  silent ends a read instead of blocking it forever.
- The reader thread (a `LiveSource`) decodes every packet the stream needs (H.264 references),
  skips the frames nothing refers to while none is due, converts to BGR only the frames due at
  the analysis rate, and keeps the last few: a slow pipeline skips frames (counted as
  dropped) instead of falling behind the live stream.
- When the analysis falls behind, the reader drains packets undecoded until the next keyframe
  (`LiveSource._pass_over`).
- Errors, end of stream, or no frame for `stall_s` mean reconnect, after a capped
  exponential backoff, forever. A read stuck inside FFmpeg cannot block the worker: `watch()`
  abandons that reader thread and starts a new one.
- Timestamps are monotonic seconds since the source started (live streams have no
  meaningful container time, and the stream restarts at 0 after a reconnect).
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from detector.config import RtspConfig
from detector.sources import Decimator, LiveSource, nominal_fps, open_video, to_bgr
from detector.values import CameraState, Frame

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The URL without credentials, for logs and health output. The credentials end at the
    last "@" of the authority (a password may hold "@"); one in the path is no credential."""
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"***@{host}")) if at else url


class RtspSource(LiveSource):
    """Frames at `analysis_fps` until `stop` is set; never ends on its own."""

    kind = "rtsp"

    def __init__(
        self, url: str, analysis_fps: float, cfg: RtspConfig | None = None, stop: threading.Event | None = None
    ) -> None:
        super().__init__(analysis_fps, stop, drop=True)
        self.url = url
        self.cfg = cfg or RtspConfig()
        self.state = CameraState.CONNECTING
        self.last_frame_mono: float | None = None
        self._t0 = time.monotonic()
        self._picker = Decimator(analysis_fps)

    def _open(self):
        import av

        try:
            return open_video(
                self.url,
                options={"rtsp_transport": "tcp"},
                timeout=(self.cfg.open_timeout_s, self.cfg.read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as e:
            self.last_error = f"cannot open stream ({getattr(e, 'strerror', None) or e})"
            return None

    def _read(self, gen: int) -> None:
        backoff = self.cfg.backoff_initial_s
        while not self._halted(gen):
            self.state = CameraState.CONNECTING
            opened = self._open()
            if opened is None:
                self.state = CameraState.BACKOFF
                log.warning("%s: %s; retrying in %.1f s", redact_url(self.url), self.last_error, backoff)
                if not self._sleep(backoff, gen):
                    break
                backoff = min(backoff * 2, self.cfg.backoff_max_s)
                continue
            got = self._stream(gen, *opened)
            if self._halted(gen):
                break
            if got:
                backoff = self.cfg.backoff_initial_s  # the stream worked: start the backoff over
            self.reconnects += 1
            self.state = CameraState.RECONNECTING
            log.warning("%s: stream lost (%s); reconnecting in %.1f s", redact_url(self.url), self.last_error, backoff)
            if not self._sleep(backoff, gen):
                break
            backoff = min(backoff * 2, self.cfg.backoff_max_s)

    def _stream(self, gen: int, container, stream) -> int:
        """Decode one connection until it fails, ends or we are superseded; frames decoded."""
        import av

        self.connects += 1
        self.state = CameraState.RUNNING
        self.last_frame_mono = time.monotonic()  # the stall clock starts at the open
        ctx, picker = stream.codec_context, self._picker
        half_frame = 0.5 / nominal_fps(stream)
        skipping, got = False, 0
        try:
            for packet in container.demux(stream):
                if self._halted(gen):
                    break
                if self._pass_over(packet, time.monotonic() - self._t0, picker):
                    continue  # behind the analysis: drained undecoded until the next keyframe
                # A frame decoded now is at about now: one nothing refers to is skipped while
                # even the next frame would come before the next analysis is due.
                skip = time.monotonic() - self._t0 + half_frame < picker.next_due - half_frame
                if skip != skipping:
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                for frame in ctx.decode(packet):
                    now = time.monotonic()
                    self.frames_read += 1
                    self.last_frame_mono = now
                    got += 1
                    t = now - self._t0
                    if not picker.is_due(t):
                        continue
                    picker.taken(t)
                    image = to_bgr(frame)
                    self._offer(
                        Frame(index=self.frames_read - 1, time_s=round(t, 6), image=image, received=time.time()), gen
                    )
                self.cpu_s = time.thread_time()
            self.last_error = "stream ended"
        except (av.error.FFmpegError, OSError) as e:
            self.last_error = f"read failed ({getattr(e, 'strerror', None) or e})"
        finally:
            container.close()
        return got

    def watch(self) -> None:
        last = self.last_frame_mono
        if self.state == CameraState.RUNNING and last is not None and time.monotonic() - last > self.cfg.stall_s:
            # The reader is stuck in a read: abandon it (it exits when the read returns).
            self.last_error = f"no frame for {self.cfg.stall_s:g} s"
            log.warning("%s: %s; reconnecting", redact_url(self.url), self.last_error)
            self.reconnects += 1
            self.state = CameraState.RECONNECTING
            self.last_frame_mono = None
            self._start_reader()
