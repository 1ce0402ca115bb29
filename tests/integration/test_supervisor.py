"""`detector run` as a real process tree: crash restarts, a dead camera, metrics, health, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import free_port, wait_until

DETECTOR = str(Path(sys.executable).with_name("detector"))


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (reaped later by its parent) is not a running worker
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.footage
def test_site_runs_restarts_and_stops(footage_dir, model_dir, tmp_path):
    port = free_port()
    cfg = {
        "site": "testsite",
        "cameras": [
            {"name": "a", "url": str(footage_dir / "aboda_video4.avi"), "loop": True, "analysis_fps": 4},
            {"name": "b", "url": str(footage_dir / "pets2009_vtest_480x360.avi"), "loop": True, "analysis_fps": 4},
            {"name": "dead", "url": str(tmp_path / "no-such-clip.mp4")},
        ],
        # Two workers: a with the dead camera, b alone; a crash of a's worker must not touch b.
        "supervisor": {
            "restart_backoff_initial_s": 0.5,
            "restart_backoff_max_s": 2,
            "state_log_interval_s": 2,
            "cameras_per_process": 2,
        },
        "privacy": {"evidence_dir": str(tmp_path / "evidence")},
        "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
        "metrics": {"port": port, "stale_after_s": 5},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "stderr.log", "w+")
    proc = subprocess.Popen(
        [DETECTOR, "run", "--config", str(path)],
        stderr=log,
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    health = lambda: json.loads(get(base + "/healthz")[1])  # noqa: E731
    try:
        h = wait_until(
            lambda: (
                (h := health())["cameras"]["a"]["frames_analysed"] >= 4
                and h["cameras"]["b"]["frames_analysed"] >= 4
                and h
            ),
            60,
            0.2,
            (OSError, ValueError, KeyError),
        )
        assert h, "cameras did not start"
        # the dead camera (a configuration error) is stopped with its reason, not restarted in a
        # loop, and does not stop the others
        h = wait_until(
            lambda: (h := health())["cameras"]["dead"]["state"] == "error" and h,
            20,
            0.2,
            (OSError, ValueError, KeyError),
        )
        assert h and "clip not found" in h["cameras"]["dead"]["last_error"], health()
        assert h["cameras"]["a"]["pid"] == h["cameras"]["dead"]["pid"] != h["cameras"]["b"]["pid"]
        # a camera that cannot run is not healthy: stale once stale_after_s has passed
        h = wait_until(lambda: (h := health())["stale"] == ["dead"] and h, 10, 0.2, (OSError, ValueError, KeyError))
        assert h and h["status"] == "degraded", health()
        assert h["cameras"]["dead"]["restarts"] == 0
        log.seek(0)
        assert "camera 'dead': url: clip not found" in log.read()

        # kill -9 one worker: it comes back, the other camera is untouched
        pid_a, pid_b = h["cameras"]["a"]["pid"], h["cameras"]["b"]["pid"]
        frames_before = h["cameras"]["a"]["frames_analysed"]
        t_kill = time.monotonic()
        os.kill(pid_a, signal.SIGKILL)
        assert wait_until(lambda: health()["cameras"]["a"]["restarts"] == 1, 10, 0.2, (OSError, ValueError, KeyError))
        frames_dead = health()["cameras"]["a"]["frames_analysed"]
        assert frames_dead >= frames_before  # counters carry over a restart
        h = wait_until(
            lambda: (
                (h := health())["cameras"]["a"]["state"] == "running"
                and h["cameras"]["a"]["frames_analysed"] >= frames_dead + 4
                and h
            ),
            40,
            0.2,
            (OSError, ValueError, KeyError),
        )
        assert h, health()
        print(
            f"\nworker crash: camera a analysing again {time.monotonic() - t_kill:.1f} s after kill -9", file=sys.stderr
        )
        assert h["cameras"]["a"]["pid"] != pid_a and h["cameras"]["b"]["pid"] == pid_b
        assert h["cameras"]["b"]["restarts"] == 0 and h["cameras"]["a"]["state"] == "running"
        # the dead camera, in the killed worker too, stays stopped: its error is not retried
        assert h["cameras"]["dead"]["state"] == "error" and h["cameras"]["dead"]["restarts"] == 0
        assert not h["cameras"]["a"]["stale"] and not h["cameras"]["b"]["stale"]

        code, body = get(base + "/metrics")
        text = body.decode()
        assert code == 200
        assert 'detector_worker_restarts_total{camera="a",site="testsite"} 1.0' in text
        analysed = float(
            next(
                ln.split()[-1] for ln in text.splitlines() if ln.startswith('detector_frames_analysed_total{camera="a"')
            )
        )
        assert analysed >= frames_before + 4  # counters carry over a restart
        assert 'detector_inference_seconds_bucket{camera="b"' in text
        assert "detector_outbox_depth" in text and "detector_reconnects_total" in text

        workers = [h["cameras"][c]["pid"] for c in ("a", "b")]
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        print(f"SIGTERM: site stopped in {time.monotonic() - t_term:.1f} s", file=sys.stderr)
        assert not any(alive(p) for p in workers if p)
        log.seek(0)
        text = log.read()
        assert "camera states at exit" in text and "Traceback" not in text.split("camera states at exit")[1]
        assert (tmp_path / "outbox" / "a.db").exists() and (tmp_path / "outbox" / "b.db").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its workers (own session)
            proc.wait()
        log.close()
