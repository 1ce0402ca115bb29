"""Robustness benchmark: the truth clips under conditions a fixed camera meets in service.

Not a test: run by hand. Each clip is re-encoded once per perturbation (time-preserving, so
the clip's truth still holds), then all variants are scored with `detector bench`:

  dimmed    lights down to 40-50% (uneven across the view) from the critical moment on
  brighter  lights up to 140-160% from the critical moment on
  knocked   the camera knocked 2.5% of the width right, 1.25% down, from the critical moment on
  noise     sensor noise, sigma 8 grey levels, every frame
  jpeg      heavy compression (JPEG quality 15) on every frame
  half      half the resolution
  third     a third of the resolution (an old CIF-class camera, or a far view: people 40-80 px tall)
  shaking   the view jitters by up to 1% of the width each frame
  hunting   auto-exposure hunting: the whole view's brightness swings by +-15% with a 6 s period
  grey      a monochrome camera (or a colour one in its night mode): no colour at all
  interlaced  an analogue camera's interlaced video, woven: every other line is from the frame
            before (combing on whatever moves)
  pumping   a low-bitrate stream's keyframe pulse: the picture is sharp at each keyframe (every
            2 s) and blurs into blocks until the next (JPEG quality 70 falling to 15)
  fps3      recorded at 3 frames per second (many CCTV recorders keep 1-6 fps), below the
            analysis rate of 5
  fps2      recorded at 2 frames per second

The critical moment is 3 s after the first truth event, when the object has just been put
down or taken but no act can have been recognised yet (negative clips: 40% into the clip).
Each generated clip is cached under the output directory by its recipe.

Besides, the failure classes met on unseen footage, each a real clip edited with its own
truth (`tests/clip_edits.py`, `SCENARIOS`):

  long_attended   the owner stands by his bag 34 s longer before walking away
  edge_occluder   part of a person (legs) standing at the bottom border, three times
  lorry_stops     a real lorry composited behind the people: drives in, stands, drives out
  putback_loop    the bag left, taken, put back and taken again

    DETECTOR_MODEL_DIR=../shared/models DETECTOR_SAMPLE_DIR=../shared/footage \\
        .venv/bin/python benchmarks/bench_robustness.py --out out/robustness

Prints one row per perturbation (TP/FP/FN/F1 over the clips) next to the untouched clips,
and writes the bench's JSON, Markdown report and timeline plot for all variants.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from detector.bench import prf
from detector.sources import Decimator, FileSource

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import clip_edits  # noqa: E402  (tests/clip_edits.py: real clips edited into the failure classes)

DEFAULT_CLIPS = [
    "aboda_video4.avi",
    "aboda_video4_cycle.mp4",
    "aboda_video4_reversed.mp4",
    "porch_bottle_drop_bad2.mp4",
    "intel_bottle-detection.mp4",
    "pets2009_vtest_480x360.avi",
    "crowd_overhead_vtest.avi",
]
# name -> (frame, time_s, critical_s, rng, previous source frame) -> frame
Perturb = Callable[[np.ndarray, float, float, np.random.Generator, np.ndarray], np.ndarray]


def _gain(frame: np.ndarray, left: float, right: float) -> np.ndarray:
    g = np.linspace(left, right, frame.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(frame * g, 0, 255).astype(np.uint8)


def _shift(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(frame, m, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def _hunting(frame: np.ndarray, t: float) -> np.ndarray:
    """Auto-exposure hunting: the whole view's gain swings by +-15% with a 6 s period."""
    gain = 1.0 + 0.15 * np.sin(2 * np.pi * t / 6.0)
    return _gain(frame, gain, gain)


def _woven(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """One field from this frame, the other from the one before (a 'weave' of interlaced video)."""
    out = frame.copy()
    out[1::2] = previous[1::2]
    return out


def _smaller(frame: np.ndarray, factor: int) -> np.ndarray:
    """The frame `factor` times smaller, to even sides (what H.264 at 4:2:0 needs)."""
    size = (frame.shape[1] // (2 * factor) * 2, frame.shape[0] // (2 * factor) * 2)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _jpeg(frame: np.ndarray, quality: int = 15) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _pumping(frame: np.ndarray, t: float) -> np.ndarray:
    """Quality 70 at each keyframe (every 2 s), falling linearly to 15 before the next."""
    phase = (t % 2.0) / 2.0
    return _jpeg(frame, round(70 - 55 * phase))


PERTURBATIONS: dict[str, Perturb] = {
    "dimmed": lambda f, t, c, r, p: _gain(f, 0.4, 0.5) if t >= c else f,
    "brighter": lambda f, t, c, r, p: _gain(f, 1.6, 1.4) if t >= c else f,
    "knocked": lambda f, t, c, r, p: _shift(f, 0.025 * f.shape[1], 0.0125 * f.shape[1]) if t >= c else f,
    "noise": lambda f, t, c, r, p: np.clip(f + r.normal(0, 8, f.shape), 0, 255).astype(np.uint8),
    "jpeg": lambda f, t, c, r, p: _jpeg(f),
    "half": lambda f, t, c, r, p: _smaller(f, 2),
    "third": lambda f, t, c, r, p: _smaller(f, 3),
    "shaking": lambda f, t, c, r, p: _shift(f, *r.uniform(-0.01, 0.01, 2) * f.shape[1]),
    "hunting": lambda f, t, c, r, p: _hunting(f, t),
    "grey": lambda f, t, c, r, p: cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
    "interlaced": lambda f, t, c, r, p: _woven(f, p),
    "pumping": lambda f, t, c, r, p: _pumping(f, t),
}


# name -> the frame rate the copy is recorded at (frames picked at that rate, the rest dropped)
RATES: dict[str, float] = {"fps3": 3.0, "fps2": 2.0, "fps1": 1.0}


def frame_size(path: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def _scaled(event: dict, src: tuple[int, int], dst: tuple[int, int]) -> dict:
    """A truth event with its box moved from `src`'s pixels into `dst`'s."""
    box = (event.get("where") or {}).get("box")
    if not box:
        return event
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    where = {**event["where"], "box": [round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)]}
    return {**event, "where": where}


def critical_s(clip: dict, duration_s: float) -> float:
    starts = [e["t_start"] for e in clip.get("events") or []]
    return min(starts) + 3.0 if starts else 0.4 * duration_s


def make_variant(src: Path, dst: Path, name: str, clip: dict) -> None:
    """Re-encode `src` with one perturbation (mp4v, same frames). Times come from the
    stream (FileSource), not the header's frame rate, which some files get wrong; the
    copy is written at the rate those times show."""
    frames = list(FileSource(src, None))
    if not frames:
        raise SystemExit(f"{src}: no frames")
    span = frames[-1].time_s - frames[0].time_s
    fps = (len(frames) - 1) / span if span > 0 else 25.0
    critical = critical_s(clip, span)
    perturb = PERTURBATIONS.get(name, lambda f, t, c, r, p: f)
    if name in RATES:
        # A recorder that keeps few frames: the first frame at or after each tick, written at
        # that rate, so every kept frame stays within one source frame of its original time.
        fps = RATES[name]
        picker = Decimator(fps)
        kept = []
        for frame in frames:
            if picker.is_due(frame.time_s):
                picker.taken(frame.time_s)
                kept.append(frame)
        frames = kept
    rng = np.random.default_rng(0)
    tmp = dst.with_suffix(".part.mp4")
    out = None
    previous = frames[0].image
    for frame in frames:
        image = perturb(frame.image, frame.time_s, critical, rng, previous)
        previous = frame.image
        if out is None:
            out = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, image.shape[1::-1])
        out.write(image)
    out.release()
    tmp.replace(dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, default=Path(os.environ.get("DETECTOR_SAMPLE_DIR", "../shared/footage")))
    ap.add_argument("--truth", type=Path, default=None, help="default: FOOTAGE/truth.yaml")
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--perturbations", nargs="+", default=[*PERTURBATIONS, *RATES], choices=[*PERTURBATIONS, *RATES])
    ap.add_argument("--scenarios", nargs="*", default=list(clip_edits.SCENARIOS), choices=list(clip_edits.SCENARIOS))
    ap.add_argument("--out", type=Path, default=Path("out/robustness"))
    ap.add_argument("--config", type=Path, default=None, help="detector config for the bench")
    args = ap.parse_args()

    truth_path = args.truth or args.footage / "truth.yaml"
    truth = yaml.safe_load(truth_path.read_text(encoding="utf-8"))
    by_file = {c["file"]: c for c in truth["clips"]}
    unknown = [c for c in args.clips if c not in by_file]
    if unknown:
        raise SystemExit(f"not in {truth_path}: {', '.join(unknown)}")
    clips_dir = args.out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)

    variants: list[dict] = []
    jobs = [(c, p) for c in args.clips for p in ["original", *args.perturbations]]
    for file, name in tqdm(jobs, desc="variants", unit="clip", disable=not sys.stderr.isatty()):
        clip = by_file[file]
        src = args.footage / file
        dst = clips_dir / f"{Path(file).stem}__{name}.{'mp4' if name != 'original' else Path(file).suffix[1:]}"
        if not dst.exists():
            if name == "original":
                dst.symlink_to(src.resolve())
            else:
                make_variant(src, dst, name, clip)
        keep = {k: v for k, v in clip.items() if k in ("events", "duration_s", "fps")}
        if name in ("half", "third"):
            # Truth boxes are in the stored frame's pixels: at a smaller size, so is the truth
            # (else every act there is "right time, wrong place" to the located score).
            keep["events"] = [_scaled(e, frame_size(src), frame_size(dst)) for e in keep.get("events") or []]
        variants.append({"file": dst.name, "perturbation": name, "source_clip": file, **keep})

    for name in tqdm(args.scenarios, desc="scenarios", unit="clip", disable=not sys.stderr.isatty()):
        dst = clips_dir / f"scenario__{name}.mp4"
        clip, events = clip_edits.SCENARIOS[name](args.footage)
        if not dst.exists():
            clip.write(dst)
        variants.append({"file": dst.name, "perturbation": f"scenario:{name}", "events": events})

    derived = args.out / "truth.yaml"
    derived.write_text(yaml.safe_dump({"clips": variants}, sort_keys=False), encoding="utf-8")
    result_json = args.out / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "detector",
        "bench",
        str(clips_dir),
        "--truth",
        str(derived),
        "--json",
        str(result_json),
    ]
    if args.config:
        cmd += ["--config", str(args.config)]
    subprocess.run(cmd, check=True)

    result = json.loads(result_json.read_text(encoding="utf-8"))
    perturbation_of = {v["file"]: v["perturbation"] for v in variants}
    rows: dict[str, list[int]] = {}
    for c in result["clips"]:
        r = rows.setdefault(perturbation_of[c["file"]], [0, 0, 0])
        for k, key in enumerate(("tp", "fp", "fn")):
            r[k] += c["located"][key]  # the headline: right time and right place
    print(f"\n{'perturbation':<24} {'TP':>3} {'FP':>3} {'FN':>3} {'F1':>5}   ({len(args.clips)} clips; located)")
    for name in ["original", *args.perturbations, *(f"scenario:{n}" for n in args.scenarios)]:
        tp, fp, fn = rows.get(name, [0, 0, 0])
        print(f"{name:<24} {tp:>3} {fp:>3} {fn:>3} {prf(tp, fp, fn)['f1']:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
