"""A real RTSP server for the tests: serves a video file, looped forever, as H.264 over RTSP.

Run with Debian's /usr/bin/python3 (GStreamer's Python bindings bind to it, not to the venv):
    /usr/bin/python3 tests/rtsp_server.py PORT CLIP
serves rtsp://127.0.0.1:PORT/cam and prints "READY" once listening.

A decoding pipeline (filesrc ! decodebin ! appsink) feeds the served pipeline's appsrc in
real time; at the end of the clip it seeks back to the start. Looping in the feeder keeps
the served timestamps increasing, which a seek inside the served pipeline would not.
"""

from __future__ import annotations

import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = (
    "( appsrc name=src is-live=true format=time do-timestamp=false "
    "! videoconvert ! video/x-raw,format=I420 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=1500 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


class Feeder:
    """Decodes the clip and pushes its frames into an appsrc at the clip's frame rate, looping."""

    def __init__(self, clip: str) -> None:
        self.reader = Gst.parse_launch(
            f'filesrc location="{clip}" ! decodebin ! videoconvert ! video/x-raw,format=I420 '
            "! appsink name=sink sync=false max-buffers=4 drop=false"
        )
        self.sink = self.reader.get_by_name("sink")
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, appsrc) -> None:
        self.appsrc = appsrc
        self.reader.set_state(Gst.State.PLAYING)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n, t0, caps_set = 0, time.monotonic(), False
        while not self.stop.is_set():
            sample = self.sink.emit("try-pull-sample", Gst.SECOND)
            if sample is None:
                if self.sink.get_property("eos"):  # end of clip: loop
                    self.reader.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
                continue
            caps = sample.get_caps()
            if not caps_set:
                s = caps.get_structure(0)
                ok, num, den = s.get_fraction("framerate")
                self.fps = num / den if ok and num > 0 and den > 0 else 25.0
                self.appsrc.set_property("caps", caps)
                caps_set = True
            buf = sample.get_buffer().copy()
            dur = int(Gst.SECOND / self.fps)
            buf.pts, buf.dts, buf.duration = n * dur, n * dur, dur
            if self.appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                break
            n += 1
            delay = t0 + n / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.reader.set_state(Gst.State.NULL)


def main() -> int:
    port, clip = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    feeders: list[Feeder] = []

    def on_configure(_factory, media) -> None:
        feeder = Feeder(clip)
        feeders.append(feeder)
        feeder.start(media.get_element().get_by_name("src"))
        media.connect("unprepared", lambda _m: feeder.stop.set())

    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", file=sys.stderr, flush=True)
        return 1
    print("READY", flush=True)
    try:
        GLib.MainLoop().run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
