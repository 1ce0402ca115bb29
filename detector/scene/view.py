"""The view transform: how the frame now in front of the camera relates to the view scene
memory learnt and to the view the camera started with.

Two things change a fixed camera's view without anything happening in the scene:
- the light (lamps switched, an exposure step): a smooth gain surface plus a black level,
  fitted by `fit_lighting` and divided out of every later frame;
- a knock on the mount: the whole view moves; `camera_shift` finds the move
  (cv2.phaseCorrelate) and later frames are moved back onto the learnt view.

`ViewTransform` holds both as one value. Scene memory uses it to bring frames and boxes into
its models; the act recogniser uses the same value to keep what it remembers (litter,
candidates, recent people) in the view the camera started with and to report it where it
lies in the frame now, so nothing has to be re-shifted when the camera moves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from detector.values import Box

Small = tuple[int, int, int, int]  # a box in pixels of scene memory's small grey copy


@dataclass(frozen=True)
class Lighting:
    """A change of light: a pixel that read v now reads gain * v + offset."""

    gain: np.ndarray  # per pixel, a smooth surface
    offset: float | np.ndarray

    def apply(self, grey: np.ndarray) -> np.ndarray:
        return grey * self.gain + self.offset

    def undo(self, grey: np.ndarray) -> np.ndarray:
        return ((grey - self.offset) / self.gain).astype(np.float32)

    def then(self, later: Lighting) -> Lighting:
        """This change followed by `later`, which was fitted on frames this one had already
        been taken out of: raw = gain * (later.gain * v + later.offset) + offset."""
        return Lighting(self.gain * later.gain, self.gain * later.offset + self.offset)


@dataclass(frozen=True)
class ViewTransform:
    """Frame pixels <-> scene memory's models <-> the view the camera started with.

    - `scale`: small-copy pixels per frame pixel;
    - `offset`: how far (small-copy pixels) the view moved since the models were learnt;
    - `origin`: how far (frame pixels) the models' view lies from the starting view (knocks
      before the models last started afresh);
    - `light`: how the light changed since the models were learnt, or None.
    """

    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    origin: tuple[float, float] = (0.0, 0.0)
    light: Lighting | None = None

    # -- the act recogniser's side: the starting view --------------------------------------
    @property
    def shift(self) -> tuple[float, float]:
        """How far (frame pixels) everything in view moved since the camera started."""
        return (self.origin[0] + self.offset[0] / self.scale, self.origin[1] + self.offset[1] / self.scale)

    def to_frame(self, box: Box) -> Box:
        """Where something remembered in the starting view lies in the frame now."""
        dx, dy = self.shift
        if dx == 0 and dy == 0:
            return box
        return (round(box[0] + dx), round(box[1] + dy), round(box[2] + dx), round(box[3] + dy))

    def from_frame(self, box: Box) -> Box:
        """A frame box in the starting view."""
        dx, dy = self.shift
        if dx == 0 and dy == 0:
            return box
        return (round(box[0] - dx), round(box[1] - dy), round(box[2] - dx), round(box[3] - dy))

    # -- scene memory's side: the models ----------------------------------------------------
    def to_model(self, box: Box, shape: tuple[int, int]) -> Small:
        """A frame box in model pixels (clipped to the model of `shape` (h, w))."""
        s = self.scale
        h, w = shape
        dx, dy = self.offset
        x1, y1, x2, y2 = box
        return (
            int(np.clip(np.floor(x1 * s - dx), 0, w)),
            int(np.clip(np.floor(y1 * s - dy), 0, h)),
            int(np.clip(np.ceil(x2 * s - dx), 0, w)),
            int(np.clip(np.ceil(y2 * s - dy), 0, h)),
        )

    def from_model(self, b: Small) -> Box:
        """A model box in frame pixels."""
        s = self.scale
        dx, dy = self.offset
        return (
            max(0, int((b[0] + dx) / s)),
            max(0, int((b[1] + dy) / s)),
            int(round((b[2] + dx) / s)),
            int(round((b[3] + dy) / s)),
        )

    def into_models(self, raw: np.ndarray) -> np.ndarray:
        """A new small grey frame as the models see it: moved back onto the learnt view, the
        light taken out."""
        dx, dy = self.offset
        g = raw if dx == 0 and dy == 0 else shifted(raw, -dx, -dy)
        if self.light is not None and self.light.gain.shape == g.shape:
            g = self.light.undo(g)
        return g

    def unseen(self, shape: tuple[int, int]) -> np.ndarray | None:
        """Model pixels the moved camera no longer sees (a border strip), or None."""
        dx, dy = self.offset
        if dx == 0 and dy == 0:
            return None
        out = np.zeros(shape, bool)
        mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
        if dx > 0:
            out[:, -mx:] = True
        elif dx < 0:
            out[:, :mx] = True
        if dy > 0:
            out[-my:, :] = True
        elif dy < 0:
            out[:my, :] = True
        return out

    # -- changes ------------------------------------------------------------------------------
    def moved(self, dx: float, dy: float) -> ViewTransform:
        """The camera was knocked by (dx, dy) small-copy pixels."""
        return replace(self, offset=(self.offset[0] + dx, self.offset[1] + dy))

    def relit(self, light: Lighting) -> ViewTransform:
        """The light changed again (fitted on frames the earlier change was taken out of)."""
        return replace(self, light=light if self.light is None else self.light.then(light))

    def restarted(self) -> ViewTransform:
        """The models start afresh in the raw frame's pixels and light: their view is where
        the camera looks now."""
        return ViewTransform(self.scale, (0.0, 0.0), self.shift, None)


def camera_shift(
    model: np.ndarray, g: np.ndarray, hann: np.ndarray, diff_threshold: float, people: np.ndarray | None = None
) -> tuple[float, float] | None:
    """How far the whole view moved against `model`, if a shift explains what changed (a
    camera knocked or drifting on its mount). cv2.phaseCorrelate finds the translation; it is
    accepted only if undoing it halves the changed pixels, so people walking about (which move
    part of the view, not all of it) never shift it. Pixels are compared after matching
    overall brightness and contrast, because a knock often comes with an exposure step; the
    light itself is fitted afterwards."""
    # Copies: with a window, phaseCorrelate writes the windowed images into its inputs.
    (dx, dy), response = cv2.phaseCorrelate(model.copy(), g.copy(), hann)
    if response < 0.1 or np.hypot(dx, dy) < 0.5:
        return None
    back = shifted(g, -dx, -dy)
    # Where `people` are (a mask), pixels changed because they moved, shift or none: judged on
    # the rest of the view, so that a crowd does not hide a moving camera.
    scene = np.ones(g.shape, bool) if people is None else ~people
    if scene.mean() < 0.25:
        return None  # too little of the view left to judge
    before = (np.abs(_matched(g, model) - model) > diff_threshold)[scene].mean()
    after = (np.abs(_matched(back, model) - model) > diff_threshold)[scene].mean()
    return (float(dx), float(dy)) if after <= 0.5 * before else None


def fit_lighting(
    now: np.ndarray,
    before: np.ndarray,
    diff_threshold: float,
    unexplained_max: float,
    movers: np.ndarray | None = None,
) -> Lighting | None:
    """A smooth lighting change with now ≈ gain(x, y) * before + offset, if one explains
    what changed.

    Lighting changes are low-frequency: a gain that is a quadratic surface over the view
    (a lamp switched on at one side of a room, an exposure step) plus one black-level
    offset (7 numbers), but not a truck that fills half the view or a camera that turned.
    Fitted by least squares on a pixel sample, refitted on the 60% that fit best (people
    moving meanwhile are outliers). Written by hand: OpenCV has no robust smooth-gain fit,
    and this is a few lines of numpy on a small sample.

    `movers` (a mask: the boxes of whatever the detector sees in view, people, vehicles and
    things) are not judged: a white car or a dark coat filling part of a view is what makes
    auto-exposure step, and what the step leaves unexplained is that, not a turned camera.
    """
    h, w = now.shape
    ys, xs = np.mgrid[0:h:4, 0:w:4]
    b = before[::4, ::4].ravel().astype(np.float64)
    n = now[::4, ::4].ravel().astype(np.float64)
    terms = _surface_terms(xs.ravel() / w - 0.5, ys.ravel() / h - 0.5)
    design = np.column_stack([t * b for t in terms] + [np.ones_like(b)])
    keep = np.ones(n.shape, bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], n[keep], rcond=None)
        residual = np.abs(design @ coef - n)
        keep = residual <= np.quantile(residual, 0.6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gain = sum(c * t for c, t in zip(coef[:-1], _surface_terms(xx / w - 0.5, yy / h - 0.5))).astype(np.float32)
    if float(gain.min()) <= 0.05:
        return None  # not a light that still shows the scene
    light = Lighting(gain, float(coef[-1]))
    unexplained = np.abs(light.apply(before) - now) > diff_threshold
    judged = np.ones(now.shape, bool) if movers is None else ~movers
    if judged.mean() < 0.25:
        judged[:] = True  # too little of the view left to judge apart: judge it all
    return light if unexplained[judged].mean() <= unexplained_max else None


def _surface_terms(x, y) -> list:
    """A quadratic surface over the view (x, y centred on it)."""
    return [1.0 + 0.0 * x, x, y, x * x, x * y, y * y]


def _matched(grey: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`grey` with the mean and spread of grey levels of `like` (one global gain and offset)."""
    return (grey - grey.mean()) * (like.std() / max(float(grey.std()), 1e-3)) + like.mean()


def shifted(grey: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`grey` moved by (dx, dy) pixels; the uncovered edge repeats the border."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(grey, m, grey.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
