"""Audit throughput (issue 12): hours of video per wall hour for `detector audit` with the local
engine at 1 and 2 jobs and with Ray on this box, on the shared footage looped to at least 30
minutes; Ray's overhead against local at equal jobs; peak memory; and whether every run wrote
the same bytes. Not a test: run by hand, under the shared benchmark lock.

    flock /tmp/bench.lock env DETECTOR_MODEL_DIR=../shared/models \\
        .venv/bin/python benchmarks/bench_audit.py ../shared/footage --json out/bench_audit.json

The set: each fixed-camera clip of the footage folder, looped by copying its packets (no
re-encoding, so decoding costs what the original costs) into one Matroska file of at least
`--clip-minutes`, until the set holds `--minutes` of video. Each run is a fresh
`detector audit` process into a fresh output folder; its wall time is the process's, start-up
included (Ray's start is part of its overhead). Peak memory is the largest sum of resident
memory over the run's whole process tree (driver, workers, Ray's own processes), sampled
every 0.2 s. The machine's load average is recorded around each run: other people's work on a
shared box shows up there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# Fixed cameras only (the handheld clip is out of scope), and no GIF (cannot be stream-copied).
CLIPS = [
    "aboda_video4_cycle.mp4",
    "pets2009_vtest_480x360.avi",
    "porch_bottle_drop_bad2.mp4",
    "flytip_truck_bag_10.mp4",
    "intel_bottle-detection.mp4",
    "car_window_throw_test2.mp4",
    "cdnet_highway_treeshadows_highway.avi",
    "parkinglot_overhead_car-detection.mp4",
    "shopping_street_bags_people-walking.mp4",
    "office_lobby_fisheye_cctv.mp4",
    "traffic_cam_osd_video02.avi",
    "night_sheds_walker_night.mp4",
]
DETERMINISTIC = ("summary.json", "summary.md", "summary.html")


def loop_clip(src: Path, dest: Path, seconds: float) -> float:
    """`src` played back to back until `seconds`, by copying packets; returns the length."""
    import av

    if dest.exists():
        with av.open(str(dest)) as c:
            return c.duration / 1e6
    tmp = dest.with_suffix(".tmp.mkv")
    offset = 0.0
    with av.open(str(tmp), "w", format="matroska") as out:
        ostream = None
        while offset < seconds:
            with av.open(str(src)) as c:
                s = c.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(s)
                first = None
                end = offset
                for pkt in c.demux(s):
                    if pkt.dts is None or pkt.pts is None:
                        continue
                    first = pkt.dts if first is None else first
                    shift = round(offset / s.time_base) - first
                    pkt.pts += shift
                    pkt.dts += shift
                    end = max(end, float((pkt.pts + (pkt.duration or 0)) * s.time_base))
                    pkt.stream = ostream
                    out.mux(pkt)
                offset = end
    os.replace(tmp, dest)
    return offset


def build_set(footage: Path, folder: Path, minutes: float, clip_minutes: float) -> tuple[list[Path], float]:
    folder.mkdir(parents=True, exist_ok=True)
    files, total = [], 0.0
    while total < minutes * 60:
        for name in CLIPS:
            if total >= minutes * 60:
                break
            k = sum(f.name.startswith(Path(name).stem) for f in files)
            dest = folder / f"{Path(name).stem}-{k}.mkv"
            total += loop_clip(footage / name, dest, clip_minutes * 60)
            files.append(dest)
    return files, total


def tree_sample(root: int) -> tuple[float, dict[int, float]]:
    """Resident memory (MB) of `root` and all its descendants, and each one's CPU seconds so
    far (user + system), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * page
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(d))
        cpu[int(d)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    total, tree, todo = 0, {}, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        tree[pid] = cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total / 2**20, tree


def run_audit(files: list[Path], out: Path, engine: str, jobs: int, segment_minutes: float | None) -> dict:
    cmd = [sys.executable, "-m", "detector", "audit", *map(str, files), "--out", str(out), "--no-progress"]
    cmd += ["--engine", engine, "--jobs", str(jobs)]
    if segment_minutes:
        cmd += ["--segment-minutes", str(segment_minutes)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    cpu: dict[int, float] = {}  # pid -> CPU seconds at its last sample (a process's time only grows)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            rss, tree = tree_sample(proc.pid)
            peak = max(peak, rss)
            cpu.update(tree)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"audit failed ({engine}, {jobs} jobs): {stderr.strip()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    hours = summary["totals"]["video_hours"]
    digest = hashlib.sha256()
    for name in DETERMINISTIC:
        digest.update((out / name).read_bytes())
    for p in sorted((out / "recordings").rglob("acts.jsonl")):
        digest.update(p.read_bytes())
    return {
        "engine": engine,
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "video_hours": hours,
        "video_h_per_wall_h": round(hours * 3600 / wall, 2),
        "acts": summary["totals"]["littering"] + summary["totals"]["cleanup"],
        "peak_tree_rss_mb": round(peak),
        # CPU of the process tree (sampled every 0.2 s: a process's last 0.2 s may be missed),
        # and how many cores that kept busy on average over the run.
        "cpu_s": round(sum(cpu.values()), 1),
        "cores_busy": round(sum(cpu.values()) / wall, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "outputs_sha256": digest.hexdigest(),
        "stdout": stdout.strip(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("footage", type=Path, help="the shared footage folder")
    ap.add_argument("--work", type=Path, default=Path("out/bench_audit"), help="looped set and audit outputs")
    ap.add_argument("--minutes", type=float, default=30.0, help="video in the set (default 30)")
    ap.add_argument("--clip-minutes", type=float, default=3.0, help="each looped file at least this long")
    ap.add_argument("--segment-minutes", type=float, default=None, help="passed to detector audit")
    ap.add_argument("--runs", default="local:1,local:2,ray:2,ray:1", help="engine:jobs list, run in this order")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    files, total = build_set(args.footage, args.work / "set", args.minutes, args.clip_minutes)
    print(f"set: {len(files)} files, {total / 60:.1f} min of video", flush=True)
    results = []
    for spec in args.runs.split(","):
        engine, jobs = spec.split(":")
        out = args.work / f"{engine}-{jobs}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        r = run_audit(files, out, engine, int(jobs), args.segment_minutes)
        results.append(r)
        print(
            f"{engine:5} {jobs} job(s): {r['wall_s']:7.1f} s wall, {r['video_h_per_wall_h']:5.2f} h video per wall h, "
            f"{r['cores_busy']} cores busy, peak {r['peak_tree_rss_mb']} MB, "
            f"load {r['load_before']}->{r['load_after']}",
            flush=True,
        )
    by = {(r["engine"], r["jobs"]): r for r in results}
    report = {"set_minutes": round(total / 60, 2), "files": len(files), "runs": results}
    if ("local", 1) in by and ("local", 2) in by:
        report["speedup_2_jobs"] = round(by[("local", 1)]["wall_s"] / by[("local", 2)]["wall_s"], 3)
    for j in (1, 2):
        if ("local", j) in by and ("ray", j) in by:
            report[f"ray_overhead_{j}_jobs"] = round(by[("ray", j)]["wall_s"] / by[("local", j)]["wall_s"] - 1, 3)
    report["same_bytes"] = len({r["outputs_sha256"] for r in results}) == 1
    for k, v in report.items():
        if k != "runs":
            print(f"{k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
