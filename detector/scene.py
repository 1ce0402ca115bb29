"""Scene memory: static objects found with a dual background model, classed by the detector.

Two running-average backgrounds of a small grey copy of each frame: a long-term one `L`
(what the place normally looks like) and a short-term one `S` (what it looks like over the
last second or so). Where `S` differs from `L` while the current frame agrees with `S`,
something has changed and then stopped moving: an object was put down (or taken away).
Detectors see people well and left objects badly, so the background model proposes the
regions and detector boxes only lend them a class.

Running averages (cv2.accumulateWeighted) rather than cv2's MOG2/KNN: both of those
absorb a still object into the background on their own schedule and report no per-pixel
"changed since when"; here the long-term model is frozen under candidate objects and known
litter (selective update), which is what keeps a left bag visible for minutes.

Lights switched on or off, or an exposure step, change most of the view at once. If one
smooth gain (plus a black-level offset) explains the change, it is divided out of every later
frame and all memory is kept: a bag set down just before the lights dim is still found.
A camera knocked on its mount shifts the whole view: the shift (cv2.phaseCorrelate) is
undone on every later frame, so the edges of everything in view do not turn into objects.
A change neither explains (the camera turned, the view is blocked) starts afresh.

Pure: frames and boxes in, `SceneView` out; no I/O. Tolerates frames without detections
(a motion gate may skip the detector): the background model runs on every frame given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from detector.boxes import area, cover, grow
from detector.config import SceneConfig
from detector.values import Box

Change = Literal["added", "removed"]


@dataclass(frozen=True, slots=True)
class StaticObject:
    """A region that changed against the long-term background and then stayed still."""

    key: int  # per-camera id of this static region (location-keyed, not a track)
    box: Box  # source-frame pixels
    since: float  # video time the region first differed from the long-term background
    change: Change  # "added": something now lies there; "removed": something was taken away
    object_class: str  # detector evidence ("unknown" if none)
    scenery: bool  # a class that is never litter (vehicle, bench, ...)
    area_frac: float  # region area / frame area


@dataclass(frozen=True, slots=True)
class SceneView:
    """What scene memory reports for one frame."""

    time_s: float
    objects: tuple[StaticObject, ...] = ()
    # litter_id -> fraction of the watched region that no longer looks like the object
    # did when it was registered (0 = unchanged, 1 = entirely different)
    changed: dict[int, float] = field(default_factory=dict)
    # Most of the view changed at once. A change one smooth gain field explains (lights,
    # exposure) is compensated and memory is kept (`relit`); anything else (camera moved,
    # view blocked) starts the backgrounds afresh and forgets every region (`reset`).
    relit: bool = False
    reset: bool = False
    # The camera was knocked on this frame: everything in view moved by (dx, dy) frame pixels.
    shift: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Region:
    key: int
    box_s: tuple[int, int, int, int]  # small-image pixels
    since: float
    change: Change
    votes: dict[str, float] = field(default_factory=dict)
    last_seen: float = 0.0


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


@dataclass
class _Watch:
    box_s: tuple[int, int, int, int]
    ref: np.ndarray  # short-term background patch when registered
    mask: np.ndarray  # which pixels of the patch are the object


class SceneMemory:
    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        self._scale = 1.0
        self._L: np.ndarray | None = None
        self._S: np.ndarray | None = None
        self._since: np.ndarray | None = None  # per pixel: when S began to differ from L
        self._still: np.ndarray | None = None  # per pixel: since when the frame agrees with S
        self._t_prev: float | None = None
        self._t_reset = 0.0
        self._light: Lighting | None = None  # how the light changed since the models were learnt
        self._offset: tuple[float, float] = (0.0, 0.0)  # how far the view moved since (small-image px)
        self._hann: np.ndarray | None = None
        self._shift_seen: tuple[float, float] | None = None  # a shift found on the last frame, not yet taken
        self._warm: list[np.ndarray] = []
        self._unseen: np.ndarray | None = None  # pixels covered by people all through warm-up
        self._regions: list[_Region] = []
        self._watch: dict[int, _Watch] = {}
        self._next_key = 1
        self._freeze: np.ndarray | None = None
        self.last_static_mask: np.ndarray | None = None  # for drawing/debugging

    # -- geometry -----------------------------------------------------------------------
    # The models live in the view as it was learnt; `_offset` is how far (small-image pixels)
    # the camera has been knocked since, so frame boxes shift by it on the way in and out.
    def _to_small(self, box: Box) -> tuple[int, int, int, int]:
        s = self._scale
        h, w = self._S.shape
        dx, dy = self._offset
        x1, y1, x2, y2 = box
        return (
            int(np.clip(np.floor(x1 * s - dx), 0, w)),
            int(np.clip(np.floor(y1 * s - dy), 0, h)),
            int(np.clip(np.ceil(x2 * s - dx), 0, w)),
            int(np.clip(np.ceil(y2 * s - dy), 0, h)),
        )

    def _to_frame(self, b: tuple[int, int, int, int]) -> Box:
        s = self._scale
        dx, dy = self._offset
        return (
            max(0, int((b[0] + dx) / s)),
            max(0, int((b[1] + dy) / s)),
            int(round((b[2] + dx) / s)),
            int(round((b[3] + dy) / s)),
        )

    def _in_view_learnt(self, grey: np.ndarray) -> np.ndarray:
        """The new frame moved back by `_offset` onto the view the models were learnt in."""
        dx, dy = self._offset
        return grey if dx == 0 and dy == 0 else _shifted(grey, -dx, -dy)

    def _outside_view(self) -> np.ndarray | None:
        """Model pixels the moved camera no longer sees (a border strip), or None."""
        dx, dy = self._offset
        if dx == 0 and dy == 0:
            return None
        out = np.zeros(self._S.shape, bool)
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

    def _in_model_view(self, raw: np.ndarray) -> np.ndarray:
        """A new grey frame as the models see it: moved back onto the learnt view, the light
        taken out."""
        g = self._in_view_learnt(raw)
        if self._light is not None and self._light.gain.shape == g.shape:
            g = self._light.undo(g)
        return g

    def _knock(self, g: np.ndarray, changed: float) -> tuple[float, float] | None:
        """The shift to take now, if the camera was knocked. A knocked camera stays where it
        was knocked to; a shaking one does not, and chasing its every jitter would only blur
        the models. So a small shift is taken once two frames in a row agree on it; one that
        changed most of the view at once is taken at once (else the view would have to start
        afresh)."""
        shift = self._camera_shift(g)
        seen, self._shift_seen = self._shift_seen, shift
        if shift is None:
            return None
        if changed <= self.cfg.relight_fraction and (
            seen is None or np.hypot(shift[0] - seen[0], shift[1] - seen[1]) > 0.5
        ):
            return None
        self._shift_seen = None
        return shift

    def _camera_shift(self, g: np.ndarray) -> tuple[float, float] | None:
        """How far the whole view moved against the short-term model, if a shift explains
        what changed (a camera knocked or drifting on its mount). cv2.phaseCorrelate finds
        the translation; it is accepted only if undoing it halves the changed pixels, so
        people walking about (which move part of the view, not all of it) never shift it.
        Pixels are compared after matching overall brightness and contrast, because a knock
        often comes with an exposure step; the light itself is fitted afterwards."""
        if self._hann is None or self._hann.shape != g.shape:
            self._hann = cv2.createHanningWindow(g.shape[::-1], cv2.CV_32F)
        # Copies: with a window, phaseCorrelate writes the windowed images into its inputs.
        (dx, dy), response = cv2.phaseCorrelate(self._S.copy(), g.copy(), self._hann)
        if response < 0.1 or np.hypot(dx, dy) < 0.5:
            return None
        back = _shifted(g, -dx, -dy)
        thr = self.cfg.diff_threshold
        before = (np.abs(_matched(g, self._S) - self._S) > thr).mean()
        after = (np.abs(_matched(back, self._S) - self._S) > thr).mean()
        return (float(dx), float(dy)) if after <= 0.5 * before else None

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.cfg.work_width, w)
        self._scale = width / w
        # Grey first, then the area resize on one channel: the same image (to one grey level)
        # at half the cost of resizing three channels.
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, (width, max(1, round(h * self._scale))), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    # -- litter watching ------------------------------------------------------------------
    def watch(self, litter_id: int, box: Box) -> None:
        """Remember how a litter region looks now, to tell later whether it is gone."""
        if self._S is None:
            return
        b = self._to_small(box)
        if b[2] - b[0] < 1 or b[3] - b[1] < 1:
            return
        ref = self._S[b[1] : b[3], b[0] : b[2]].copy()
        # Judge only the object's own pixels (those that differ from the long-term model),
        # not the ground around it that the box also covers.
        mask = np.abs(ref - self._L[b[1] : b[3], b[0] : b[2]]) > self.cfg.diff_threshold
        if mask.mean() < 0.2:
            mask = np.ones_like(mask)  # existing litter: already part of the long-term model
        self._watch[litter_id] = _Watch(b, ref, mask)

    def unwatch(self, litter_id: int) -> None:
        self._watch.pop(litter_id, None)

    # -- main step --------------------------------------------------------------------------
    def update(
        self,
        image: np.ndarray,
        time_s: float,
        persons: list[Box] = (),
        objects: list[tuple[Box, str, float]] = (),
    ) -> SceneView:
        """One frame (BGR, or already grey): `persons` are person boxes, `objects` (box, class,
        score) other detections."""
        cfg = self.cfg
        raw = self._grey(image)
        g = self._in_model_view(raw)
        if self._S is None or self._S.shape != g.shape:
            self._reset(raw, time_s)
            self._t_prev = time_s
            return SceneView(time_s)
        dt = max(1e-3, time_s - self._t_prev) if self._t_prev is not None else 0.2
        self._t_prev = time_s
        # Learning rates from time constants, so behaviour does not depend on the frame rate.
        a_short = 1.0 - np.exp(-dt / cfg.short_tau_s)
        # Warm-up after a (re)start: the long-term model is the plain mean of the frames so
        # far, so people who were in the first frame and walked on leave no ghost.
        warming = time_s - self._t_reset < cfg.warmup_s
        tau_long = min(cfg.long_tau_s, max(dt, time_s - self._t_reset)) if warming else cfg.long_tau_s
        a_long = 1.0 - np.exp(-dt / tau_long)

        relit = False
        moved = (0.0, 0.0)
        change_frac = float((np.abs(g - self._S) > cfg.diff_threshold).mean())
        if warming or change_frac <= cfg.shift_check_fraction:
            self._shift_seen = None  # two frames agree only if they are consecutive
        elif (shift := self._knock(g, change_frac)) is not None:
            self._offset = (self._offset[0] + shift[0], self._offset[1] + shift[1])
            moved = (shift[0] / self._scale, shift[1] / self._scale)
            g = self._in_model_view(raw)
            change_frac = float((np.abs(g - self._S) > cfg.diff_threshold).mean())
        if change_frac > cfg.relight_fraction and warming:
            self._reset(raw, time_s)  # nothing learnt yet worth carrying over
            return SceneView(time_s, reset=True, shift=moved)
        if change_frac > cfg.relight_fraction:
            # Lights switched or exposure jumped: carry the whole memory over to the new
            # light. Anything a smooth gain cannot explain (the camera moved, something
            # covers the view) leaves nothing to compare with: start afresh.
            light = self._lighting_gain(g, self._S)
            if light is None:
                self._reset(raw, time_s)
                return SceneView(time_s, reset=True, shift=moved)
            self._relight(light)
            g = light.undo(g)
            relit = True
        elif not warming and (np.abs(self._S - self._L) > cfg.diff_threshold).mean() > cfg.relight_fraction:
            # A slower change (lights warming up, a cloud) the short-term model has followed
            # but the long-term one has not: take it out of both.
            light = self._lighting_gain(self._S, self._L)
            if light is not None:
                self._relight(light)
                self._S = light.undo(self._S)
                g = light.undo(g)
                relit = True

        person_mask = np.zeros(g.shape, bool)  # also: model pixels the moved camera cannot see
        outside = self._outside_view()
        if outside is not None:
            person_mask |= outside
        for box in persons:
            x1, y1, x2, y2 = self._to_small(grow(box, cfg.person_margin))
            person_mask[y1:y2, x1:x2] = True

        cv2.accumulateWeighted(g, self._S, a_short)
        # Selective update: the long-term model learns neither under people nor under
        # candidate objects and known litter, so those stay foreground against it.
        if warming:
            # Samples under a person box or still moving (a passer-by nobody detected, a
            # crowd) are not the empty scene: they do not vote in the warm-up median.
            self._warm.append(np.where(person_mask, np.nan, g))
        elif self._warm:
            # End of warm-up: the per-pixel median of the warm-up frames drops anyone who
            # was passing through (a running mean would keep a faint ghost of them). Pixels
            # under a person box do not vote: someone standing through most of the warm-up
            # would otherwise become part of the "empty" scene and leave a ghost on leaving.
            stack = np.stack(self._warm[-cfg.warmup_frames :])
            seen = ~np.isnan(stack).all(axis=0)
            self._L[seen] = np.nanmedian(stack[:, seen], axis=0)
            # Never seen uncovered and still: unknown ground, adopted once it is.
            self._unseen = ~seen
            self._since[:] = np.nan
            self._warm = []
        learn = np.ones(g.shape, bool) if warming else ~(person_mask | self._freeze_mask(time_s))
        L_new = self._L + a_long * (g - self._L)
        self._L[learn] = L_new[learn]

        differs = np.abs(self._S - self._L) > cfg.diff_threshold
        self._since[~differs] = np.nan
        self._since[differs & np.isnan(self._since)] = time_s
        # A pixel is still once the frame has agreed with the short-term model for
        # persist_s: the slow parts of a walking person never are.
        stable = np.abs(g - self._S) <= cfg.diff_threshold
        self._still[~stable] = np.nan
        self._still[stable & np.isnan(self._still)] = time_s
        old_enough = (time_s - np.nan_to_num(self._since, nan=np.inf)) >= cfg.persist_s
        still_enough = (time_s - np.nan_to_num(self._still, nan=np.inf)) >= cfg.persist_s
        if self._unseen is not None and not warming:
            adopt = self._unseen & still_enough & ~person_mask
            if adopt.any():
                self._L[adopt] = self._S[adopt]
                self._since[adopt] = np.nan
                self._unseen &= ~adopt
                differs &= ~adopt
        static = differs & still_enough & ~person_mask & old_enough
        static = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        # Close generously: one object often splits into pieces (its parts match the ground).
        static = cv2.morphologyEx(static, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
        self.last_static_mask = static.astype(bool)

        objects_view = self._regions_from(static, time_s, objects)
        changed = {lid: self._changed(w) for lid, w in self._watch.items()}
        return SceneView(time_s, objects_view, changed, relit, shift=moved)

    # -- internals ----------------------------------------------------------------------------
    def _reset(self, g: np.ndarray, time_s: float) -> None:
        self._t_reset = time_s
        self._light = None
        # Watched litter moves with the view: after a knock, it lies `_offset` away from
        # where the models had it, and the new models are in the raw frame's pixels.
        ox, oy = round(self._offset[0]), round(self._offset[1])
        h, w = g.shape
        for wt in self._watch.values():
            x1, y1, x2, y2 = wt.box_s
            moved = (min(max(x1 + ox, 0), w), min(max(y1 + oy, 0), h), min(max(x2 + ox, 0), w), min(max(y2 + oy, 0), h))
            if (moved[2] - moved[0], moved[3] - moved[1]) != (x2 - x1, y2 - y1):
                wt.mask = np.ones((moved[3] - moved[1], moved[2] - moved[0]), bool)  # cut by the edge
            wt.box_s = moved
        self._offset = (0.0, 0.0)
        self._shift_seen = None
        self._warm = []  # filled by the next frames, which know where people are
        self._unseen = None
        self._L = g.copy()
        self._S = g.copy()
        self._since = np.full(g.shape, np.nan, np.float32)
        self._still = np.full(g.shape, np.nan, np.float32)
        self._regions = []
        # Watched litter is re-referenced on the new image (assumed still there).
        for w in self._watch.values():
            b = w.box_s
            w.ref = g[b[1] : b[3], b[0] : b[2]].copy()

    def _lighting_gain(self, now: np.ndarray, before: np.ndarray) -> Lighting | None:
        """A smooth lighting change with now ≈ gain(x, y) * before + offset, if one explains
        what changed.

        Lighting changes are low-frequency: a gain that is a quadratic surface over the view
        (a lamp switched on at one side of a room, an exposure step) plus one black-level
        offset (7 numbers), but not a truck that fills half the view or a camera that turned.
        Fitted by least squares on a pixel sample, refitted on the 60% that fit best (people
        moving meanwhile are outliers). Written by hand: OpenCV has no robust smooth-gain fit,
        and this is a few lines of numpy on a small sample.
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
        unexplained = np.abs(light.apply(before) - now) > self.cfg.diff_threshold
        return light if unexplained.mean() <= self.cfg.relight_unexplained else None

    def _relight(self, light: Lighting) -> None:
        """From now on, take the new light out of every frame. The models stay in the
        light they were learnt in, so an object keeps its contrast against the grey-level
        threshold (scaling the models down to a dim light would shrink it below)."""
        self._light = light if self._light is None else self._light.then(light)

    def _freeze_mask(self, time_s: float) -> np.ndarray:
        m = np.zeros(self._S.shape, bool)
        for r in self._regions:
            if time_s - r.since > self.cfg.candidate_hold_s:
                continue  # never became litter: let the long-term model absorb it
            x1, y1, x2, y2 = r.box_s
            m[y1:y2, x1:x2] = True
        for w in self._watch.values():
            x1, y1, x2, y2 = w.box_s
            m[y1:y2, x1:x2] = True
        return m

    def _changed(self, w: _Watch) -> float:
        x1, y1, x2, y2 = w.box_s
        now = self._S[y1:y2, x1:x2]
        if now.shape != w.ref.shape or now.size == 0:
            return 0.0
        return float((np.abs(now - w.ref) > self.cfg.diff_threshold)[w.mask].mean())

    def _regions_from(self, static: np.ndarray, time_s: float, objects) -> tuple[StaticObject, ...]:
        cfg = self.cfg
        h, w = static.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
        min_area = cfg.min_area_frac * h * w
        max_area = cfg.max_area_frac * h * w
        # Half-thickness of the mask at each pixel: an object leaves a blob; a line along an
        # edge (exposure drift, a swaying stalk, a slight shake) is thin everywhere.
        depth = cv2.distanceTransform(static, cv2.DIST_L2, 3)
        found: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
        for i in range(1, n):
            x, y, bw, bh, npix = stats[i]
            if min_area <= npix <= max_area:
                mask = labels == i
                if 2.0 * float(depth[mask].max()) < cfg.min_thickness_px:
                    continue
                found.append(((int(x), int(y), int(x + bw), int(y + bh)), mask))
        kept: list[_Region] = []
        out: list[StaticObject] = []
        for box_s, mask in found:
            region = next((r for r in self._regions if cover(r.box_s, box_s) >= 0.5 and r not in kept), None)
            if region is None:
                since = float(np.nanmin(np.where(mask, self._since, np.nan)))
                region = _Region(self._next_key, box_s, since, self._added_or_removed(mask))
                self._next_key += 1
            else:
                region.box_s = box_s
                region.change = self._added_or_removed(mask)  # the whole region is visible now
            region.last_seen = time_s
            for obox, cls, score in objects:
                ob = self._to_small(obox)
                # Same object only: a big box (a shelf, a car) around a small region lends
                # it no class, or a bottle lying in front of a bench would become scenery.
                if cover(ob, box_s) >= 0.5 and area(ob) <= cfg.vote_max_area_ratio * area(box_s):
                    region.votes[cls] = region.votes.get(cls, 0.0) + float(score)
            kept.append(region)
        # A region briefly hidden (by a passer-by) keeps its key for a while.
        for r in self._regions:
            if r not in kept and time_s - r.last_seen <= cfg.region_memory_s:
                kept.append(r)
        self._regions = kept
        frame_area = float(h * w)
        for r in kept:
            if r.last_seen != time_s:
                continue
            cls = max(r.votes, key=r.votes.get) if r.votes else "unknown"
            out.append(
                StaticObject(
                    r.key,
                    self._to_frame(r.box_s),
                    r.since,
                    r.change,
                    cls,
                    cls in cfg.scenery_classes,
                    area(r.box_s) / frame_area,
                )
            )
        return tuple(out)

    def _added_or_removed(self, mask: np.ndarray) -> Change:
        """Put down or taken away? An object lying there stands out from its surroundings
        in the current image; where one was taken away, the revealed ground matches its
        surroundings and the *old* background is the one that stood out (the ghost test).
        Contrast is the median difference across the region's outline, inside vs outside."""
        m = mask.astype(np.uint8)
        k = np.ones((5, 5), np.uint8)
        inner = (m - cv2.erode(m, k)).astype(bool)
        outer = (cv2.dilate(m, k) - m).astype(bool)
        if not inner.any() or not outer.any():
            return "added"
        now = abs(float(np.median(self._S[inner])) - float(np.median(self._S[outer])))
        old = abs(float(np.median(self._L[inner])) - float(np.median(self._L[outer])))
        return "removed" if old > now * self.cfg.ghost_ratio else "added"


def _surface_terms(x, y) -> list:
    """A quadratic surface over the view (x, y centred on it)."""
    return [1.0 + 0.0 * x, x, y, x * x, x * y, y * y]


def _matched(grey: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`grey` with the mean and spread of grey levels of `like` (one global gain and offset)."""
    return (grey - grey.mean()) * (like.std() / max(float(grey.std()), 1e-3)) + like.mean()


def _shifted(grey: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`grey` moved by (dx, dy) pixels; the uncovered edge repeats the border."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(grey, m, grey.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
