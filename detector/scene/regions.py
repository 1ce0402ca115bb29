"""Static regions: connected blobs of the static mask, keyed by location, classed by the
detector's votes, and told apart as put down ("added") or taken away ("removed")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from detector.boxes import area, cover, intersection, overlaps
from detector.config import SceneConfig
from detector.scene.view import Small, ViewTransform
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
    # Touches the border of what the camera sees: only part of whatever is there is in view.
    edge: bool = False
    # Area around it (within its own size) that changed within a second of it, over its own
    # area: a dropped object changes its own footprint; a part of something large that came
    # or went (a vehicle) changed together with much more around it.
    together: float = 0.0
    # A region that slid from where its change began onto another place (a bag put down
    # beside the spot where its owner had just stood, the two changes one region) keeps the
    # older start; `formed` is when most of the pixels it now covers began to differ (the
    # median), reported only once most of it lies outside where it began (else None).
    formed: float | None = None


@dataclass
class _Region:
    key: int
    box_s: Small
    since: float
    change: Change
    origin: Small  # where it began (its box when first found)
    votes: dict[str, float] = field(default_factory=dict)
    last_seen: float = 0.0
    attended: float = float("-inf")  # last time a person was next to it
    edge: bool = False
    together: float = 0.0


class Regions:
    """The static regions scene memory currently knows, in model pixels."""

    def __init__(self, cfg: SceneConfig) -> None:
        self.cfg = cfg
        self._regions: list[_Region] = []
        self._next_key = 1

    def clear(self) -> None:
        self._regions = []

    def held(self, time_s: float) -> list[Small]:
        """Regions the long-term model must not learn yet: seen lately, and left alone for
        less than `candidate_hold_s`. An owner may attend a bag for minutes and the act is
        them walking away from it, so the hold counts from when it was last left alone, not
        from when it appeared; one nobody is with that never became litter is absorbed."""
        return [r.box_s for r in self._regions if time_s - max(r.since, r.attended) <= self.cfg.candidate_hold_s]

    def update(
        self,
        static: np.ndarray,
        since: np.ndarray,
        short: np.ndarray,
        long: np.ndarray,
        time_s: float,
        objects,
        view: ViewTransform,
        persons: list[Small] = (),
        hidden: np.ndarray | None = None,
    ) -> tuple[StaticObject, ...]:
        """This frame's static mask (uint8, model pixels) to static objects (frame pixels).
        `since` is per pixel when it began to differ; `short`, `long` the two models;
        `objects` the detections (box, class, score) that lend regions a class; `persons`
        the people in view and `hidden` the pixels under them or out of view (model pixels)."""
        cfg = self.cfg
        h, w = static.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
        min_area = cfg.min_area_frac * h * w
        max_area = cfg.max_area_frac * h * w
        # Half-thickness of the mask at each pixel: an object leaves a blob; a line along an
        # edge (exposure drift, a swaying stalk, a slight shake) is thin everywhere.
        depth = cv2.distanceTransform(static, cv2.DIST_L2, 3)
        found: list[tuple[Small, np.ndarray]] = []
        for i in range(1, n):
            x, y, bw, bh, npix = stats[i]
            if min_area <= npix <= max_area:
                mask = labels == i
                if 2.0 * float(depth[mask].max()) < cfg.min_thickness_px:
                    continue
                found.append(((int(x), int(y), int(x + bw), int(y + bh)), mask))
        kept: list[_Region] = []
        out: list[StaticObject] = []
        unseen = view.unseen((h, w))
        if unseen is None:
            unseen = np.zeros((h, w), bool)
        # The blur and the morphology do not reach the last pixel: within one is at the border.
        unseen[:2, :] = unseen[-2:, :] = True
        unseen[:, :2] = unseen[:, -2:] = True
        formed: dict[int, float] = {}
        for box_s, mask in found:
            region = next((r for r in self._regions if cover(r.box_s, box_s) >= 0.5 and r not in kept), None)
            if region is None:
                first = float(np.nanmin(np.where(mask, since, np.nan)))
                change = added_or_removed(mask, short, long, cfg.ghost_ratio)
                region = _Region(self._next_key, box_s, first, change, box_s)
                self._next_key += 1
            else:
                region.box_s = box_s
                # the whole region is visible now
                region.change = added_or_removed(mask, short, long, cfg.ghost_ratio)
            region.last_seen = time_s
            if intersection(region.origin, box_s) < 0.5 * area(box_s):
                formed[region.key] = float(np.nanmedian(since[mask]))
            region.edge = _at_edge(box_s, unseen)
            region.together = _together(box_s, mask, region.since, since, hidden)
            for obox, cls, score in objects:
                ob = view.to_model(obox, (h, w))
                # Same object only: a big box (a shelf, a car) around a small region lends
                # it no class, or a bottle lying in front of a bench would become scenery.
                if cover(ob, box_s) >= 0.5 and area(ob) <= cfg.vote_max_area_ratio * area(box_s):
                    region.votes[cls] = region.votes.get(cls, 0.0) + float(score)
            kept.append(region)
        # A region briefly hidden (by a passer-by) keeps its key for a while.
        for r in self._regions:
            if r not in kept and time_s - r.last_seen <= cfg.region_memory_s:
                kept.append(r)
        for r in kept:
            # Attended: a person within the object's own size of it (AVSS 2007 used 2x its
            # width between centres), or standing over it (then it is hidden, not gone).
            x1, y1, x2, y2 = r.box_s
            m = max(x2 - x1, y2 - y1)
            if any(overlaps(p, (x1 - m, y1 - m, x2 + m, y2 + m)) for p in persons):
                r.attended = time_s
        self._regions = kept
        frame_area = float(h * w)
        for r in kept:
            if r.last_seen != time_s:
                continue
            cls = max(r.votes, key=r.votes.get) if r.votes else "unknown"
            out.append(
                StaticObject(
                    r.key,
                    view.from_model(r.box_s),
                    r.since,
                    r.change,
                    cls,
                    cls in cfg.scenery_classes,
                    area(r.box_s) / frame_area,
                    r.edge,
                    r.together,
                    formed.get(r.key),
                )
            )
        return tuple(out)


def _at_edge(b: Small, unseen: np.ndarray) -> bool:
    """The box reaches what the camera does not see: the border of the view, or the strip a
    knocked camera no longer sees."""
    x1, y1, x2, y2 = b
    return bool(unseen[y1:y2, x1:x2].any())


def _together(b: Small, mask: np.ndarray, first: float, since: np.ndarray, hidden: np.ndarray | None) -> float:
    """Pixels within the region's own size around it (not under people, not its own) that
    began to differ within a second of it, over its own area."""
    h, w = since.shape
    x1, y1, x2, y2 = b
    m = max(x2 - x1, y2 - y1)
    X1, Y1, X2, Y2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
    window = np.abs(since[Y1:Y2, X1:X2] - first) <= 1.0  # NaN (no change) compares False
    window &= ~mask[Y1:Y2, X1:X2]
    if hidden is not None:
        window &= ~hidden[Y1:Y2, X1:X2]
    return float(window.sum()) / max(1.0, float(mask.sum()))


def added_or_removed(mask: np.ndarray, short: np.ndarray, long: np.ndarray, ghost_ratio: float) -> Change:
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
    now = abs(float(np.median(short[inner])) - float(np.median(short[outer])))
    old = abs(float(np.median(long[inner])) - float(np.median(long[outer])))
    return "removed" if old > now * ghost_ratio else "added"
