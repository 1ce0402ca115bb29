"""Scene memory: the dual background model, run on every frame, and litter watching.

Two running-average backgrounds of a small grey copy of each frame: a long-term one `L`
(what the place normally looks like) and a short-term one `S` (what it looks like over the
last second or so). Where `S` differs from `L` while the current frame agrees with `S`,
something has changed and then stopped moving: an object was put down (or taken away).
Detectors see people well and left objects badly, so the background model proposes the
regions and detector boxes only lend them a class (`regions.py`).

Running averages (cv2.accumulateWeighted) rather than cv2's MOG2/KNN: both of those
absorb a still object into the background on their own schedule and report no per-pixel
"changed since when"; here the long-term model is frozen under candidate objects and known
litter (selective update), which is what keeps a left bag visible for minutes.

Lights and knocks (`view.py`): a change one smooth gain explains is divided out of every
later frame and all memory is kept; a knocked camera's shift is undone on every later frame.
A change neither explains (the camera turned, the view is blocked) starts afresh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from detector.boxes import grow
from detector.config import SceneConfig
from detector.scene.regions import Regions, StaticObject
from detector.scene.view import Small, ViewTransform, camera_shift, fit_lighting
from detector.values import Box


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
    # view blocked) starts the backgrounds afresh and forgets every region (`reset`). A slow
    # change of light is compensated too, without either.
    relit: bool = False
    reset: bool = False
    # How this frame relates to the models and to the view the camera started with.
    view: ViewTransform = ViewTransform()
    # litter_id -> fraction of the object's pixels that show the ground seen before it came
    # (1 = the ground is bare again); only for litter whose ground scene memory saw
    bare: dict[int, float] = field(default_factory=dict)
    # The whole view jittered lately (shifts that did not stay, unlike a knock): pixel
    # verdicts (added or taken away, gone or not) are smeared by the motion.
    shaking: bool = False
    # When the long-term model was last learnt (the end of a warm-up): a region that already
    # differed then shows no change anyone was seen making.
    learnt_at: float = float("-inf")


# A knock moves the whole view once, from one frame to the next, and it stays moved; a camera
# shaking on its mount (wind on a pole, a passing train) moves it from nearly every frame to
# the next. Two such jolts within two seconds is a shaking view, for two seconds. Jolts are
# found between consecutive frames, not against the models: a shaking camera's models are a
# blur that no single shift matches, and people walking are judged apart (a crowd moves
# much of the view on its own).
SHAKE_JOLTS = 2
SHAKE_WINDOW_S = 2.0
# A camera shaking on its mount turns through a small angle: from one frame to the next the
# view moves by a few percent of its width at most. A larger move is a knock or a pan (taken
# as such), or something large crossing the view that correlates better than the ground it
# hides (a car seen from above on plain asphalt).
SHAKE_MAX_STEP = 0.04


# A watched object is judged in the light its look was taken in: the ground in a band around it
# (a quarter of its box wide) tells how much brighter or darker the view there got since then (a
# cloud, the sun moving, auto-exposure drifting between the steps scene memory divides out, a
# shadow over both), and that is taken out of what the object's place shows now, so a grey-level
# difference means the same contrast in any light. Ground darker than LIGHT_FLOOR is no measure
# of a gain (a grey level of 16 read with the usual +-2 of sensor noise is a ratio +-12% off). A
# gain beyond MAX_GAIN either way is a view gone dark or blinded, not a light to judge in (the
# last one is kept): in the grey levels a camera sends (gamma about 2.2) even a full shadow in
# direct sun, a fifth to a tenth of the light, reads 0.35-0.5 times as bright.
LIGHT_FLOOR = 16.0
MAX_GAIN = 4.0


@dataclass
class _Watch:
    box_s: Small
    ref: np.ndarray | None = None  # how the region looked once still (None: not yet)
    mask: np.ndarray | None = None  # which pixels of the patch are the object
    ground: np.ndarray | None = None  # the long-term model's patch: the ground before it came
    around: Small | None = None  # the box with the band of ground around it
    around_ref: np.ndarray | None = None  # the short-term model there when the look was taken
    gain: float = 1.0  # the light on the band now, against then (kept while people hide it)


class SceneMemory:
    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        self.view = ViewTransform()
        self._L: np.ndarray | None = None
        self._S: np.ndarray | None = None
        self._since: np.ndarray | None = None  # per pixel: when S began to differ from L
        self._still: np.ndarray | None = None  # per pixel: since when the frame agrees with S
        self._t_prev: float | None = None
        self._t_reset = 0.0
        self._learnt_at = float("-inf")
        self._hann: np.ndarray | None = None
        self._shift_seen: tuple[float, float] | None = None  # a shift found on the last frame, not yet taken
        self._jolts: deque[float] = deque(maxlen=SHAKE_JOLTS)  # times the whole view moved since the last frame
        self._prev_raw: np.ndarray | None = None  # the last frame's small grey copy, as the camera saw it
        self._warm: list[np.ndarray] = []
        self._unseen: np.ndarray | None = None  # pixels covered by people all through warm-up
        self._regions = Regions(cfg)
        self._watch: dict[int, _Watch] = {}
        self._still_now: tuple[np.ndarray, np.ndarray] | None = None
        self.last_static_mask: np.ndarray | None = None  # for drawing/debugging

    def _knock(self, g: np.ndarray, changed: float) -> tuple[float, float] | None:
        """The shift to take now, if the camera was knocked. A knocked camera stays where it
        was knocked to; a shaking one does not, and chasing its every jitter would only blur
        the models. So a small shift is taken once two frames in a row agree on it; one that
        changed most of the view at once is taken at once (else the view would have to start
        afresh)."""
        if self._hann is None or self._hann.shape != g.shape:
            self._hann = cv2.createHanningWindow(g.shape[::-1], cv2.CV_32F)
        shift = camera_shift(self._S, g, self._hann, self.cfg.diff_threshold)
        seen, self._shift_seen = self._shift_seen, shift
        if shift is None:
            return None
        if changed <= self.cfg.relight_fraction and (
            seen is None or np.hypot(shift[0] - seen[0], shift[1] - seen[1]) > 0.5
        ):
            return None  # not confirmed yet: the next frame may not keep it
        self._shift_seen = None
        return shift

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.cfg.work_width, w)
        scale = width / w
        if scale != self.view.scale:
            self.view = replace(self.view, scale=scale)
        # Grey first, then the area resize on one channel: the same image (to one grey level)
        # at half the cost of resizing three channels.
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, (width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    # -- litter watching ------------------------------------------------------------------
    def watch(self, litter_id: int, box: Box) -> None:
        """Remember how a litter region (frame pixels) looks, to tell later whether it is gone.
        The look is taken on the first frame the region is still (the frame agrees with the
        short-term model there): an object just put down, or a hand just gone from it, is not
        yet what the short-term model shows, and a reference taken then would make the object
        look half gone while it lies there, and half there once it is taken."""
        if self._S is None:
            return
        b = self.view.to_model(box, self._S.shape)
        if b[2] - b[0] < 1 or b[3] - b[1] < 1:
            return
        w = self._watch[litter_id] = _Watch(b)
        x1, y1, x2, y2 = b
        if self._still_now is not None and self._still_now[1][y1:y2, x1:x2].mean() >= 0.9:
            self._settle(w, self._still_now[0][y1:y2, x1:x2].copy())

    def _settle(self, w: _Watch, ref: np.ndarray) -> None:
        """Take the look of a watched region now that it is still."""
        x1, y1, x2, y2 = w.box_s
        w.ref = ref
        self._note_light(w)
        # Judge only the object's own pixels (those that differ from the long-term model),
        # not the ground around it that the box also covers.
        ground = self._L[y1:y2, x1:x2].copy()
        mask = np.abs(ref - ground) > self.cfg.diff_threshold
        if mask.mean() >= 0.2:
            # The long-term model was frozen under the object since it appeared: it holds the ground.
            w.mask, w.ground = mask, ground
            return
        # Existing litter: already part of the long-term model, the ground under it unseen. Its
        # own pixels are those that stand out from the ground around its box (a thin bottle
        # fills half its detector box; judged on the whole box it would look only half gone).
        w.mask, w.ground = self._standing_out(w.box_s, ref), None

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
        self._jolt(raw, persons, time_s)
        g = self.view.into_models(raw)
        if self._S is None or self._S.shape != g.shape:
            self._reset(raw, time_s)
            self._t_prev = time_s
            return SceneView(time_s, view=self.view)
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
        change_frac = float((np.abs(g - self._S) > cfg.diff_threshold).mean())
        if warming or change_frac <= cfg.shift_check_fraction:
            self._shift_seen = None  # two frames agree only if they are consecutive
        elif (shift := self._knock(g, change_frac)) is not None:
            self.view = self.view.moved(*shift)
            g = self.view.into_models(raw)
            change_frac = float((np.abs(g - self._S) > cfg.diff_threshold).mean())
        jolts = self._jolts
        shaking = (
            len(jolts) == SHAKE_JOLTS
            and jolts[-1] - jolts[0] <= SHAKE_WINDOW_S
            and time_s - jolts[-1] <= SHAKE_WINDOW_S
        )
        if change_frac > cfg.relight_fraction and warming:
            self._reset(raw, time_s)  # nothing learnt yet worth carrying over
            return SceneView(time_s, reset=True, view=self.view)
        if change_frac > cfg.relight_fraction:
            # Lights switched or exposure jumped: carry the whole memory over to the new
            # light. Anything a smooth gain cannot explain outside what the detector sees (the
            # camera moved, something unseen covers the view) leaves nothing to compare with:
            # start afresh.
            movers = np.zeros(g.shape, bool)
            for box in [*persons, *(b for b, _, _ in objects)]:
                x1, y1, x2, y2 = self.view.to_model(grow(box, cfg.person_margin), g.shape)
                movers[y1:y2, x1:x2] = True
            light = fit_lighting(g, self._S, cfg.diff_threshold, cfg.relight_unexplained, movers)
            if light is None:
                self._reset(raw, time_s)
                return SceneView(time_s, reset=True, view=self.view)
            # From now on the new light is taken out of every frame. The models stay in the
            # light they were learnt in, so an object keeps its contrast against the
            # grey-level threshold (scaling the models down to a dim light would shrink it).
            self.view = self.view.relit(light)
            g = light.undo(g)
            relit = True
        elif not warming and (np.abs(self._S - self._L) > cfg.diff_threshold).mean() > cfg.relight_fraction:
            # A slower change (lights warming up, a cloud, auto-exposure drifting) the
            # short-term model has followed but the long-term one has not: take it out of both.
            # Not reported as `relit`: the models followed it as it came, so there is no jump
            # for the view to settle from (and a drift that keeps going would keep every act
            # waiting on a settling that never ends).
            light = fit_lighting(self._S, self._L, cfg.diff_threshold, cfg.relight_unexplained)
            if light is not None:
                self.view = self.view.relit(light)
                self._S = light.undo(self._S)
                g = light.undo(g)

        person_mask = np.zeros(g.shape, bool)  # also: model pixels the moved camera cannot see
        outside = self.view.unseen(g.shape)
        if outside is not None:
            person_mask |= outside
        persons_s = [self.view.to_model(grow(box, cfg.person_margin), g.shape) for box in persons]
        for x1, y1, x2, y2 in persons_s:
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
            self._learnt_at = time_s
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

        objects_view = self._regions.update(
            static, self._since, self._S, self._L, time_s, objects, self.view, persons_s, person_mask
        )
        self._still_now = (g, stable)  # this frame (model view) and where it agrees with S
        for w in self._watch.values():
            x1, y1, x2, y2 = w.box_s
            if w.ref is None and stable[y1:y2, x1:x2].mean() >= 0.9:
                self._settle(w, g[y1:y2, x1:x2].copy())
        for w in self._watch.values():
            self._follow_light(w, person_mask)
        changed = {lid: self._changed(w) for lid, w in self._watch.items()}
        bare = {lid: self._bare(w) for lid, w in self._watch.items() if w.ground is not None}
        return SceneView(
            time_s, objects_view, changed, relit, view=self.view, bare=bare, shaking=shaking, learnt_at=self._learnt_at
        )

    # -- internals ----------------------------------------------------------------------------
    def _jolt(self, raw: np.ndarray, persons: list[Box], time_s: float) -> None:
        """Record a jolt if the whole view moved since the last frame (people aside)."""
        prev, self._prev_raw = self._prev_raw, raw
        if prev is None or prev.shape != raw.shape:
            return
        if (np.abs(raw - prev) > self.cfg.diff_threshold).mean() <= self.cfg.shift_check_fraction:
            return  # too little changed for any shift worth the name
        if self._hann is None or self._hann.shape != raw.shape:
            self._hann = cv2.createHanningWindow(raw.shape[::-1], cv2.CV_32F)
        people = np.zeros(raw.shape, bool)
        at_camera = ViewTransform(scale=self.view.scale)  # the raw frame's own pixels
        for x1, y1, x2, y2 in (at_camera.to_model(grow(b, self.cfg.person_margin), raw.shape) for b in persons):
            people[y1:y2, x1:x2] = True
        step = camera_shift(prev, raw, self._hann, self.cfg.diff_threshold, people)
        if step is not None and np.hypot(*step) <= SHAKE_MAX_STEP * raw.shape[1]:
            self._jolts.append(time_s)

    def _reset(self, g: np.ndarray, time_s: float) -> None:
        self._t_reset = time_s
        # Watched litter moves with the view: after a knock, it lies `offset` away from
        # where the models had it, and the new models are in the raw frame's pixels.
        ox, oy = round(self.view.offset[0]), round(self.view.offset[1])
        h, w = g.shape
        for wt in self._watch.values():
            x1, y1, x2, y2 = wt.box_s
            moved = (min(max(x1 + ox, 0), w), min(max(y1 + oy, 0), h), min(max(x2 + ox, 0), w), min(max(y2 + oy, 0), h))
            if wt.mask is not None and (moved[2] - moved[0], moved[3] - moved[1]) != (x2 - x1, y2 - y1):
                wt.mask = np.ones((moved[3] - moved[1], moved[2] - moved[0]), bool)  # cut by the edge
            wt.box_s = moved
        self.view = self.view.restarted()
        self._shift_seen = None
        self._warm = []  # filled by the next frames, which know where people are
        self._unseen = None
        self._L = g.copy()
        self._S = g.copy()
        self._since = np.full(g.shape, np.nan, np.float32)
        self._still = np.full(g.shape, np.nan, np.float32)
        self._regions.clear()
        self._still_now = None
        # Watched litter is re-referenced on the new image (assumed still there).
        for w in self._watch.values():
            b = w.box_s
            if w.ref is not None:
                w.ref = g[b[1] : b[3], b[0] : b[2]].copy()
                self._note_light(w)
            w.ground = None  # what lay under it was learnt in another view or light

    def _freeze_mask(self, time_s: float) -> np.ndarray:
        m = np.zeros(self._S.shape, bool)
        for x1, y1, x2, y2 in self._regions.held(time_s):
            m[y1:y2, x1:x2] = True
        for w in self._watch.values():
            x1, y1, x2, y2 = w.box_s
            m[y1:y2, x1:x2] = True
        return m

    def _around(self, b: Small) -> Small:
        """Box `b` grown by a band a quarter of its size (at least 2 pixels), inside the view."""
        h, w = self._S.shape
        x1, y1, x2, y2 = b
        mx, my = max(2, (x2 - x1) // 4), max(2, (y2 - y1) // 4)
        return max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)

    @staticmethod
    def _band(b: Small, around: Small) -> np.ndarray:
        """Which pixels of `around` lie outside box `b`."""
        band = np.ones((around[3] - around[1], around[2] - around[0]), bool)
        band[b[1] - around[1] : b[3] - around[1], b[0] - around[0] : b[2] - around[0]] = False
        return band

    def _standing_out(self, b: Small, patch: np.ndarray) -> np.ndarray:
        """Pixels of `patch` (the short-term model in box `b`) that differ from the median of
        the ground in a band a quarter of the box wide around it; the whole box if too few do."""
        X1, Y1, X2, Y2 = around = self._around(b)
        band = self._band(b, around)
        if not band.any():
            return np.ones(patch.shape, bool)
        ground = float(np.median(self._S[Y1:Y2, X1:X2][band]))
        mask = np.abs(patch - ground) > self.cfg.diff_threshold
        return mask if mask.mean() >= 0.2 else np.ones(patch.shape, bool)

    def _note_light(self, w: _Watch) -> None:
        """The ground around a watched object as its look is taken (the short-term model)."""
        w.around = X1, Y1, X2, Y2 = self._around(w.box_s)
        w.around_ref, w.gain = self._S[Y1:Y2, X1:X2].copy(), 1.0

    def _follow_light(self, w: _Watch, people: np.ndarray) -> None:
        """`w.gain`: how much brighter (>1) or darker the ground around a watched object is now
        than when its look was taken (see LIGHT_FLOOR), the median ratio over the band's pixels
        that no person covers. Kept from the last frame while people hide most of the band
        (they are at the object then, and its verdict is theirs)."""
        if w.around is None or w.around_ref is None:
            return
        X1, Y1, X2, Y2 = w.around
        now = self._S[Y1:Y2, X1:X2]
        if now.shape != w.around_ref.shape:
            return
        band = self._band(w.box_s, w.around) & (w.around_ref >= LIGHT_FLOOR)
        use = band & ~people[Y1:Y2, X1:X2]
        if use.any() and use.sum() >= 0.5 * band.sum():
            gain = float(np.median(now[use] / w.around_ref[use]))
            if 1.0 / MAX_GAIN <= gain <= MAX_GAIN:
                w.gain = gain

    def _bare(self, w: _Watch) -> float:
        x1, y1, x2, y2 = w.box_s
        now = self._S[y1:y2, x1:x2]
        if now.shape != w.ground.shape or now.size == 0:
            return 0.0
        return float((np.abs(now / w.gain - w.ground) <= self.cfg.diff_threshold)[w.mask].mean())

    def _changed(self, w: _Watch) -> float:
        x1, y1, x2, y2 = w.box_s
        now = self._S[y1:y2, x1:x2]
        if w.ref is None or now.shape != w.ref.shape or now.size == 0:
            return 0.0
        return float((np.abs(now / w.gain - w.ref) > self.cfg.diff_threshold)[w.mask].mean())
