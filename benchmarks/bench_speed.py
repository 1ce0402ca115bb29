"""Side-by-side speed benchmark of the pipeline (issue: speed). Not a test: run by hand.

In one run, on the same clips, each measured in a fresh process (so peak memory is its own):
  (a) decode   - the floor: just reading every frame of the clip;
  (b) detect   - the detector alone on the frames the pipeline analyses (decoded beforehand);
  (c) pipeline - `detector replay` defaults (decimation, motion gating, reader thread);
  (d) naive    - the loop people write first: detector + tracker (+ recogniser) on every
                 frame, no gating, no decimation, no reader thread.
Prints real-time factors, the ratios c/a, c/(a+b), c/d, peak memory, and event F1 of (c)
and (d) from the bench scorer. `--soak-minutes N` also replays one clip looped for N
minutes of video time and reports resident-memory growth after warm-up.

    DETECTOR_MODEL_DIR=../shared/models DETECTOR_SAMPLE_DIR=../shared/footage \\
        .venv/bin/python benchmarks/bench_speed.py --soak-minutes 30 --json out/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CLIPS = ["aboda_video4.avi", "pets2009_vtest_480x360.avi", "flytip_truck_bag_10.mp4"]
MODES = ["decode", "detect", "pipeline", "naive"]


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_for(mode: str):
    from detector.config import Settings

    settings = Settings()
    if mode == "naive":
        data = settings.model_dump()
        data["source"]["analysis_fps"] = 1000.0  # every frame
        if "motion" in data:
            data["motion"]["enabled"] = False
        settings = Settings.model_validate(data)
    return settings


def measure(mode: str, clip: Path) -> dict:
    """One mode on one clip, in this process."""
    import cv2

    from detector.pipeline import Pipeline
    from detector.sources import FileSource, prefetched

    cv2.setNumThreads(1)
    acts: list = []
    frames = 0
    video_s = FileSource(clip, None).duration_estimate_s
    if mode == "decode":
        t0 = time.perf_counter()
        for frame in FileSource(clip, None):
            frames += 1
            video_s = frame.time_s
        wall = time.perf_counter() - t0
    elif mode == "detect":
        settings = settings_for("pipeline")
        pipeline = Pipeline(settings)
        images = [f.image for f in FileSource(clip, settings.source.analysis_fps)]
        t0 = time.perf_counter()
        for image in images:
            pipeline.detector.detect(image)
        wall = time.perf_counter() - t0
        frames = len(images)
    else:
        settings = settings_for(mode)
        pipeline = Pipeline(settings)
        source = FileSource(clip, settings.source.analysis_fps)
        frames_iter = prefetched(source) if mode == "pipeline" else source
        t0 = time.perf_counter()
        for frame in frames_iter:
            result = pipeline.process(frame)
            acts.extend(result.acts)
            frames += 1
            video_s = max(video_s, frame.time_s)
        wall = time.perf_counter() - t0
    return {
        "mode": mode,
        "clip": clip.name,
        "frames": frames,
        "video_s": video_s,
        "wall_s": wall,
        "rtf": video_s / wall if wall else 0.0,
        "peak_rss_mb": peak_mb(),
        "acts": [{"kind": a.kind, "t_notify": a.t_notify, "t_release": a.t_release, "box": list(a.box)} for a in acts],
    }


def soak(clip: Path, minutes: float) -> dict:
    """Replay `clip` looped (continuous video time) and sample resident memory."""
    from detector.pipeline import Pipeline
    from detector.sources import FileSource, prefetched
    from detector.values import Frame

    settings = settings_for("pipeline")
    pipeline = Pipeline(settings)
    offset, samples, t0 = 0.0, [], time.perf_counter()
    warm_up_s = min(120.0, minutes * 60 / 10)
    while offset < minutes * 60:
        last = 0.0
        for frame in prefetched(FileSource(clip, settings.source.analysis_fps)):
            t = offset + frame.time_s
            pipeline.process(Frame(frame.index, t, frame.image))
            last = frame.time_s
            if not samples or t - samples[-1][0] >= 30:
                samples.append((t, rss_mb()))
        offset += last + 1.0 / settings.source.analysis_fps
        print(f"  soak: {offset / 60:5.1f} min of video, rss {rss_mb():.0f} MB", file=sys.stderr)
    after_warm = [m for t, m in samples if t >= warm_up_s]
    return {
        "clip": clip.name,
        "video_min": offset / 60,
        "wall_s": time.perf_counter() - t0,
        "warm_up_s": warm_up_s,
        "rss_after_warm_up_mb": after_warm[0],
        "rss_end_mb": samples[-1][1],
        "rss_max_after_warm_up_mb": max(after_warm),
        "growth_mb": samples[-1][1] - after_warm[0],
        "samples": samples,
    }


def score(clip_name: str, acts: list[dict], truth_path: Path) -> dict:
    from types import SimpleNamespace

    from detector.bench import load_truth, match_acts

    truth = {c.file: c for c in load_truth(truth_path).clips}
    result = match_acts(truth[clip_name].events, [SimpleNamespace(**a) for a in acts])
    return result.total.metrics() | {"kinds": [a["kind"] for a in acts]}


def child(mode: str, clip: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(clip)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench_speed: {mode} on {clip.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--footage", type=Path, default=Path(os.environ.get("DETECTOR_SAMPLE_DIR", "../shared/footage")))
    ap.add_argument("--truth", type=Path, default=None, help="default: FOOTAGE/truth.yaml")
    ap.add_argument("--soak-minutes", type=float, default=0.0)
    ap.add_argument("--soak-clip", default="aboda_video4.avi")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "CLIP"), help=argparse.SUPPRESS)
    ap.add_argument("--child-soak", nargs=2, metavar=("CLIP", "MINUTES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return 0
    if args.child_soak:
        print(json.dumps(soak(Path(args.child_soak[0]), float(args.child_soak[1]))))
        return 0

    truth_path = args.truth or args.footage / "truth.yaml"
    rows = {}
    for name in args.clips:
        clip = args.footage / name
        for mode in MODES:
            print(f"{name}: {mode} ...", file=sys.stderr)
            rows[(name, mode)] = r = child(mode, clip)
            if mode in ("pipeline", "naive"):
                r["score"] = score(name, r["acts"], truth_path)

    print(f"\n{'clip':28} {'mode':9} {'frames':>6} {'wall s':>7} {'x real time':>11} {'peak MB':>8} {'F1':>5}")
    for (name, mode), r in rows.items():
        f1 = f"{r['score']['f1']:.2f}" if "score" in r else ""
        print(
            (
                f"{name:28} {mode:9} {r['frames']:>6} {r['wall_s']:>7.2f} "
                f"{r['rtf']:>11.1f} {r['peak_rss_mb']:>8.0f} {f1:>5}"
            )
        )
    print(f"\n{'clip':28} {'c/a (cost)':>10} {'c/(a+b)':>8} {'d/c (speed-up)':>15} {'F1 c':>5} {'F1 d':>5}")
    ratios = {}
    for name in args.clips:
        a, b, c, d = (rows[(name, m)]["wall_s"] for m in MODES)
        ratios[name] = {"c_over_a": c / a, "c_over_a_plus_b": c / (a + b), "d_over_c": d / c}
        print(
            f"{name:28} {c / a:>10.2f} {c / (a + b):>8.2f} {d / c:>15.1f} "
            f"{rows[(name, 'pipeline')]['score']['f1']:>5.2f} {rows[(name, 'naive')]['score']['f1']:>5.2f}"
        )
    result = {"rows": [r | {"key": f"{k[0]}:{k[1]}"} for k, r in rows.items()], "ratios": ratios}
    if args.soak_minutes > 0:
        print(f"\nsoak: {args.soak_clip} looped for {args.soak_minutes} min of video ...", file=sys.stderr)
        out = subprocess.run(
            [sys.executable, __file__, "--child-soak", str(args.footage / args.soak_clip), str(args.soak_minutes)],
            capture_output=False,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        s = json.loads(out.stdout.strip().splitlines()[-1])
        result["soak"] = s
        print(
            f"soak: {s['video_min']:.1f} min of video in {s['wall_s']:.0f} s; rss "
            f"after warm-up {s['rss_after_warm_up_mb']:.0f} MB, "
            f"at end {s['rss_end_mb']:.0f} MB, growth {s['growth_mb']:+.1f} "
            f"MB (max {s['rss_max_after_warm_up_mb']:.0f} MB)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
