"""Resource use of a live site: `detector run` with 4 file-backed looping cameras.

    DETECTOR_MODEL_DIR=... DETECTOR_SAMPLE_DIR=... .venv/bin/python benchmarks/bench_site.py [--seconds 60]

The cameras replay sample clips in real time (like live cameras) at the analysis rate. After a
warm-up (every camera has analysed frames) it measures, over the window: CPU % (100 = one core)
and RSS/PSS of the supervisor and each worker (from /proc, Linux only; no psutil needed), analysed and dropped frames
per second per camera and mean detector latency (from the /metrics endpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

CAMERAS = [
    ("sidewalk", "aboda_video4"),
    ("plaza", "pets2009_vtest_480x360"),
    ("layby", "flytip_truck_bag_10"),
    ("porch", "porch_bottle_drop_bad2"),
]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def pss_mb(pid: int) -> float:
    """Proportional set size: shared library pages split between the processes that map them,
    so the PSS of all processes adds up (RSS counts shared pages once per process)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def name_of(pid: int) -> str:
    cmd = b" ".join(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    return "worker" if b"spawn_main" in cmd else "resource_tracker" if b"resource_tracker" in cmd else "other"


def scrape(port: int) -> dict[str, dict[str, float]]:
    """{camera: {sample name: value}} from /metrics (histogram buckets left out)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "camera" in sample.labels and "le" not in sample.labels:
                out.setdefault(sample.labels["camera"], {})[sample.name] = sample.value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window (after warm-up)")
    ap.add_argument("--fps", type=float, default=5.0, help="analysis fps per camera")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_site_"))
    port = free_port()
    site = {
        "site": "bench",
        "cameras": [{"name": n, "url": clip, "loop": True, "analysis_fps": args.fps} for n, clip in CAMERAS],
        "supervisor": {"state_log_interval_s": 30},
        "privacy": {"evidence_dir": str(work / "evidence")},
        "outbox": {"dir": str(work / "outbox"), "key_dir": str(work / "keys")},
        "metrics": {"port": port, "stale_after_s": 10},
    }
    cfg = work / "site.yaml"
    cfg.write_text(yaml.safe_dump(site))
    log = open(work / "stderr.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "run", "--config", str(cfg)], stderr=log, cwd=work, start_new_session=True
    )
    try:
        t_start = time.monotonic()
        while True:  # warm-up: every camera analysing
            time.sleep(1)
            if proc.poll() is not None:
                raise SystemExit(f"detector run exited with {proc.returncode}; see {work / 'stderr.log'}")
            try:
                m = scrape(port)
            except OSError:
                continue
            if all(m.get(n, {}).get("detector_frames_analysed_total", 0) >= 5 for n, _ in CAMERAS):
                break
            if time.monotonic() - t_start > 120:
                raise SystemExit("cameras did not start within 120 s")
        warmup = time.monotonic() - t_start
        pids = [proc.pid, *children(proc.pid)]
        m0, c0, w0 = scrape(port), {p: cpu_s(p) for p in pids}, time.monotonic()
        rss_peak: dict[int, float] = {}
        rss_sum: dict[int, float] = {}
        pss_sum: dict[int, float] = {}
        samples = 0
        while time.monotonic() - w0 < args.seconds:
            time.sleep(2)
            samples += 1
            for p in pids:
                try:
                    r, q = rss_mb(p), pss_mb(p)
                except OSError:
                    continue
                pss_sum[p] = pss_sum.get(p, 0.0) + q
                rss_peak[p] = max(rss_peak.get(p, 0.0), r)
                rss_sum[p] = rss_sum.get(p, 0.0) + r
        m1, wall = scrape(port), time.monotonic() - w0
        c1 = {}
        for p in pids:
            try:
                c1[p] = cpu_s(p)
            except OSError:
                c1[p] = c0[p]
        procs = []
        for p in pids:
            role = "supervisor" if p == proc.pid else name_of(p)
            procs.append(
                {
                    "pid": p,
                    "role": role,
                    "cpu_pct": round(100 * (c1[p] - c0[p]) / wall, 1),
                    "rss_mb_mean": round(rss_sum.get(p, 0) / max(1, samples), 1),
                    "rss_mb_peak": round(rss_peak.get(p, 0), 1),
                    "pss_mb_mean": round(pss_sum.get(p, 0) / max(1, samples), 1),
                }
            )
        cams = []
        for n, clip in CAMERAS:
            a, b = m0.get(n, {}), m1.get(n, {})
            d = lambda k: b.get(k, 0) - a.get(k, 0)  # noqa: E731
            count = d("detector_inference_seconds_count")
            cams.append(
                {
                    "camera": n,
                    "clip": clip,
                    "analysed_fps": round(d("detector_frames_analysed_total") / wall, 2),
                    "decoded_fps": round(d("detector_frames_read_total") / wall, 1),
                    "dropped": int(d("detector_frames_dropped_total")),
                    "detector_ms_mean": round(1000 * d("detector_inference_seconds_sum") / count, 1) if count else None,
                    "acts": int(d("detector_acts_total")),
                }
            )
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        stop_s = time.monotonic() - t_term
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

    total_cpu = sum(p["cpu_pct"] for p in procs)
    total_rss = sum(p["rss_mb_mean"] for p in procs)
    total_pss = sum(p["pss_mb_mean"] for p in procs)
    print(
        f"\n4-camera site, {args.fps:g} analysed fps each, {wall:.0f} s window after {warmup:.0f} s warm-up, "
        f"{os.cpu_count()} CPUs (shared machine)\n"
    )
    print(
        "| process | pid | CPU % (100 = 1 core) | RSS mean MB | RSS peak MB | PSS mean MB |\n|---|---|---|---|---|---|"
    )
    for p in procs:
        print(
            (
                f"| {p['role']} | {p['pid']} | {p['cpu_pct']} | "
                f"{p['rss_mb_mean']} | {p['rss_mb_peak']} | {p['pss_mb_mean']} |"
            )
        )
    print(f"| **total** | | **{total_cpu:.1f}** | **{total_rss:.0f}** | | **{total_pss:.0f}** |\n")
    print(
        (
            "| camera | clip | analysed fps | decoded fps | dropped | detector "
            "ms (mean) | acts |\n|---|---|---|---|---|---|---|"
        )
    )
    for c in cams:
        print(
            f"| {c['camera']} | {c['clip']} | {c['analysed_fps']} | {c['decoded_fps']} | {c['dropped']} | "
            f"{c['detector_ms_mean']} | {c['acts']} |"
        )
    print(f"\nSIGTERM -> exit code {code} in {stop_s:.1f} s; logs in {work}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "window_s": wall,
                    "warmup_s": warmup,
                    "fps": args.fps,
                    "processes": procs,
                    "total_cpu_pct": total_cpu,
                    "total_rss_mb": total_rss,
                    "total_pss_mb": total_pss,
                    "cameras": cams,
                    "stop_s": stop_s,
                    "exit_code": code,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
