"""Edge density: N live cameras on one box (`detector run`), measured from outside.

    DETECTOR_MODEL_DIR=... DETECTOR_SAMPLE_DIR=... flock /tmp/bench.lock \\
        .venv/bin/python benchmarks/bench_site.py --cameras 16 --seconds 120 --json out/site16.json

Sources. Each camera plays its own H.264 file made from the shared clips, like an IP camera's
main stream: every frame scaled to fit 1280x720 (aspect kept, black bars), resampled to 25 fps
(clips already at 25-30 fps keep their rate), and encoded with libx264 through PyAV: preset
veryfast, Main profile, 2 s GOP, 2 Mbit/s (VBV 4 Mbit), and x264's default GOP structure (3
B-frames, B-pyramid) unless `--bframes 0` (I and P frames only, as many cameras send). Camera i
plays clip i mod 13; cameras past the 13th get the same clip started at another point (a
rotation), so no two cameras show the same picture at the same time. One loop of each clip is
encoded, then its packets are concatenated (remuxed, not re-encoded) into a file long enough for
the whole run, so that each camera's stream is one plain file a single-camera `detector replay`
can check. The files are kept in ~/.cache/detector/bench_site (never in the repository).

The site runs the cameras at real-time pace (`realtime: true`), each analysed at `--fps` (5), with
the full pipeline, the outbox and evidence snapshots on (the defaults). After a warm-up (every
camera has analysed frames) it measures over `--seconds`:
- CPU: CPU-seconds per second of the site's own processes (supervisor and workers, from
  /proc/PID/stat), 100 = one core; per camera from the worker's own per-camera CPU counter
  (decoder thread plus its share of analysis), or its process when it has one to itself;
- PSS (proportional set size, from /proc/PID/smaps_rollup: shared pages split between the
  processes mapping them, so the sum is the site's real footprint), mean over the window; a
  camera's share is its process's PSS divided by the cameras in that process;
- analysed fps and frames dropped from the analysis rate (the worker's counter, or the shortfall
  against fps x window when a paced camera falls behind instead); frames decoded, and frames
  passed over undecoded by a camera the analysis is behind (up to its next keyframe);
- detector latency p50/p99 and act latency p50/p99 (frame arrival to event committed in the
  outbox) from the /metrics histograms (interpolated within buckets);
- acts_equal: the camera's events in its outbox equal the acts of `detector replay` on the same
  file (same kind, object, box, release and notify times) up to the video time the camera had
  reached when it was stopped; events_lost counts replay acts with no live act of the same kind
  within the IWDD window (notify between 5 s before and 10 s after) touching its box.
It also reports how busy the rest of the machine was (CPU of everything else, load average).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

# Fixed-camera clips, busy and quiet, with and without acts (the handheld clip and the tiny ones
# are left out). The first four are the old 4-camera bench.
CLIPS = [
    "aboda_video4_cycle.mp4",
    "pets2009_vtest_480x360.avi",
    "flytip_truck_bag_10.mp4",
    "porch_bottle_drop_bad2.mp4",
    "intel_bottle-detection.mp4",
    "shopping_street_bags_people-walking.mp4",
    "parkinglot_overhead_car-detection.mp4",
    "office_lobby_fisheye_cctv.mp4",
    "traffic_cam_osd_video02.avi",
    "night_sheds_walker_night.mp4",
    "cdnet_highway_treeshadows_highway.avi",
    "car_window_throw_test2.mp4",
    "crowd_overhead_vtest.avi",
]
WIDTH, HEIGHT = 1280, 720
TICK = os.sysconf("SC_CLK_TCK")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "detector" / "bench_site"


# -- sources ---------------------------------------------------------------------------------
def _fit(image, cv2, np):
    h, w = image.shape[:2]
    s = min(WIDTH / w, HEIGHT / h)
    nw, nh = round(w * s), round(h * s)
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    x0, y0 = (WIDTH - nw) // 2, (HEIGHT - nh) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas


def encode_loop(clip: Path, out: Path, phase: int, bframes: int) -> tuple[float, int]:
    """One loop of `clip` as 720p H.264, started `phase` fifths of the way in; (fps, frames)."""
    import av
    import cv2
    import numpy as np

    from detector.sources import FileSource

    frames = list(FileSource(clip, None))  # the stream's own (repaired) timestamps
    times = [f.time_s for f in frames]
    duration = times[-1] + (times[-1] - times[0]) / max(1, len(times) - 1)
    native = (len(times) - 1) / times[-1] if times[-1] > 0 else 25.0
    fps = round(native, 2) if 25 <= native <= 30.5 else 25.0
    n = max(1, int(duration * fps))
    rate = Fraction(fps).limit_denominator(1001)
    tmp = out.with_suffix(".part.mp4")
    container = av.open(str(tmp), "w")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    gop = str(round(2 * fps))
    stream.codec_context.options = {
        "preset": "veryfast",
        "profile": "main",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": "0",  # a fixed GOP, as cameras send
        "bf": str(bframes),
        "b": "2M",
        "maxrate": "2M",
        "bufsize": "4M",
    }
    start = phase * duration / 5
    for k in range(n):
        t = (start + k / fps) % duration
        j = max(0, bisect.bisect_right(times, t + 1e-6) - 1)  # the frame on screen at t
        frame = av.VideoFrame.from_ndarray(_fit(frames[j].image, cv2, np), format="bgr24")
        frame.pts = k
        frame.time_base = 1 / rate
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    tmp.rename(out)
    return fps, n


def concat(loop: Path, out: Path, seconds: float) -> None:
    """Repeat the packets of `loop` (each loop starts with an IDR frame) until `seconds` long."""
    import av

    src = av.open(str(loop))
    s_in = src.streams.video[0]
    packets = [p for p in src.demux(s_in) if p.dts is not None]
    tb = s_in.time_base
    step = max(p.pts for p in packets) + packets[0].duration - min(p.pts for p in packets)  # one loop, in ticks
    tmp = out.with_suffix(".part.mp4")
    dst = av.open(str(tmp), "w")
    s_out = dst.add_stream_from_template(s_in)
    loops = max(1, int(seconds / float(step * tb)) + 1)
    for k in range(loops):
        for p in packets:
            p.pts, p.dts = p.pts + (step if k else 0), p.dts + (step if k else 0)
            p.stream = s_out
            dst.mux(p)
    dst.close()
    src.close()
    tmp.rename(out)


def make_sources(n: int, footage: Path, seconds: float, bframes: int) -> list[tuple[str, Path]]:
    """(clip name, file) for each of `n` cameras, made (once) in the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = []
    for i in range(n):
        clip = CLIPS[i % len(CLIPS)]
        phase = (i // len(CLIPS)) % 5
        stem = f"{Path(clip).stem}_p{phase}_b{bframes}"
        long = CACHE / f"{stem}_{int(seconds)}s.mp4"
        wanted.append((clip, phase, CACHE / f"{stem}_loop.mp4", long))
    todo = [w for w in wanted if not w[3].exists()]
    for k, (clip, phase, loop, long) in enumerate(todo, 1):
        if not loop.exists():
            print(f"  encoding source {k}/{len(todo)}: {clip} (phase {phase}) ...", file=sys.stderr)
            encode_loop(footage / clip, loop, phase, bframes)
        concat(loop, long, seconds)
    return [(clip, long) for clip, _, _, long in wanted]


# -- /proc ----------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def machine_cpu_s() -> float:
    """CPU-seconds the whole machine has been busy (not idle, not iowait)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def role(pid: int, root: int) -> str:
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    if pid == root:
        return "supervisor"
    return "worker" if b"spawn_main" in cmd else "resource_tracker" if b"resource_tracker" in cmd else "other"


# -- metrics --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, dict]:
    """{camera: {"values": {name: v}, "hist": {family: [(le, cumulative)], family+"_sum": s}}}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            cam = s.labels.get("camera")
            if cam is None:
                continue
            c = out.setdefault(cam, {"values": {}, "hist": {}})
            if s.name.endswith("_bucket"):
                c["hist"].setdefault(family.name, []).append((float(s.labels["le"]), s.value))
            elif "state" in s.labels:
                if s.value:
                    c["values"]["state"] = s.labels["state"]
            else:
                c["values"][s.name] = s.value
    return out


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503 still carries the body
        return json.loads(e.read())


def quantile(before: list, after: list, q: float) -> float | None:
    """Prometheus-style histogram_quantile over the window (linear within the bucket)."""
    b = dict(before or [])
    buckets = sorted((le, v - b.get(le, 0.0)) for le, v in after or [])
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, prev_le, prev_c = q * buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return None


# -- acts -----------------------------------------------------------------------------------
def live_acts(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0])["data"] for r in conn.execute("SELECT body FROM events ORDER BY seq")]
    return [
        {
            "kind": d["act"],
            "object_class": d["object_class"],
            "box": d["box"],
            "t_release_ms": d["t_release_ms"],
            "t_notify_ms": d["t_notify_ms"],
        }
        for d in rows
    ]


def replay_acts(source: Path, until_s: float, work: Path) -> list[dict]:
    cfg = work / f"replay_{source.stem}.yaml"
    cfg.write_text(yaml.safe_dump({"source": {"max_seconds": round(until_s + 1.0, 3)}}))
    out = work / f"replay_{source.stem}.acts.jsonl"
    subprocess.run(
        [sys.executable, "-m", "detector", "replay", str(source), "--config", str(cfg), "--acts", str(out)],
        check=True,
        capture_output=True,
        cwd=work,
    )
    acts = []
    for line in out.read_text().splitlines():
        a = json.loads(line)
        acts.append(
            {
                "kind": a["kind"],
                "object_class": a["object_class"],
                "box": [max(0, int(v)) for v in a["box"]],
                "t_release_ms": max(0, int(round(a["t_release"] * 1000))),
                "t_notify_ms": max(0, int(round(a["t_notify"] * 1000))),
            }
        )
    return acts


def touches(a: list, b: list) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def compare(live: list[dict], solo: list[dict], until_ms: float) -> tuple[bool, int, int]:
    """(equal up to until_ms, replay acts lost live, live acts the replay does not have)."""
    live_in = [a for a in live if a["t_notify_ms"] <= until_ms]
    solo_in = [a for a in solo if a["t_notify_ms"] <= until_ms]
    key = lambda a: (a["t_notify_ms"], a["kind"], a["t_release_ms"], a["object_class"], tuple(a["box"]))  # noqa: E731
    equal = sorted(map(key, live_in)) == sorted(map(key, solo_in))
    free = list(live)  # a replay act may be matched by a live act just past the cut
    lost = 0
    for s in solo_in:
        match = next(
            (
                a
                for a in free
                if a["kind"] == s["kind"]
                and -5000 <= a["t_notify_ms"] - s["t_notify_ms"] <= 10000
                and touches(a["box"], s["box"])
            ),
            None,
        )
        if match is None:
            lost += 1
        else:
            free.remove(match)
    extra = sum(1 for a in free if a["t_notify_ms"] <= until_ms)
    return equal, lost, extra


# -- the run --------------------------------------------------------------------------------
def set_option(site: dict, assignment: str) -> None:
    key, _, value = assignment.partition("=")
    *path, last = key.split(".")
    node = site
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4, help="number of cameras (default 4)")
    ap.add_argument("--seconds", type=float, default=120.0, help="measurement window after warm-up (default 120)")
    ap.add_argument("--fps", type=float, default=5.0, help="analysis fps per camera (default 5)")
    ap.add_argument("--bframes", type=int, default=3, help="B-frames of the sources (x264 default 3; 0: I/P only)")
    ap.add_argument("--footage", type=Path, default=Path(os.environ.get("DETECTOR_SAMPLE_DIR", "../shared/footage")))
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="site option, e.g. supervisor.x=1")
    ap.add_argument("--no-replay", action="store_true", help="skip the single-camera replays (acts_equal)")
    args = ap.parse_args()
    if args.cameras < 1 or args.seconds <= 0 or args.fps <= 0:
        raise SystemExit("bench_site: --cameras, --seconds and --fps must be positive")
    if not (args.footage / CLIPS[0]).exists():
        raise SystemExit(f"bench_site: {args.footage / CLIPS[0]} not found (set DETECTOR_SAMPLE_DIR or --footage)")

    # Long enough for a slow start, the window and the shutdown, with room to spare.
    length = args.seconds + 240
    sources = make_sources(args.cameras, args.footage, length, args.bframes)
    names = [f"cam{i:02d}" for i in range(args.cameras)]
    work = Path(tempfile.mkdtemp(prefix="bench_site_"))
    port = free_port()
    site = {
        "site": "bench",
        "cameras": [
            {"name": n, "url": str(path), "loop": True, "analysis_fps": args.fps}
            for n, (_, path) in zip(names, sources, strict=True)
        ],
        "supervisor": {"state_log_interval_s": 30},
        "privacy": {"evidence_dir": str(work / "evidence")},
        "outbox": {"dir": str(work / "outbox"), "key_dir": str(work / "keys")},
        "metrics": {"port": port, "stale_after_s": 30},
    }
    for assignment in args.set:
        set_option(site, assignment)
    cfg = work / "site.yaml"
    cfg.write_text(yaml.safe_dump(site))
    log = open(work / "stderr.log", "w")
    load0 = os.getloadavg()
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
            done = sum(m.get(n, {}).get("values", {}).get("detector_frames_analysed_total", 0) >= 5 for n in names)
            if done == len(names):
                break
            if time.monotonic() - t_start > 300:
                raise SystemExit(f"only {done} of {len(names)} cameras started within 300 s; see {work}")
        time.sleep(5)  # let start-up work (model loading, first detections) settle
        warmup = time.monotonic() - t_start
        pids = descendants(proc.pid)
        m0 = scrape(port)
        c0, mc0, w0 = {p: cpu_s(p) for p in pids}, machine_cpu_s(), time.monotonic()
        pss: dict[int, list[float]] = {p: [] for p in pids}
        while time.monotonic() - w0 < args.seconds:
            time.sleep(min(5.0, max(0.1, args.seconds - (time.monotonic() - w0))))
            for p in pids:
                try:
                    pss[p].append(pss_mb(p))
                except OSError:
                    pass
            print(f"  {time.monotonic() - w0:5.0f} / {args.seconds:.0f} s", file=sys.stderr, end="\r")
        m1, h1, wall = scrape(port), health(port), time.monotonic() - w0
        mc1 = machine_cpu_s()
        c1 = {}
        for p in pids:
            try:
                c1[p] = cpu_s(p)
            except OSError:
                c1[p] = c0[p]
        load1 = os.getloadavg()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

    procs = [
        {
            "pid": p,
            "role": role(p, proc.pid) if Path(f"/proc/{p}").exists() else ("supervisor" if p == proc.pid else "worker"),
            "cpu_percent": round(100 * (c1[p] - c0[p]) / wall, 1),
            "pss_mb": round(sum(pss[p]) / len(pss[p]), 1) if pss[p] else 0.0,
        }
        for p in pids
    ]
    by_pid = {p["pid"]: p for p in procs}
    site_cpu = sum(c1[p] - c0[p] for p in pids)
    cams_of_pid: dict[int, int] = {}
    for n in names:
        pid = h1["cameras"][n].get("pid")
        cams_of_pid[pid] = cams_of_pid.get(pid, 0) + 1

    cams = []
    replays: dict[str, object] = {}
    cut: dict[str, float] = {}
    for n, (clip, path) in zip(names, sources, strict=True):
        a, b = m0.get(n, {"values": {}, "hist": {}}), m1.get(n, {"values": {}, "hist": {}})
        d = lambda k: b["values"].get(k, 0) - a["values"].get(k, 0)  # noqa: E731, B023
        analysed = d("detector_frames_analysed_total")
        shortfall = max(0, int(args.fps * wall - analysed - 1))  # 1: a frame either side of the window
        counted = int(d("detector_frames_dropped_total"))
        pid = h1["cameras"][n].get("pid")
        if "detector_camera_cpu_seconds_total" in b["values"]:
            cpu = 100 * d("detector_camera_cpu_seconds_total") / wall
        else:
            cpu = by_pid.get(pid, {}).get("cpu_percent", 0.0) / max(1, cams_of_pid.get(pid, 1))
        video_s = h1["cameras"][n].get("video_time_s")
        if video_s is None:  # no drops in a paced file camera: analysed frame k is at k / fps
            video_s = (b["values"].get("detector_frames_analysed_total", 0) - 1) / args.fps
        cut[n] = video_s
        hist = lambda fam, q: quantile(a["hist"].get(fam), b["hist"].get(fam), q)  # noqa: E731, B023
        det50, det99 = hist("detector_inference_seconds", 0.5), hist("detector_inference_seconds", 0.99)
        act50, act99 = hist("detector_act_latency_seconds", 0.5), hist("detector_act_latency_seconds", 0.99)
        cams.append(
            {
                "name": n,
                "clip": clip,
                "source": str(path),
                "analysed_fps": round(analysed / wall, 2),
                "dropped": max(counted, shortfall),
                "dropped_counted": counted,
                # frames decoded, and passed over undecoded while the analysis was behind (overload)
                "decoded": int(d("detector_frames_read_total")),
                "passed_over": int(d("detector_frames_passed_over_total")),
                "shortfall": shortfall,
                "cpu_percent": round(cpu, 1),
                "pss_mb": round(by_pid.get(pid, {}).get("pss_mb", 0.0) / max(1, cams_of_pid.get(pid, 1)), 1),
                "detector_ms_p50": None if det50 is None else round(1000 * det50, 1),
                "detector_ms_p99": None if det99 is None else round(1000 * det99, 1),
                "act_latency_s_p50": None if act50 is None else round(act50, 2),
                "act_latency_s_p99": None if act99 is None else round(act99, 2),
                "acts_window": int(d("detector_acts_total")),
                "state": h1["cameras"][n].get("state"),
            }
        )

    events_lost = None
    if not args.no_replay:
        print("\nsingle-camera replays for acts_equal ...", file=sys.stderr)
        jobs = {}
        with ThreadPoolExecutor(max_workers=2) as pool:
            for c in cams:
                jobs[c["name"]] = pool.submit(replay_acts, Path(c["source"]), cut[c["name"]], work)
            for name, job in jobs.items():
                replays[name] = job.result()
        events_lost = 0
        for c in cams:
            live = live_acts(work / "outbox" / f"{c['name']}.db")
            until = 1000 * cut[c["name"]] - 1000  # a second short of where the camera stopped
            equal, lost, extra = compare(live, replays[c["name"]], until)
            c.update(
                acts_equal=equal,
                acts_live=sum(a["t_notify_ms"] <= until for a in live),
                acts_replay=sum(a["t_notify_ms"] <= until for a in replays[c["name"]]),
                events_lost=lost,
                acts_extra=extra,
                video_s=round(cut[c["name"]], 1),
            )
            events_lost += lost

    others = max(0.0, (mc1 - mc0) - site_cpu) / wall * 100
    total = {
        "cameras": args.cameras,
        "cpu_percent": round(100 * site_cpu / wall, 1),
        "pss_mb": round(sum(p["pss_mb"] for p in procs), 1),
        "processes": len(procs),
        "dropped": sum(c["dropped"] for c in cams),
        "decoded": sum(c["decoded"] for c in cams),
        "passed_over": sum(c["passed_over"] for c in cams),
        "events_lost": events_lost,
        "acts_equal": None if events_lost is None else all(c["acts_equal"] for c in cams),
        "analysed_fps": round(sum(c["analysed_fps"] for c in cams), 2),
        "act_latency_s_p99_max": max((c["act_latency_s_p99"] or 0 for c in cams), default=None),
        "dropped_max_over_min": _spread([c["dropped"] for c in cams]),
    }
    machine = {
        "cpus": os.cpu_count(),
        "others_cpu_percent": round(others, 1),
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in load1],
    }
    print(
        f"\n{args.cameras} cameras, {args.fps:g} analysed fps each, {wall:.0f} s window after {warmup:.0f} s warm-up; "
        f"sources H.264 {WIDTH}x{HEIGHT}, {args.bframes} B-frames. Machine: {os.cpu_count()} CPUs, the rest of the "
        f"machine used {others:.0f}% CPU meanwhile, load {load0[0]:.1f} -> {load1[0]:.1f}.\n"
    )
    print("| process | pid | CPU % | PSS MB |\n|---|---|---|---|")
    for p in procs:
        print(f"| {p['role']} | {p['pid']} | {p['cpu_percent']} | {p['pss_mb']} |")
    print(f"| **total** | {len(procs)} | **{total['cpu_percent']}** | **{total['pss_mb']:.0f}** |\n")
    print(
        "| camera | clip | CPU % | PSS MB | analysed fps | dropped | detector ms p50/p99 | act latency s p50/p99 "
        "| acts (live/replay) | acts equal |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for c in cams:
        eq = "-" if "acts_equal" not in c else ("yes" if c["acts_equal"] else f"NO (lost {c['events_lost']})")
        print(
            f"| {c['name']} | {c['clip']} | {c['cpu_percent']} | {c['pss_mb']} | {c['analysed_fps']} | {c['dropped']} "
            f"| {_fmt(c['detector_ms_p50'])} / {_fmt(c['detector_ms_p99'])} "
            f"| {_fmt(c['act_latency_s_p50'])} / {_fmt(c['act_latency_s_p99'])} "
            f"| {c.get('acts_live', '-')}/{c.get('acts_replay', '-')} | {eq} |"
        )
    print(
        f"\ntotal: CPU {total['cpu_percent']}%, PSS {total['pss_mb']:.0f} MB, dropped {total['dropped']} "
        f"(max/min {total['dropped_max_over_min']}), decoded {total['decoded']}, passed over "
        f"{total['passed_over']}, events lost {total['events_lost']}, acts equal "
        f"{total['acts_equal']}; SIGTERM -> exit {code}; logs in {work}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "window_s": round(wall, 1),
            "warmup_s": round(warmup, 1),
            "fps": args.fps,
            "bframes": args.bframes,
            "set": args.set,
            "total": total,
            "machine": machine,
            "processes": procs,
            "cameras": cams,
            "exit_code": code,
            "health_end": {k: v for k, v in h1.items() if k != "cameras"},
        }
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def _spread(values: list[int]) -> float | None:
    if not values or max(values) == 0:
        return None
    return round(max(values) / max(1, min(values)), 2)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:g}"


if __name__ == "__main__":
    raise SystemExit(main())
