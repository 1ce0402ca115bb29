"""Real clips edited into test footage: cut, looped, mirrored, reversed, occluded by a real
patch, time-stretched. The pixels stay real; only their order, place or timing changes.

Shared by the accuracy tests and `benchmarks/bench_robustness.py`. Clips are read through
`FileSource` (the stream's own times, not the header's frame rate) and written as mp4v at
the rate those times show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.sources import FileSource


@dataclass(frozen=True)
class Clip:
    frames: tuple[np.ndarray, ...]
    fps: float

    @classmethod
    def read(cls, path: Path) -> Clip:
        frames = list(FileSource(Path(path), None))
        if not frames:
            raise ValueError(f"{path}: no frames")
        span = frames[-1].time_s - frames[0].time_s
        fps = (len(frames) - 1) / span if span > 0 else 25.0
        return cls(tuple(f.image for f in frames), fps)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps

    def _index(self, t: float) -> int:
        return int(np.clip(round(t * self.fps), 0, len(self.frames)))

    def cut(self, t0: float, t1: float | None = None) -> Clip:
        """The part from t0 to t1 (s)."""
        return Clip(self.frames[self._index(t0) : self._index(t1) if t1 is not None else None], self.fps)

    def then(self, *others: Clip) -> Clip:
        """This clip followed by others (same camera, same size)."""
        return Clip(self.frames + sum((o.frames for o in others), ()), self.fps)

    def reversed(self) -> Clip:
        return Clip(self.frames[::-1], self.fps)

    def looped(self, seconds: float) -> Clip:
        """Played forward then backward, again and again, for about `seconds` and an odd
        number of passes, so it ends where it ends (what follows joins on): a person standing
        and shifting on their feet stays a person standing."""
        passes = max(1, round(seconds * self.fps / max(1, len(self.frames))))
        passes += 1 - passes % 2
        out: list[np.ndarray] = []
        for k in range(passes):
            out.extend(self.frames if k % 2 == 0 else self.frames[::-1])
        return Clip(tuple(out), self.fps)

    def crop(self, box: tuple[int, int, int, int]) -> Clip:
        x1, y1, x2, y2 = box
        return Clip(tuple(f[y1:y2, x1:x2].copy() for f in self.frames), self.fps)

    def mirrored(self) -> Clip:
        return Clip(tuple(cv2.flip(f, 1) for f in self.frames), self.fps)

    def stretched(self, factor: float) -> Clip:
        """Slowed down (factor > 1) or sped up by repeating or dropping frames."""
        n = round(len(self.frames) * factor)
        return Clip(tuple(self.frames[min(len(self.frames) - 1, int(i / factor))] for i in range(n)), self.fps)

    def pasted(self, patch: np.ndarray, at: tuple[int, int], t0: float = 0.0, t1: float | None = None) -> Clip:
        """A real patch (cut from some frame) laid over every frame from t0 to t1, its
        top-left corner at `at` (x, y); the part outside the frame is dropped."""
        i0, i1 = self._index(t0), self._index(t1) if t1 is not None else len(self.frames)
        out = list(self.frames)
        for i in range(i0, i1):
            out[i] = paste(out[i], patch, at)
        return Clip(tuple(out), self.fps)

    def overlaid(
        self,
        patch: Clip,
        at: tuple[int, int],
        spans: list[tuple[float, float]],
        mask: np.ndarray | None = None,
    ) -> Clip:
        """`patch`'s frames (in turn, looping) laid over this clip during each (t0, t1) span,
        top-left at `at`; where `mask` is given, only its pixels."""
        out = list(self.frames)
        k = 0
        for t0, t1 in spans:
            for i in range(self._index(t0), self._index(t1)):
                out[i] = paste(out[i], patch.frames[k % len(patch.frames)], at, mask)
                k += 1
        return Clip(tuple(out), self.fps)

    def moving(
        self,
        patch: np.ndarray,
        mask: np.ndarray,
        path: list[tuple[float, int, int]],
        behind_movers: bool = False,
    ) -> Clip:
        """A still patch (a vehicle) moved along `path` [(t, x, y), ...]: linear between the
        points, absent before the first and after the last. `behind_movers`: what moves in
        the clip (people) stays in front of it (it is laid only where the frame shows the
        clip's median background)."""
        background = np.median(np.stack(self.frames[::10]), axis=0) if behind_movers else None
        out = list(self.frames)
        for (ta, xa, ya), (tb, xb, yb) in zip(path, path[1:]):
            for i in range(self._index(ta), self._index(tb)):
                u = (i / self.fps - ta) / max(1e-6, tb - ta)
                at = (round(xa + u * (xb - xa)), round(ya + u * (yb - ya)))
                m = mask
                if background is not None:
                    ph, pw = patch.shape[:2]
                    still = np.zeros(out[i].shape[:2], np.uint8)
                    still[np.abs(out[i].astype(np.int16) - background).max(axis=2) < 30] = 1
                    still = cv2.erode(still, np.ones((5, 5), np.uint8))  # keep a person's outline in front
                    region = np.zeros((ph, pw), np.uint8)
                    x1, y1 = max(0, at[0]), max(0, at[1])
                    x2, y2 = min(still.shape[1], at[0] + pw), min(still.shape[0], at[1] + ph)
                    if x2 > x1 and y2 > y1:
                        region[y1 - at[1] : y2 - at[1], x1 - at[0] : x2 - at[0]] = still[y1:y2, x1:x2]
                    m = mask & region
                out[i] = paste(out[i], patch, at, m)
        return Clip(tuple(out), self.fps)

    def lit(self, gain: float, box: tuple[int, int, int, int], t0: float, t1: float, ramp_s: float = 2.0) -> Clip:
        """Light `gain` times as bright over `box` (x1, y1, x2, y2) from t0 to t1 (s), coming and
        going over `ramp_s`: the sun through a gap, a cloud's or an awning's shadow, a lamp."""
        x1, y1, x2, y2 = box
        out = list(self.frames)
        for i in range(self._index(t0), min(len(out), self._index(t1 + ramp_s))):
            t = i / self.fps
            u = max(0.0, min(1.0, (t - t0) / ramp_s)) - max(0.0, min(1.0, (t - t1) / ramp_s))
            f = out[i].copy()
            f[y1:y2, x1:x2] = np.clip(f[y1:y2, x1:x2] * (1.0 + (gain - 1.0) * u), 0, 255).astype(np.uint8)
            out[i] = f
        return Clip(tuple(out), self.fps)

    def frame_at(self, t: float) -> np.ndarray:
        return self.frames[min(len(self.frames) - 1, self._index(t))]

    def write(self, path: Path) -> Path:
        h, w = self.frames[0].shape[:2]
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        for f in self.frames:
            out.write(f)
        out.release()
        return Path(path)


def paste(frame: np.ndarray, patch: np.ndarray, at: tuple[int, int], mask: np.ndarray | None = None) -> np.ndarray:
    """`frame` with `patch` over it, top-left at `at` (clipped to the frame); where `mask`
    (the patch's size) is given, only its nonzero pixels."""
    out = frame.copy()
    h, w = out.shape[:2]
    x, y = at
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(w, x + patch.shape[1]), min(h, y + patch.shape[0])
    if x2 > x1 and y2 > y1:
        src = patch[y1 - y : y2 - y, x1 - x : x2 - x]
        if mask is None:
            out[y1:y2, x1:x2] = src
        else:
            keep = mask[y1 - y : y2 - y, x1 - x : x2 - x].astype(bool)
            out[y1:y2, x1:x2][keep] = src[keep]
    return out


# -- scenarios: the failure classes of unseen footage, on real pixels ---------------------------

ABODA_BAG = [448, 360, 510, 415]  # truth box of the bag in aboda_video4
# The ground around it, right of the path the man walks at 35-50 s.
AROUND_THE_BAG = (380, 280, 620, 480)


def lorry(footage: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A real box lorry cut out of traffic_cam_osd_video02 at 18 s: its frame box, and a mask
    (the convex hull of what differs from the clip's median background), scaled."""
    clip = Clip.read(footage / "traffic_cam_osd_video02.avi")
    background = np.median(np.stack(clip.frames[::5]), axis=0).astype(np.uint8)
    x1, y1, x2, y2 = 138, 88, 252, 240
    crop = clip.frame_at(18.0)[y1:y2, x1:x2]
    differs = (np.abs(crop.astype(int) - background[y1:y2, x1:x2].astype(int)).max(axis=2) > 30).astype(np.uint8)
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(differs)
    biggest = (labels == 1 + int(np.argmax(stats[1:, 4]))).astype(np.uint8)
    mask = np.zeros_like(differs)
    cv2.fillConvexPoly(mask, cv2.convexHull(cv2.findNonZero(biggest)), 1)
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    return cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR), cv2.resize(
        mask, size, interpolation=cv2.INTER_NEAREST
    )


def long_attended(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4 with its owner standing beside the bag 34 s longer (16-18 s looped forward
    and back): he walks away at about 50.5 s instead of 18.5 s. Looped real frames."""
    a = Clip.read(footage / "aboda_video4.avi")
    clip = a.cut(0, 16.0).then(a.cut(16.0, 18.0).looped(34.0), a.cut(18.0))
    walk_away = 16.0 + (clip.duration_s - a.duration_s) + 2.5
    return clip, [{"type": "abandon", "t_start": round(walk_away, 2), "where": {"box": ABODA_BAG}}]


def edge_occluder(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4 with part of a person standing at the bottom border, three times, after
    the bag is left: the owner's own legs (cut from 15.5-18.5 s, where he stands by the bag)
    laid at the bottom border at 22-27 s, 29-33 s and 35-39 s, appearing just as he walks out
    of view past that spot. Real pixels moved."""
    a = Clip.read(footage / "aboda_video4.avi")
    legs = a.cut(15.5, 18.5).crop((440, 300, 470, 380))
    clip = a.overlaid(legs, (265, 400), [(22.0, 27.0), (29.0, 33.0), (35.0, 39.1)])
    return clip, [{"type": "abandon", "t_start": 13.0, "where": {"box": ABODA_BAG}}]


def lorry_stops(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4 with a real lorry (see `lorry`) composited on the left third of the view,
    behind the people: it drives in at 4-6 s, stands there while the bag is left and the man
    walks in front of it, and drives out at 27-29 s, just before he comes back up that side.
    No footage of a vehicle stopping in a view like this exists here."""
    a = Clip.read(footage / "aboda_video4.avi")
    patch, mask = lorry(footage, 2.6)
    path = [(4.0, -300, 40), (6.0, 20, 40), (27.0, 20, 40), (29.0, -300, 40)]
    clip = a.moving(patch, mask, path, behind_movers=True)
    return clip, [{"type": "abandon", "t_start": 13.0, "where": {"box": ABODA_BAG}}]


def putback_loop(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4's bag left, taken, put back and taken again: 10-30 s forward, backward,
    forward, then 30-0 s backward (a drop played backwards is a pick-up). Real frames reordered."""
    a = Clip.read(footage / "aboda_video4.avi")
    part = a.cut(10.0, 30.0)
    clip = part.then(part.reversed(), part, a.cut(0.0, 30.0).reversed())
    bag = {"box": ABODA_BAG}
    return clip, [
        {"type": "litter", "t_start": 3.0, "where": bag},
        {"type": "pickup", "t_start": 35.5, "where": bag},
        {"type": "place", "t_start": 43.0, "scored": False, "where": bag},
        {"type": "pickup", "t_start": 75.5, "where": bag},
    ]


def _light_on_the_bag(footage: Path, gain: float, t1: float) -> tuple[Clip, list[dict]]:
    a = Clip.read(footage / "aboda_video4_cycle.mp4")
    clip = a.lit(gain, AROUND_THE_BAG, 35.0, t1)
    bag = {"box": ABODA_BAG}
    return clip, [{"type": "abandon", "t_start": 13.0, "where": bag}, {"type": "pickup", "t_start": 63.5, "where": bag}]


def sun_on_litter(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4_cycle with the sun on the ground around the bag (1.5 times as bright) from
    35 to 50 s, between the bag being left and it being taken (63.5 s). Real frames relit."""
    return _light_on_the_bag(footage, 1.5, 50.0)


def shade_on_litter(footage: Path) -> tuple[Clip, list[dict]]:
    """aboda_video4_cycle with a shadow over the ground around the bag (0.6 times as bright)
    from 35 s to the end, over the bag being taken (63.5 s). Real frames relit."""
    return _light_on_the_bag(footage, 0.6, 999.0)


SCENARIOS = {
    "long_attended": long_attended,
    "edge_occluder": edge_occluder,
    "lorry_stops": lorry_stops,
    "putback_loop": putback_loop,
    "sun_on_litter": sun_on_litter,
    "shade_on_litter": shade_on_litter,
}
