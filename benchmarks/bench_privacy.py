"""Privacy benchmark (issue 16): faces left in what `detector replay --video` writes.

Per clip: run the real `detector replay CLIP --video OUT.mp4`, decode the video it wrote, re-read
the source frames the replay analysed (the same `FileSource` decimation, so frame k of the output
is source frame k), then find faces in the *source* frames with checkers that share nothing with
the redactor's settings, and look at each face's patch in the output.

Checkers (every face any of them finds counts; duplicates across them are merged at IoU >= 0.3):
  - YuNet (opencv_zoo `face_detection_yunet_2023mar.onnx`, MIT) through OpenCV's own
    `cv2.FaceDetectorYN` (not the redactor's onnxruntime decoder), score >= 0.6, NMS IoU 0.3,
    on the source frame at 1x and at 2x (small faces need the larger input; 2x only for frames
    up to 1280 px long, where a face under 10 px is still a face worth a look; OpenCV 5 takes
    seconds a frame at 3840x2160);
  - dlib's HOG + linear SVM frontal face detector (Boost licence, the `dlib-bin` wheel; a
    different method and different training data), score >= 0, on the frame upsampled 2x when
    that stays under 1 megapixel, else at 1x (its cost grows with the area). Skipped, and said
    so, where dlib is not installed.
  (OpenCV's Haar cascades, the other permissive detector one would reach for, are gone from
  OpenCV 5's main modules.)

A face is *left* when its patch in the output still holds the source's detail: high-pass energy at
least `--kept` of the source's and high-pass correlation with it at least `--corr` (see
`patch_stats`), for the whole face or any half of it. Blurring takes the detail away; video
compression alone keeps most of it.

    DETECTOR_MODEL_DIR=../shared/models DETECTOR_SAMPLE_DIR=../shared/footage \\
        .venv/bin/python benchmarks/bench_privacy.py --json out/privacy.json --crops out/privacy-crops
    # replay speed with and without --video (median of N runs, one run of the script):
    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_privacy.py --speed aboda_video4.avi --repeat 3

`--crops DIR` writes, per clip, the *output* patches (never source pixels) of left faces and of a
sample of blurred ones, enlarged, as one PNG sheet to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Clips of the shared footage that show people. Left out: the derived clips (time-reversed
# copies of aboda and porch: the same frames again) and clips with no person in view (a hand
# on a shelf, an arm out of a car window, traffic only).
DEFAULT_CLIPS = [
    "aboda_video4.avi",
    "porch_bottle_drop_bad2.mp4",
    "indoor_bottle_throw_trash_0001.gif",
    "flytip_truck_bag_10.mp4",
    "hall_bottle_drop_vid.mp4",
    "pets2009_vtest_480x360.avi",
    "crowd_overhead_vtest.avi",
    "shopping_street_bags_people-walking.mp4",
    "office_lobby_fisheye_cctv.mp4",
    "i2r_station_escalator_agc_escalator.avi",
    "night_sheds_walker_night.mp4",
]
YUNET_FILE = "face/face_detection_yunet_2023mar.onnx"
YUNET_SCORE = 0.6
YUNET_NMS = 0.3
YUNET_SCALES = (1.0, 2.0)
YUNET_2X_MAX_SIDE = 1280
HOG_MAX_PIXELS = 1_000_000
MERGE_IOU = 0.3


@dataclass
class Face:
    frame: int
    box: tuple[float, float, float, float]
    found_by: str
    detail_kept: float = 0.0
    corr: float = 0.0
    left: bool = False


@dataclass
class ClipResult:
    clip: str
    frames: int
    faces: int = 0
    left: int = 0
    by_detector: dict[str, int] = field(default_factory=dict)
    replay_rtf: float = 0.0
    check_s: float = 0.0
    left_faces: list[dict] = field(default_factory=list)
    stats: list[tuple[float, float]] = field(default_factory=list)  # (detail kept, r) of every face


class Checker:
    """Faces in a source frame, by detectors independent of the redactor's own choices."""

    def __init__(self, model_dir: Path, use_dlib: bool = True) -> None:
        path = model_dir / YUNET_FILE
        if not path.is_file():
            raise SystemExit(f"bench_privacy: {path} not found (set DETECTOR_MODEL_DIR)")
        self.yunet = cv2.FaceDetectorYN.create(str(path), "", (320, 320), YUNET_SCORE, YUNET_NMS)
        self.hog = None
        if use_dlib:
            try:
                import dlib

                self.hog = dlib.get_frontal_face_detector()
            except ImportError:
                print("bench_privacy: dlib not installed; YuNet only", file=sys.stderr)

    @property
    def names(self) -> list[str]:
        return [f"yunet@{s:g}x" for s in YUNET_SCALES] + (["dlib-hog"] if self.hog else [])

    def faces(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], str]]:
        h, w = image.shape[:2]
        found: list[tuple[tuple[float, float, float, float], str]] = []
        for s in YUNET_SCALES:
            if s > 1 and max(h, w) > YUNET_2X_MAX_SIDE:
                continue
            im = image if s == 1 else cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
            self.yunet.setInputSize((im.shape[1], im.shape[0]))
            _, dets = self.yunet.detect(im)
            for d in [] if dets is None else dets:
                x, y, bw, bh = (float(v) / s for v in d[:4])
                found.append(((x, y, x + bw, y + bh), f"yunet@{s:g}x"))
        if self.hog is not None:
            up = 1 if h * w * 4 <= HOG_MAX_PIXELS else 0
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            rects, _, _ = self.hog.run(rgb, up, 0.0)
            for r in rects:
                found.append(((r.left(), r.top(), r.right(), r.bottom()), "dlib-hog"))
        return merge(found, w, h)


def merge(found, w: int, h: int):
    """One entry per face: a box overlapping an earlier one at IoU >= MERGE_IOU is the same face."""
    kept: list[tuple[tuple[float, float, float, float], str]] = []
    for box, name in found:
        box = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
        if box[2] - box[0] < 3 or box[3] - box[1] < 3:
            continue
        if all(iou(box, k) < MERGE_IOU for k, _ in kept):
            kept.append((box, name))
    return kept


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def patch_stats(src: np.ndarray, out: np.ndarray, box) -> tuple[float, float]:
    """How much of the face in `box` is left in `out`: (detail kept, correlation of detail).

    Detail is the high-pass image (the patch minus its Gaussian blur at 1/8 of the face size):
    what makes a face recognisable, and what blurring takes away. "Detail kept" is the output's
    high-pass energy over the source's; "correlation" is Pearson r of the two high-pass patches.
    Pixels the annotation drew over (`drawn_over`) are left out, so a box edge or a label across a
    face neither hides nor fakes detail; a face more than 70% drawn over counts as covered. The
    whole face and each of its halves (top, bottom, left, right) are measured, and the part with
    the most detail kept is returned: a face blurred only down to the nose is a face left.
    """
    h, w = src.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    fw, fh = x2 - x1, y2 - y1
    if fw < 3 or fh < 3:
        return 0.0, 0.0
    sigma = max(1.0, min(fw, fh) / 8)
    pad = int(3 * sigma) + 1
    rx1, ry1, rx2, ry2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
    a = cv2.cvtColor(src[ry1:ry2, rx1:rx2], cv2.COLOR_BGR2GRAY).astype(np.float32)
    b = cv2.cvtColor(out[ry1:ry2, rx1:rx2], cv2.COLOR_BGR2GRAY).astype(np.float32)
    hp_a = (a - cv2.GaussianBlur(a, (0, 0), sigma))[y1 - ry1 : y2 - ry1, x1 - rx1 : x2 - rx1]
    hp_b = (b - cv2.GaussianBlur(b, (0, 0), sigma))[y1 - ry1 : y2 - ry1, x1 - rx1 : x2 - rx1]
    drawn = drawn_over(src[y1:y2, x1:x2], out[y1:y2, x1:x2])
    parts = [
        (slice(None), slice(None)),
        (slice(0, fh // 2), slice(None)),
        (slice(fh // 2, None), slice(None)),
        (slice(None), slice(0, fw // 2)),
        (slice(None), slice(fw // 2, None)),
    ]
    best = (0.0, 0.0)
    for part in parts:
        valid = ~drawn[part]
        if valid.mean() < 0.3 or valid.sum() < 16:
            continue
        pa, pb = hp_a[part][valid].astype(np.float64), hp_b[part][valid].astype(np.float64)
        ea, eb = (pa**2).sum(), (pb**2).sum()
        if ea < 1e-6 or eb < 1e-6:
            continue
        kept = float(eb / ea)
        corr = float((pa * pb).sum() / np.sqrt(ea * eb))
        if min(kept, corr) > min(best):
            best = (kept, corr)
    return best


def drawn_over(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Pixels of `out` the annotation drew: changed by more than 90 levels in some channel, or
    near one of `detector.annotate`'s colours (where it changed), closed over the black text of labels."""
    from detector import annotate

    colours = [annotate.PERSON_COLOUR, annotate.OBJECT_COLOUR, annotate.LITTER_COLOUR]
    colours += [annotate.CLEANUP_COLOUR, annotate.ZONE_COLOUR, (255, 255, 255)]
    o = out.astype(np.int16)
    mask = cv2.absdiff(src, out).max(axis=2) > 90
    for c in colours:
        mask |= (np.abs(o - np.array(c, np.int16)).max(axis=2) < 40) & (cv2.absdiff(src, out).max(axis=2) > 25)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    # 2 px more: the encoder rings around a drawn edge, and that ringing is no detail of a face.
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def replay(clip: Path, video: Path, config: Path | None) -> float:
    """Run the real CLI; returns its real-time factor."""
    cmd = [sys.executable, "-m", "detector", "replay", str(clip), "--video", str(video), "--no-progress"]
    if config:
        cmd += ["--config", str(config)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_privacy: replay of {clip.name} failed:\n{r.stderr[-2000:]}")
    m = re.search(r"\(([\d.]+)x real time", r.stdout)
    return float(m.group(1)) if m else 0.0


def source_faces(clip: Path, checker: Checker, settings, cache: Path | None) -> list[list]:
    """Faces per analysed source frame: [[(box, found_by), ...], ...]. They depend on the source
    alone, so `--cache DIR` keeps them between runs (keyed by clip, decimation and checkers)."""
    from detector.sources import FileSource

    key = (
        f"{clip.name}.{settings.source.analysis_fps:g}fps.{settings.source.max_seconds}.{'+'.join(checker.names)}.json"
    )
    if cache and (cache / key).is_file():
        return json.loads((cache / key).read_text())
    source = FileSource(clip, settings.source.analysis_fps, settings.source.max_seconds)
    per_frame = [[(list(box), name) for box, name in checker.faces(frame.image)] for frame in source]
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / key).write_text(json.dumps(per_frame))
    return per_frame


def check_clip(clip: Path, checker: Checker, args, workdir: Path) -> tuple[ClipResult, list[tuple[np.ndarray, Face]]]:
    from detector.config import load_settings
    from detector.sources import FileSource

    settings = load_settings(args.config)
    video = workdir / f"{clip.stem}.mp4"
    rtf = replay(clip, video, args.config) if not args.reuse_videos or not video.is_file() else 0.0
    t0 = time.perf_counter()
    faces = source_faces(clip, checker, settings, args.cache)
    out_frames = read_video(video)
    if len(out_frames) != len(faces):
        raise SystemExit(f"bench_privacy: {video.name} has {len(out_frames)} frames, the source {len(faces)}")
    res = ClipResult(clip.name, len(out_frames), replay_rtf=rtf, by_detector={n: 0 for n in checker.names})
    crops: list[tuple[np.ndarray, Face]] = []
    source = FileSource(clip, settings.source.analysis_fps, settings.source.max_seconds)
    for k, frame in enumerate(source):
        out = out_frames[k]
        if out.shape != frame.image.shape:
            raise SystemExit(f"bench_privacy: {video.name} is {out.shape}, the source {frame.image.shape}")
        for box, name in faces[k]:
            face = Face(k, tuple(round(v, 1) for v in box), name)
            face.detail_kept, face.corr = patch_stats(frame.image, out, box)
            face.left = face.detail_kept >= args.kept and face.corr >= args.corr
            res.faces += 1
            res.by_detector[name] += 1
            res.left += face.left
            res.stats.append((round(face.detail_kept, 3), round(face.corr, 3)))
            if face.left:
                res.left_faces.append(asdict(face))
            if args.crops and (face.left or len(crops) < 400):
                crops.append((output_crop(out, box), face))
    res.check_s = time.perf_counter() - t0
    return res, crops


def output_crop(out: np.ndarray, box, size: int = 96) -> np.ndarray:
    """The face's surroundings in the *output* (blurred or not), enlarged, box drawn around it."""
    h, w = out.shape[:2]
    x1, y1, x2, y2 = box
    m = max(x2 - x1, y2 - y1)
    cx1, cy1 = int(max(0, x1 - m)), int(max(0, y1 - m))
    cx2, cy2 = int(min(w, x2 + m)), int(min(h, y2 + m))
    crop = out[cy1:cy2, cx1:cx2].copy()
    cv2.rectangle(crop, (int(x1 - cx1), int(y1 - cy1)), (int(x2 - cx1), int(y2 - cy1)), (0, 255, 255), 1)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST)


def write_sheet(path: Path, crops: list[tuple[np.ndarray, Face]], per_row: int = 12) -> None:
    left = [c for c in crops if c[1].left]
    blurred = [c for c in crops if not c[1].left]
    step = max(1, len(blurred) // (per_row * 3))
    chosen = left + blurred[::step][: per_row * 3]
    tiles = []
    for image, face in chosen:
        tile = image.copy()
        colour = (0, 0, 255) if face.left else (0, 200, 0)
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), colour, 2)
        cv2.putText(tile, f"{face.detail_kept:.2f}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1)
        tiles.append(tile)
    while len(tiles) % per_row:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]
    cv2.imwrite(str(path), np.vstack(rows))


def speed(clip: Path, repeat: int, config: Path | None) -> dict:
    """Median real-time factor of replay without and with --video, interleaved in one run."""
    runs: dict[str, list[float]] = {"no video": [], "video": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            for mode in runs:
                cmd = [sys.executable, "-m", "detector", "replay", str(clip), "--no-progress"]
                if mode == "video":
                    cmd += ["--video", str(Path(tmp) / "v.mp4")]
                if config:
                    cmd += ["--config", str(config)]
                r = subprocess.run(cmd, capture_output=True, text=True, check=True)
                m = re.search(r"in ([\d.]+) s \(([\d.]+)x real time", r.stdout)
                runs[mode].append(float(m.group(2)))
                print(f"  {mode}: {m.group(2)}x real time ({m.group(1)} s)", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"clip": clip.name, "runs": runs, "median_rtf": med, "video_cost": med["no video"] / med["video"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--footage", type=Path, default=Path(os.environ.get("DETECTOR_SAMPLE_DIR", "../shared/footage")))
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("DETECTOR_MODEL_DIR", "../shared/models")))
    ap.add_argument("--config", type=Path, default=None, help="pipeline YAML passed to the replay")
    ap.add_argument("--kept", type=float, default=0.5, help="left: output detail >= this share of the source's")
    ap.add_argument(
        "--corr", type=float, default=0.5, help="left: and detail correlated with the source's at r >= this"
    )
    ap.add_argument("--no-dlib", action="store_true", help="YuNet only")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--crops", type=Path, default=None, help="write a PNG sheet of output patches per clip here")
    ap.add_argument("--keep", type=Path, default=None, help="keep the replay videos in this directory")
    ap.add_argument("--reuse-videos", action="store_true", help="with --keep: check the videos already there")
    ap.add_argument("--cache", type=Path, default=None, help="keep the source frames' faces here between runs")
    ap.add_argument("--speed", metavar="CLIP", help="time replay with and without --video instead")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    if args.speed:
        r = speed(args.footage / args.speed, args.repeat, args.config)
        print(
            f"{r['clip']}: replay {r['median_rtf']['no video']:.1f}x real time, with --video "
            f"{r['median_rtf']['video']:.1f}x (video costs {r['video_cost']:.2f}x the time; medians of {args.repeat})"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(r, indent=2))
        return 0

    checker = Checker(args.models, use_dlib=not args.no_dlib)
    print(
        f"checkers: {', '.join(checker.names)}; YuNet score >= {YUNET_SCORE}; "
        f"left = detail kept >= {args.kept} and r >= {args.corr}",
        file=sys.stderr,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in args.clips:
            clip = args.footage / name
            if not clip.is_file():
                raise SystemExit(f"bench_privacy: {clip} not found")
            print(f"{name} ...", file=sys.stderr)
            res, crops = check_clip(clip, checker, args, workdir)
            results.append(res)
            print(f"  {res.faces} faces in the source, {res.left} left ({res.check_s:.0f} s)", file=sys.stderr)
            if args.crops and crops:
                args.crops.mkdir(parents=True, exist_ok=True)
                write_sheet(args.crops / f"{Path(name).stem}.png", crops)

    print(f"\n| clip | frames | faces in source | faces left | {' | '.join(checker.names)} | replay x real time |")
    print("| --- | ---: | ---: | ---: |" + " ---: |" * len(checker.names) + " ---: |")
    for r in results:
        per = " | ".join(str(r.by_detector[n]) for n in checker.names)
        print(f"| {r.clip} | {r.frames} | {r.faces} | {r.left} | {per} | {r.replay_rtf:.1f} |")
    total_faces, total_left = sum(r.faces for r in results), sum(r.left for r in results)
    print(f"| total | {sum(r.frames for r in results)} | {total_faces} | {total_left} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "checkers": checker.names,
            "yunet_score": YUNET_SCORE,
            "kept": args.kept,
            "corr": args.corr,
            "clips": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
