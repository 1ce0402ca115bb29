"""Act recogniser: littering and clean-up, a state machine over small typed values.

Input per frame: the people in view (short-lived track ids, kept inside the worker),
carryable-object detections, and scene memory's `SceneView` (static regions and how
much each watched litter region has changed). Output: `Act`s, plus which litter
regions scene memory should start or stop watching. Pure: no I/O, no images.

- littering: a static region that was *added* next to a person (its owner: the person
  nearest when it appeared) has lain unattended for `dwell_s`. Attendance counts any
  person, not only the owner: track ids switch under occlusion, and a crowd around an
  object is no sign it was left.
- a drop must be plausible: the owner stood on the same ground (their foot line near the
  object's bottom), the region is no taller than them, is not where people stood (mostly
  covered by person boxes and person-sized), is not cut by the top of the view, and is not
  on or beside a vehicle seen lately unless clearly in front of it on the ground.
- clean-up: a known litter region (from an act, or a carryable object detected when the
  camera started) that a person overlapped, or that was itself detected lifted off its spot
  (a hand the detector missed), looks gone for `gone_s` after people left it.
  A *removed* static region (something that was part of the scene when watching began
  and that a person took away) is a clean-up of pre-existing litter, found at removal.
- one pick-up, one act: litter items next to each other that go in the same pick-up (their
  last touches close in time) give one clean-up naming them all; the ledger still gets
  every item's points back.
- Litter is keyed on its location: an object reappearing where known litter lies (or
  lay) re-arms that record and never gives a second littering act.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from detector.boxes import cover, gap, overlaps
from detector.config import ActsConfig
from detector.scene import SceneView, StaticObject
from detector.values import Act, Box, Severity
from detector.zones import ZoneMap


@dataclass(frozen=True, slots=True)
class Person:
    track_id: int  # short-lived, never leaves the worker
    box: Box

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True, slots=True)
class Sighting:
    """A carryable-object detection (class name and score)."""

    box: Box
    object_class: str
    score: float


@dataclass
class ActsStep:
    acts: list[Act] = field(default_factory=list)
    watch: list[tuple[int, Box]] = field(default_factory=list)  # (litter_id, box) to start watching
    unwatch: list[int] = field(default_factory=list)


@dataclass
class _Candidate:
    key: int
    box: Box
    since: float
    object_class: str
    owner: int | None = None  # track id of the nearest person when it appeared
    owner_height: float = 0.0
    unattended_since: float | None = None
    change: str = ""
    change_since: float = 0.0
    done: bool = False


@dataclass
class _Litter:
    litter_id: int
    box: Box
    object_class: str
    severity: Severity
    zone: str
    present: bool = True
    touched: float | None = None  # last time a person overlapped it
    gone_since: float | None = None
    gone_at: float | None = None  # when it was found gone
    taken: float = 0.0  # when it was taken (its last touch), once gone


def _size(box: Box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


class ActRecogniser:
    def __init__(self, cfg: ActsConfig, zones: ZoneMap, camera: str, frame_size: tuple[int, int] | None = None) -> None:
        self.cfg = cfg
        self.zones = zones
        self.camera = camera
        self.frame_size = frame_size  # (w, h); set from the first frame if None
        self._people: deque[tuple[float, tuple[Person, ...]]] = deque()
        self._early_people: list[Box] = []  # people seen while the camera started
        self._startup: dict[int, tuple[Box, str, int]] = {}  # existing-litter votes
        self._startup_frames = 0
        self._startup_done = False
        self._candidates: dict[int, _Candidate] = {}
        self._first_seen: dict[int, float] = {}  # static region key -> first time reported
        self._vehicles: deque[tuple[float, list[Box]]] = deque()  # recent vehicle boxes
        self._litter: dict[int, _Litter] = {}
        self._taken: list[_Litter] = []  # found gone, their clean-up act not yet emitted
        self._next_litter = 1
        self._settle_until = -1.0
        self._t0: float | None = None

    # -- public -------------------------------------------------------------------------
    def litter(self) -> list[tuple[int, Box, str]]:
        """Litter currently lying in view: (litter_id, box, class)."""
        return [(lit.litter_id, lit.box, lit.object_class) for lit in self._litter.values() if lit.present]

    def step(
        self,
        time_s: float,
        frame_index: int,
        people: list[Person],
        sightings: list[Sighting],
        view: SceneView,
        detected: bool = True,
    ) -> ActsStep:
        """`detected`: whether the detector ran on this frame (a motion gate may skip it;
        then `people` and `sightings` are empty for lack of a look, not of things)."""
        cfg = self.cfg
        out = ActsStep()
        if self._t0 is None:
            self._t0 = time_s
        if view.shift != (0.0, 0.0):
            self._follow_view(*view.shift)  # before this frame's people, who are seen where they are
        self._people.append((time_s, tuple(people)))
        horizon = max(cfg.owner_lookback_s, cfg.touch_memory_s) + 1.0
        while self._people and time_s - self._people[0][0] > horizon:
            self._people.popleft()
        vehicles = [s.box for s in sightings if s.object_class in cfg.vehicle_classes]
        if vehicles:
            self._vehicles.append((time_s, vehicles))
        while self._vehicles and time_s - self._vehicles[0][0] > cfg.vehicle_memory_s:
            self._vehicles.popleft()
        if view.relit or view.reset:
            self._settle_until = time_s + cfg.settle_s
        if view.reset:
            self._candidates.clear()  # the regions they stood on are gone with the backgrounds
        self._startup_step(time_s, people, sightings, out, detected)

        for obj in view.objects:
            self._static_object(obj, time_s, frame_index, people, out)
        self._watch_litter(time_s, frame_index, people, sightings, view, out)
        self._emit_cleanups(time_s, frame_index, out)
        return out

    def _follow_view(self, dx: float, dy: float) -> None:
        """The camera was knocked: everything remembered in frame pixels moves with the view
        (people just seen too, so an owner is still looked for where they stood)."""

        def moved(b: Box) -> Box:
            return (round(b[0] + dx), round(b[1] + dy), round(b[2] + dx), round(b[3] + dy))

        for litter in self._litter.values():
            litter.box = moved(litter.box)
        for cand in self._candidates.values():
            cand.box = moved(cand.box)
        self._startup = {k: (moved(b), c, n) for k, (b, c, n) in self._startup.items()}
        self._early_people = [moved(b) for b in self._early_people]
        self._people = deque((t, tuple(Person(p.track_id, moved(p.box)) for p in ps)) for t, ps in self._people)
        self._vehicles = deque((t, [moved(b) for b in bs]) for t, bs in self._vehicles)

    # -- existing litter at startup ----------------------------------------------------------
    def _startup_step(
        self, time_s: float, people: list[Person], sightings: list[Sighting], out: ActsStep, detected: bool = True
    ) -> None:
        cfg = self.cfg
        if self._startup_done:
            return
        if time_s - self._t0 <= cfg.startup_s:
            if not detected:
                return  # no look taken: neither a vote for nor against an object
            self._startup_frames += 1
            self._early_people.extend(p.box for p in people)
            for s in sightings:
                if s.score < cfg.startup_min_score or s.object_class not in cfg.carryable_classes:
                    continue
                if any(overlaps(s.box, p.box) for p in people):
                    continue  # carried, not lying there
                key = next((k for k, (b, _, _) in self._startup.items() if cover(b, s.box) >= 0.5), None)
                if key is None:
                    self._startup[len(self._startup)] = (s.box, s.object_class, 1)
                else:
                    b, c, n = self._startup[key]
                    self._startup[key] = (b, c, n + 1)
            return
        self._startup_done = True
        for box, cls, n in self._startup.values():
            if n >= max(2, self._startup_frames // 2):
                litter = self._new_litter(box, cls, None)
                if litter is not None:
                    out.watch.append((litter.litter_id, box))

    # -- static regions ----------------------------------------------------------------------
    def _static_object(self, obj: StaticObject, t: float, idx: int, people: list[Person], out: ActsStep) -> None:
        cfg = self.cfg
        # One location, one litter: a region on or right next to known litter is a piece of it.
        known = next((lit for lit in self._litter.values() if cover(lit.box, obj.box) >= 0.5), None)
        if known is None and any(
            gap(lit.box, obj.box) < _size(lit.box) for lit in self._litter.values() if lit.present
        ):
            return
        if known is not None:
            if not known.present and obj.change == "added":
                if any(overlaps(p.box, known.box) for p in people):
                    return  # still being put down: watch it once it lies there on its own
                # The object is back where it was taken from: re-arm, never a second act
                # (and if its clean-up was still waiting for the rest of a pick-up, there was none).
                if known in self._taken:
                    self._taken.remove(known)
                known.present, known.touched, known.gone_since = True, None, None
                out.watch.append((known.litter_id, known.box))
            return
        first = self._first_seen.setdefault(obj.key, t)
        if t - first < cfg.confirm_s:
            return  # fragments of passing people flicker; objects persist
        if (
            obj.scenery
            or t < self._settle_until
            or (obj.object_class != "unknown" and obj.object_class not in cfg.carryable_classes)
        ):
            return
        cand = self._candidates.get(obj.key)
        if cand is None:
            cand = self._candidates[obj.key] = _Candidate(obj.key, obj.box, obj.since, obj.object_class)
        if cand.done:
            return
        cand.box, cand.object_class = obj.box, obj.object_class
        if self._by_vehicle(cand.box):
            cand.done = True  # a door, a load, or ground a vehicle uncovered
            return
        if cand.box[1] <= 0:
            # Cut by the top of the view: an object lying on the ground is seen whole, so
            # this is something tall or overhead (a person leaving the view, foliage).
            cand.done = True
            return
        if any(self._attends(p, cand.box) for p in people):
            cand.unattended_since = None
        elif cand.unattended_since is None:
            cand.unattended_since = t
        # The added/removed verdict is only trusted once it held for the whole wait.
        if obj.change != cand.change:
            cand.change, cand.change_since = obj.change, t
        if obj.change == "removed":
            self._removed(cand, obj, t, idx, out)
            return
        if cand.owner is None:
            self._find_owner(cand, t)
        if self._person_ghost(cand):
            cand.done = True  # where someone stood still, not something they left
            return
        if (
            cand.owner is not None
            and _size(cand.box) >= cfg.min_size_frac * cand.owner_height
            # Lying on the ground, anything one person carried stands lower than they do;
            # a taller region is people standing together, or a part of the scene.
            and cand.box[3] - cand.box[1] <= cfg.max_height_frac * cand.owner_height
            and t - cand.change_since >= cfg.confirm_s
            and t - cand.since >= cfg.min_static_s
            and cand.unattended_since is not None
            and t - cand.unattended_since >= cfg.dwell_s
        ):
            cand.done = True
            litter = self._new_litter(cand.box, cand.object_class, cand.owner_height)
            if litter is None:
                return
            out.watch.append((litter.litter_id, litter.box))
            out.acts.append(self._act("littering", litter, cand.since, t, idx))

    def _find_owner(self, cand: _Candidate, t: float) -> None:
        """The person nearest to the object around the time it appeared, if close enough."""
        best: tuple[float, Person] | None = None
        for ts, people in self._people:
            # Whoever left it was there when it appeared; someone first seen afterwards is a
            # passer-by (and a change older than anyone in view has no owner at all).
            if not cand.since - self.cfg.owner_lookback_s <= ts <= cand.since:
                continue
            for p in people:
                d = gap(p.box, cand.box)
                # A dropped object comes to rest on the ground the person stands on, so its
                # bottom is near their foot line; a change up at head height (foliage, a
                # load on a truck, someone leaving at the top of the view) was not dropped.
                grounded = abs(cand.box[3] - p.box[3]) <= self.cfg.foot_band * p.height
                if grounded and d <= self.cfg.owner_reach * p.height and (best is None or d < best[0]):
                    best = (d, p)
        if best is not None:
            cand.owner, cand.owner_height = best[1].track_id, best[1].height

    def _by_vehicle(self, box: Box) -> bool:
        """On or next to a vehicle seen lately, and not clearly in front of it on the ground
        (its bottom below the vehicle's): part of the vehicle or of where it stood."""
        m = self.cfg.vehicle_margin
        for _, boxes in self._vehicles:
            for v in boxes:
                dx, dy = (v[2] - v[0]) * m, (v[3] - v[1]) * m
                near = overlaps((v[0] - dx, v[1] - dy, v[2] + dx, v[3] + dy), box)
                if near and box[3] < v[3] + dy:
                    return True
        return False

    def _person_ghost(self, cand: _Candidate) -> bool:
        """A region about as tall as a person, that person boxes mostly covered just before
        it appeared, is where people stood (one, or a group standing together whose boxes
        each hold only part of it), not an object they put down."""
        cfg = self.cfg
        b = cand.box
        w, h = b[2] - b[0], b[3] - b[1]
        if w <= 0 or h <= 0:
            return False
        for ts, people in self._people:
            if not cand.since - cfg.owner_lookback_s <= ts <= cand.since:
                continue
            near = [p for p in people if overlaps(p.box, b) and h >= cfg.person_like_frac * p.height]
            if not near:
                continue
            covered = np.zeros((h, w), bool)  # union of the boxes, in the region's own pixels
            for p in near:
                covered[
                    max(0, p.box[1] - b[1]) : max(0, p.box[3] - b[1]), max(0, p.box[0] - b[0]) : max(0, p.box[2] - b[0])
                ] = True
            if covered.mean() >= 0.5:
                return True
        return False

    def _attends(self, p: Person, box: Box) -> bool:
        size = max(box[2] - box[0], box[3] - box[1])
        return gap(p.box, box) <= max(self.cfg.attend_factor * size, self.cfg.attend_person_frac * p.height)

    def _removed(self, cand: _Candidate, obj: StaticObject, t: float, idx: int, out: ActsStep) -> None:
        """Something that lay there when watching began was taken away by a person: the
        region looked removed, and nobody was near it, for `gone_s`."""
        cfg = self.cfg
        wait_from = max(cand.change_since, cand.unattended_since if cand.unattended_since is not None else t)
        if t - wait_from < cfg.gone_s:
            return
        if any(cover(b, obj.box) >= 0.5 for b in self._early_people):
            return  # a person standing there at the start walked off: not an object
        touched = None
        height = None
        area = (obj.box[2] - obj.box[0]) * (obj.box[3] - obj.box[1])
        for ts, ps in self._people:
            for p in ps:
                pw = p.box[2] - p.box[0]
                # An upright person (not an arm reaching in), bigger than the thing taken
                # (else it is the person's own ghost), overlapping it.
                if overlaps(p.box, obj.box) and p.height >= cfg.upright_ratio * pw:
                    if area < 0.5 * pw * p.height and _size(obj.box) >= cfg.min_size_frac * p.height:
                        touched, height = ts, p.height
        if touched is None:
            return
        cand.done = True
        if any(
            lit.gone_at is not None and touched <= lit.gone_at and gap(lit.box, obj.box) < _size(lit.box)
            for lit in self._litter.values()
        ):
            return  # a piece of a removal already reported next to it (one object, two regions)
        litter = self._new_litter(obj.box, obj.object_class, height)
        if litter is None:
            return
        self._gone(litter, touched, t)

    # -- known litter -------------------------------------------------------------------------
    def _watch_litter(
        self, t: float, idx: int, people: list[Person], sightings: list[Sighting], view: SceneView, out: ActsStep
    ) -> None:
        cfg = self.cfg
        for litter in self._litter.values():
            if not litter.present:
                continue
            if any(overlaps(p.box, litter.box) for p in people) or any(self._lifted(s, litter.box) for s in sightings):
                litter.touched, litter.gone_since = t, None
                continue
            changed = view.changed.get(litter.litter_id, 0.0)
            if changed < cfg.gone_fraction or litter.touched is None or t - litter.touched > cfg.touch_memory_s:
                litter.gone_since = None
                continue
            if litter.gone_since is None:
                litter.gone_since = t
            if t - litter.gone_since >= cfg.gone_s:
                self._gone(litter, litter.touched, t)
                out.unwatch.append(litter.litter_id)

    def _gone(self, litter: _Litter, taken: float, t: float) -> None:
        litter.present, litter.gone_at, litter.taken = False, t, taken
        if litter not in self._taken:
            self._taken.append(litter)

    def _emit_cleanups(self, t: float, idx: int, out: ActsStep) -> None:
        """One clean-up act per pick-up. Litter found gone waits (at most `gone_s`) while litter
        taken in the same pick-up (touched last at about the same time, lying next to it, in
        the same zone) is still on its way to looking gone."""
        cfg = self.cfg
        if not self._taken:
            return

        def same_pickup(a: _Litter, a_taken: float, b: _Litter, b_taken: float) -> bool:
            # Lying next to each other, in one zone, last touched at about the same time.
            return (
                a.zone == b.zone
                and abs(a_taken - b_taken) <= cfg.pickup_window_s
                and gap(a.box, b.box) <= max(_size(a.box), _size(b.box))
            )

        groups: list[list[_Litter]] = []
        for litter in sorted(self._taken, key=lambda lit: lit.litter_id):
            # Joins (and so merges) every group it belongs with: grouping must not depend on order.
            joined = [g for g in groups if any(same_pickup(m, m.taken, litter, litter.taken) for m in g)]
            merged = sorted([litter, *(m for g in joined for m in g)], key=lambda lit: lit.litter_id)
            groups = [g for g in groups if g not in joined] + [merged]
        # An event names at most 1 + 64 items.
        groups = [g[k : k + 65] for g in groups for k in range(0, len(g), 65)]
        for group in groups:
            going = [
                lit
                for lit in self._litter.values()
                if lit.present
                and lit.gone_since is not None
                and lit.touched is not None
                and any(same_pickup(m, m.taken, lit, lit.touched) for m in group)
            ]
            if going and t - min(m.gone_at for m in group) < cfg.gone_s:
                continue  # part of the same pick-up may still be on its way out of view
            for m in group:
                self._taken.remove(m)
            first = group[0]
            act = self._act("cleanup", first, max(m.taken for m in group), t, idx)
            if len(group) > 1:
                box = (
                    min(m.box[0] for m in group),
                    min(m.box[1] for m in group),
                    max(m.box[2] for m in group),
                    max(m.box[3] for m in group),
                )
                act = replace(act, box=box, also=tuple((m.litter_id, m.severity) for m in group[1:]))
            out.acts.append(act)

    def _lifted(self, s: Sighting, box: Box) -> bool:
        """The object itself seen raised off where it lay: something is handling it, even when
        the detector misses the hand or arm that holds it (close-ups, occlusion). Lying
        objects do not rise; detector jitter moves a box's bottom by far less than this."""
        h = box[3] - box[1]
        return (
            s.object_class in self.cfg.carryable_classes
            and s.box[0] < box[2]
            and box[0] < s.box[2]  # above the same spot
            and s.box[3] > box[1]  # still reaching into where it lay: this object, not another
            and box[3] - s.box[3] >= self.cfg.lift_frac * h
        )

    # -- helpers -----------------------------------------------------------------------------
    def _new_litter(self, box: Box, cls: str, person_height: float | None) -> _Litter | None:
        zone = self.zones.zone_of((box[0] + box[2]) / 2, box[3])  # foot point
        if zone is None:
            return None  # outside every configured zone: not watched
        litter = _Litter(self._next_litter, box, cls, self._severity(box, cls, person_height), zone)
        self._litter[litter.litter_id] = litter
        self._next_litter += 1
        return litter

    def _severity(self, box: Box, cls: str, person_height: float | None) -> Severity:
        cfg = self.cfg
        h = box[3] - box[1]
        if person_height:
            r = h / person_height
            sev: Severity = "small" if r < cfg.small_frac else ("bulky" if r > cfg.bulky_frac else "bag")
        elif self.frame_size:
            w, fh = self.frame_size
            a = (box[2] - box[0]) * h / float(w * fh)
            sev = "small" if a < 0.005 else ("bulky" if a > 0.04 else "bag")
        else:
            sev = "bag"
        if cls in cfg.bag_classes and sev == "small":
            sev = "bag"
        elif cls in cfg.carryable_classes and cls not in cfg.bag_classes and sev == "bulky":
            sev = "bag"
        return sev

    def _act(self, kind: str, litter: _Litter, t_release: float, t: float, idx: int) -> Act:
        return Act(
            kind=kind,
            camera=self.camera,
            zone=litter.zone,
            object_class=litter.object_class,
            box=litter.box,
            severity=litter.severity,
            t_release=float(t_release),
            t_notify=float(t),
            litter_id=litter.litter_id,
            frame_index=idx,
        )
