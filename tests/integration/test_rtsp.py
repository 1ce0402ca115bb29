"""A camera worker against a real RTSP server (GStreamer) that is killed and restarted mid-stream."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import free_port, wait_until

from detector.config import validate_site
from detector.rtsp import redact_url

SERVER = Path(__file__).parents[1] / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _gst_rtsp_available() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True)
    if r.returncode:
        return (
            "GStreamer RTSP server not importable by /usr/bin/python3 (apt-get install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
            "gstreamer1.0-plugins-ugly gstreamer1.0-libav)"
        )
    return None


class RtspServer:
    def __init__(self, port: int, clip: Path) -> None:
        self.port, self.clip = port, clip
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        deadline = time.monotonic() + 15
        while True:  # the port may linger briefly after a kill
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER), str(self.port), str(self.clip)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            line = self.proc.stdout.readline()
            if line.strip() == "READY":
                return
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {self.proc.stderr.read()}")
            time.sleep(0.5)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rtsp_server(footage_dir):
    reason = _gst_rtsp_available()
    if reason:
        pytest.skip(reason)
    server = RtspServer(free_port(), footage_dir / "aboda_video4.avi")
    server.start()
    yield server
    server.kill()


@pytest.mark.slow
@pytest.mark.footage
def test_worker_reconnects_after_server_restart(rtsp_server, model_dir, tmp_path):
    from detector.worker import CameraWorker

    site = validate_site(
        {
            "site": "test",
            "cameras": [{"name": "gate", "url": rtsp_server.url, "analysis_fps": 5}],
            "rtsp": {
                "stall_s": 3,
                "backoff_initial_s": 0.5,
                "backoff_max_s": 2,
                "open_timeout_s": 3,
                "read_timeout_s": 2,
            },
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
            "privacy": {"evidence_dir": str(tmp_path / "evidence")},
        },
        "test",
    )
    stats, acts, stop = {}, [], threading.Event()
    worker = CameraWorker(
        site,
        site.cameras[0],
        stop,
        report=lambda s: stats.update(s=s),
        on_act=lambda a, e: acts.append((a, e)),
        report_interval_s=0.2,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: "s" in stats and stats["s"].frames_analysed >= 10, 30), stats
        first = stats["s"]
        assert first.connects == 1 and first.reconnects == 0 and first.state == "running"

        t_kill = time.monotonic()
        rtsp_server.kill()
        assert wait_until(lambda: stats["s"].reconnects >= 1, 10), "the worker did not notice the dead server"
        t_noticed = time.monotonic()
        assert stats["s"].state in ("reconnecting", "backoff", "connecting")
        frames_down = stats["s"].frames_analysed
        time.sleep(2)  # a few failed attempts while the server is away
        assert stats["s"].frames_analysed - frames_down <= 2  # nothing invented while down

        rtsp_server.start()
        t_restart = time.monotonic()
        assert wait_until(lambda: stats["s"].connects >= 2 and stats["s"].frames_analysed >= frames_down + 10, 30), (
            stats
        )
        t_back = time.monotonic()
        s = stats["s"]
        assert s.state == "running"
        print(
            f"\nRTSP drop test: loss noticed after {t_noticed - t_kill:.1f} s; frames again "
            f"{t_back - t_restart:.1f} s after the server restart; connects={s.connects} "
            f"reconnects={s.reconnects} frames_analysed={s.frames_analysed}",
            file=sys.stderr,
        )

        # acts flow after the reconnect: the restarted server plays aboda_video4 from its start, littering ~15-20 s in
        assert wait_until(lambda: any(a.kind == "littering" for a, _ in acts), 40, 0.5), (
            "no littering act after reconnect"
        )
        act, event = next((a, e) for a, e in acts if a.kind == "littering")
        assert event["data"].get("evidence_sha256")
        assert (tmp_path / "evidence" / f"{event['data']['evidence_sha256']}.jpg").exists()
        print(f"littering act {time.monotonic() - t_restart:.1f} s after the restart", file=sys.stderr)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert stats["s"].state == "stopped"


def test_unreachable_rtsp_backs_off_without_blocking(tmp_path):
    from detector.config import RtspConfig
    from detector.rtsp import RtspSource

    port = free_port()  # nothing listens here
    stop = threading.Event()
    src = RtspSource(
        f"rtsp://127.0.0.1:{port}/cam", 5, RtspConfig(backoff_initial_s=0.2, backoff_max_s=0.4, open_timeout_s=1), stop
    )
    frames = []
    t = threading.Thread(target=lambda: frames.extend(src), daemon=True)
    t.start()
    assert wait_until(lambda: src.state == "backoff" and src.last_error, 10)
    stop.set()
    t.join(5)
    assert not t.is_alive() and frames == [] and src.state == "stopped"


@pytest.mark.slow
@pytest.mark.footage
def test_stalled_stream_reconnects(rtsp_server):
    """A server that stops sending (SIGSTOP: the TCP connection stays open) is treated as lost."""
    import os
    import signal

    from detector.config import RtspConfig
    from detector.rtsp import RtspSource

    stop = threading.Event()
    src = RtspSource(
        rtsp_server.url,
        5,
        RtspConfig(stall_s=2, read_timeout_s=1.5, open_timeout_s=2, backoff_initial_s=0.3, backoff_max_s=1),
        stop,
    )
    frames = []
    t = threading.Thread(target=lambda: [frames.append(f.time_s) for f in src], daemon=True)
    t.start()
    try:
        assert wait_until(lambda: len(frames) >= 5, 20)
        os.kill(rtsp_server.proc.pid, signal.SIGSTOP)
        t_stall = time.monotonic()
        assert wait_until(lambda: src.reconnects >= 1, 10), "a silent stream was not noticed"
        t_noticed = time.monotonic()
        n = len(frames)
        os.kill(rtsp_server.proc.pid, signal.SIGCONT)
        assert wait_until(lambda: src.connects >= 2 and len(frames) >= n + 5, 20), (src.connects, len(frames))
        print(
            f"\nRTSP stall: noticed after {t_noticed - t_stall:.1f} s, frames again "
            f"{time.monotonic() - t_noticed:.1f} s later (connects={src.connects}, reconnects={src.reconnects})",
            file=sys.stderr,
        )
        assert all(b > a for a, b in zip(frames, frames[1:])), "timestamps must keep increasing"
    finally:
        os.kill(rtsp_server.proc.pid, signal.SIGCONT)
        stop.set()
        t.join(5)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("rtsp://admin:secret@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s"),
        ("rtsp://admin:p@ss@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s"),  # "@" inside the password
        ("rtsp://10.0.0.5/live@1", "rtsp://10.0.0.5/live@1"),  # "@" in the path: no credentials
        ("rtsp://10.0.0.5:554/s", "rtsp://10.0.0.5:554/s"),
    ],
)
def test_redact_url_hides_the_whole_password(url, shown):
    assert redact_url(url) == shown
