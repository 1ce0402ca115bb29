"""The act recogniser: littering and clean-up, a state machine over small typed values.

Input per frame: the people in view (short-lived track ids, kept inside the worker),
carryable-object detections, and scene memory's `SceneView` (static regions and how
much each watched litter region has changed). Output: `Act`s, plus which litter
regions scene memory should start or stop watching. Pure: no I/O, no images.

Everything remembered (litter, candidates, recent people and vehicles) is kept in the view
the camera started with; the view transform scene memory reports maps it to where it lies
in the frame now, so a knocked camera moves nothing here.

Litter is keyed on its location: an object reappearing where known litter lies (or lay)
re-arms that record and never gives a second littering act.
"""

from __future__ import annotations

from dataclasses import replace

from detector.acts.cleanup import Cleanups
from detector.acts.littering import attends, find_owner, is_littering, person_ghost, person_part
from detector.acts.recent import Recent
from detector.acts.startup import StartupScan
from detector.acts.values import ActsStep, Candidate, Litter, Person, Sighting, size
from detector.boxes import cover, gap, overlaps
from detector.config import ActsConfig
from detector.scene import SceneView, StaticObject, ViewTransform
from detector.values import Act, Box, Severity
from detector.zones import ZoneMap

# Scene memory sees a change as still after 1.5 s (persist_s) and the recogniser confirms it in
# 0.5 s more; a thing put down and left alone is a candidate by then. Three seconds of being
# visible and not yet still is a region that keeps changing by itself.
REST_S = 3.0


class ActRecogniser:
    def __init__(self, cfg: ActsConfig, zones: ZoneMap, camera: str, frame_size: tuple[int, int] | None = None) -> None:
        self.cfg = cfg
        self.zones = zones
        self.camera = camera
        self.frame_size = frame_size  # (w, h); set from the first frame if None
        self._view = ViewTransform()
        self._recent = Recent(cfg)
        self._startup = StartupScan(cfg)
        self._cleanups = Cleanups(cfg)
        # What a static region may be called and still be litter (the detector's silence too).
        self._litter_classes = {"unknown", *cfg.carryable_classes, *cfg.bulky_classes}
        self._candidates: dict[int, Candidate] = {}
        self._first_seen: dict[int, float] = {}  # static region key -> first time reported
        self._litter: dict[int, Litter] = {}
        self._next_litter = 1
        self._relit_at = float("-inf")  # the last change of light (or restart of the models)
        self._learnt_at = float("-inf")  # when scene memory last learnt the empty scene
        self._t0: float | None = None
        self._next_forget = 0.0

    # -- public -------------------------------------------------------------------------
    def litter(self) -> list[tuple[int, Box, str]]:
        """Litter currently lying in view: (litter_id, box in frame pixels, class)."""
        return [
            (lit.litter_id, self._view.to_frame(lit.box), lit.object_class)
            for lit in self._litter.values()
            if lit.present
        ]

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
        # Into the starting view, where everything remembered is kept.
        self._view = tv = view.view
        people = [Person(p.track_id, tv.from_frame(p.box)) for p in people]
        sightings = [Sighting(tv.from_frame(s.box), s.object_class, s.score) for s in sightings]
        self._recent.add(time_s, people, [s.box for s in sightings if s.object_class in cfg.vehicle_classes])
        if view.relit or view.reset:
            self._relit_at = time_s
        self._learnt_at = view.learnt_at
        if view.shaking:
            self._cleanups.steady_since = time_s
        if view.reset:
            self._candidates.clear()  # the regions they stood on are gone with the backgrounds
        for box, cls in self._startup.step(time_s - self._t0, people, sightings, detected):
            litter = self._new_litter(box, cls, None)
            if litter is not None:
                # Lying there before anyone could be seen leaving it: litter found, nobody's act.
                out.watch.append((litter.litter_id, tv.to_frame(box)))
                out.acts.append(self._act("found", litter, self._t0, time_s, frame_index))

        for obj in view.objects:
            self._static_object(obj, time_s, frame_index, people, out)
        if detected:
            for lit in self._cleanups.seen_back(self._litter.values(), time_s, people, sightings):
                self._cleanups.put_back(lit)  # re-armed, never a second littering act
                out.watch.append((lit.litter_id, tv.to_frame(lit.box)))
        if time_s >= self._next_forget:
            self._forget(time_s)
            self._next_forget = time_s + 10.0  # a few dict scans every 10 s of video
        taken, vanished = self._cleanups.watch(
            self._litter.values(), time_s, people, sightings, view.changed, view.bare
        )
        out.unwatch += [lit.litter_id for lit in taken + vanished]
        out.acts += [self._act("vanished", lit, lit.taken, time_s, frame_index) for lit in vanished]
        for group in self._cleanups.pickups(time_s, self._litter.values()):
            out.acts.append(self._cleanup_act(group, time_s, frame_index))
        return out

    # -- static regions ----------------------------------------------------------------------
    def _static_object(self, obj: StaticObject, t: float, idx: int, people: list[Person], out: ActsStep) -> None:
        cfg = self.cfg
        # Cut by the top of the view: an object lying on the ground is seen whole, so this is
        # something tall or overhead (a person leaving the view, foliage).
        top_cut = obj.box[1] <= 0
        obj = replace(obj, box=self._view.from_frame(obj.box))
        # One location, one litter: a region on or right next to known litter is a piece of it.
        known = next((lit for lit in self._litter.values() if cover(lit.box, obj.box) >= 0.5), None)
        if known is None and any(gap(lit.box, obj.box) < size(lit.box) for lit in self._litter.values() if lit.present):
            return
        if known is not None:
            if known.present or obj.change != "added":
                return
            if self._cleanups.pending(known):
                # Seen lying in its place while its clean-up waits for the rest of a pick-up:
                # it was not taken after all (once nobody is on it any more).
                if not any(overlaps(p.box, known.box) for p in people):
                    self._cleanups.put_back(known)
                    out.watch.append((known.litter_id, self._view.to_frame(known.box)))
                return
            if obj.since <= known.taken:
                # A change that began before it was taken: the same object's region flickering
                # back (it was never gone, or its remnant), not one brought back.
                return
        first = self._first_seen.setdefault(obj.key, t)
        if t - first < cfg.confirm_s:
            return  # fragments of passing people flicker; objects persist
        if (
            obj.scenery
            or t < self._relit_at + cfg.settle_s  # the view still settling after it
            or obj.object_class not in self._litter_classes
        ):
            return
        cand = self._candidates.get(obj.key)
        if cand is not None and known is not None and cand.since <= known.taken:
            cand = None  # the region's earlier life, before the object was taken
        if cand is None:
            cand = self._candidates[obj.key] = self._candidate_at(obj, first)
        cand.last_seen = t
        if cand.done:
            return
        cand.box, cand.object_class = obj.box, obj.object_class
        vehicle = self._recent.vehicle_beside(cand.box)
        if vehicle is not None:
            # On or beside a vehicle: its open door, its load, ground it uncovers as it
            # leaves, or a bag set down beside the van that brought it. Which one only shows
            # once the vehicle has gone, so nothing here is judged while it may be there.
            if cand.beside_vehicle_from is None:
                cand.beside_vehicle_from = t
            cand.vehicle_last_seen = vehicle
            return
        if cand.vehicle_last_seen is not None and cand.vehicle_last_seen - cand.beside_vehicle_from < cfg.confirm_s:
            # Not seen at rest while the vehicle still stood beside it: ground the vehicle
            # uncovered as it drove off (a door or a load would have left with it).
            cand.done = True
            return
        if top_cut:
            cand.done = True
            return
        if obj.edge and obj.object_class == "unknown":
            # Cut by another border: only part of whatever is there is in view, so its size,
            # its height against a person and whether it is part of a person standing at the
            # border cannot be judged. Only the detector's word that it is a carryable object
            # counts there (until it gives it, wait).
            return
        if any(attends(cfg, p, cand.box) for p in people):
            cand.unattended_since = None
        elif cand.unattended_since is None:
            cand.unattended_since = t
        # The added/removed verdict is only trusted once it held for the whole wait.
        if obj.change != cand.change:
            cand.change, cand.change_since = obj.change, t
        if obj.together > cfg.together_max:
            # Changed together with much more around it: part of something large that came or
            # went (a vehicle, a crowd), not one object put down or taken. Wait: what belongs
            # to something large keeps changing with it.
            return
        if obj.change == "removed":
            if cand.since <= self._learnt_at:
                # It already differed when scene memory learnt the scene (someone who stood
                # there, undetected, through the warm-up, and walked off): nothing was seen
                # lying there first, so there is no taking to judge. (The region may yet turn
                # out "added", a thing left where they stood: that path stays open.)
                return
            found = self._cleanups.removed(
                cand, obj, t, self._recent, self._startup.early_people, self._litter.values()
            )
            if found is not None:
                touched, height = found
                litter = self._new_litter(obj.box, obj.object_class, height)
                if litter is not None:
                    self._cleanups.gone(litter, touched, t)
            return
        if cand.owner is None:
            find_owner(cfg, cand, self._recent, obj.formed)
        if person_ghost(cfg, cand, self._recent) or person_part(cfg, cand, self._recent, self._view_bottom()):
            cand.done = True  # where someone stood still, not something they left
            return
        if is_littering(cfg, cand, t):
            cand.done = True
            if known is not None:
                # Brought back where it was taken from and left there as a drop is: a put-back
                # re-arms that litter, never a second littering act.
                self._cleanups.put_back(known)
                out.watch.append((known.litter_id, self._view.to_frame(known.box)))
                return
            litter = self._new_litter(cand.box, cand.object_class, cand.owner_height)
            if litter is None:
                return
            out.watch.append((litter.litter_id, self._view.to_frame(litter.box)))
            out.acts.append(self._act("littering", litter, cand.since, t, idx))

    def _restless(self, cand: Candidate, first_seen: float) -> bool:
        """A thing put down comes to rest at once: from its first change to being seen still
        takes scene memory's persistence wait, longer only while someone stands over it (hidden
        under their box). A region that took longer than `REST_S` more with nobody over it kept
        changing by itself: a chair being sat on, the foot of someone the detector misses."""
        if first_seen - cand.since <= REST_S:
            return False
        uncovered, last = 0.0, cand.since
        for ts, people in self._recent.people(cand.since):
            if ts > first_seen:
                break
            if not any(overlaps(p.box, cand.box) for p in people):
                uncovered += ts - last
            last = ts
        return uncovered > REST_S

    def _candidate_at(self, obj: StaticObject, first_seen: float) -> Candidate:
        """A candidate for a region new to the recogniser. If it lies where a candidate was
        still seen after this change began, it is that change seen again (the scene lost it a
        while: hidden by its owner standing over it, split or merged): its owner and verdict
        go with the place, not with the scene's region key, so a region ruled out (beside a
        vehicle, where a person stood) stays ruled out, and an owner found stays found. A new
        change that came to rest too slowly is ruled out from the start."""
        for old in self._candidates.values():
            if cover(old.box, obj.box) >= 0.5 and obj.since <= old.last_seen:
                return replace(old, key=obj.key, since=min(old.since, obj.since), region_since=obj.since)
        cand = Candidate(obj.key, obj.box, obj.since, obj.object_class)
        cand.done = (obj.change == "added" and self._restless(cand, first_seen)) or self._with_the_light(cand)
        return cand

    def _with_the_light(self, cand: Candidate) -> bool:
        """A change that began while the view settled after a change of light is the light's
        doing: parts of the view one smooth gain does not explain (pixels driven into
        saturation or black, a lamp's own glow, the shadows of the new light), not a thing
        put down or taken just then."""
        return 0.0 <= cand.since - self._relit_at <= self.cfg.settle_s

    def _view_bottom(self) -> float:
        """The bottom of the view, in the starting view's pixels (infinite until known)."""
        if not self.frame_size:
            return float("inf")
        return self.frame_size[1] - self._view.shift[1]

    def _forget(self, t: float) -> None:
        """Drop candidates not seen for `memory_s` (a long-running camera must not grow)."""
        horizon = t - self.cfg.memory_s
        for key in [k for k, c in self._candidates.items() if c.last_seen < horizon]:
            del self._candidates[key]
        for key in [k for k, first in self._first_seen.items() if first < horizon and k not in self._candidates]:
            del self._first_seen[key]

    # -- helpers -----------------------------------------------------------------------------
    def _new_litter(self, box: Box, cls: str, person_height: float | None) -> Litter | None:
        frame_box = self._view.to_frame(box)
        zone = self.zones.zone_of((frame_box[0] + frame_box[2]) / 2, frame_box[3])  # foot point
        if zone is None:
            return None  # outside every configured zone: not watched
        litter = Litter(self._next_litter, box, cls, self._severity(box, cls, person_height), zone)
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
        if (cls in cfg.bag_classes or cls in cfg.bulky_classes) and sev == "small":
            sev = "bag"
        elif cls in cfg.carryable_classes and cls not in cfg.bag_classes and sev == "bulky":
            sev = "bag"
        return sev

    def _cleanup_act(self, group: list[Litter], t: float, idx: int) -> Act:
        """One clean-up act for one pick-up: the box around every item, the others in `also`."""
        first = group[0]
        act = self._act("cleanup", first, max(m.taken for m in group), t, idx)
        if len(group) > 1:
            box = (
                min(m.box[0] for m in group),
                min(m.box[1] for m in group),
                max(m.box[2] for m in group),
                max(m.box[3] for m in group),
            )
            act = replace(act, box=self._view.to_frame(box), also=tuple((m.litter_id, m.severity) for m in group[1:]))
        return act

    def _act(self, kind: str, litter: Litter, t_release: float, t: float, idx: int) -> Act:
        return Act(
            kind=kind,
            camera=self.camera,
            zone=litter.zone,
            object_class=litter.object_class,
            box=self._view.to_frame(litter.box),
            severity=litter.severity,
            t_release=float(t_release),
            t_notify=float(t),
            litter_id=litter.litter_id,
            frame_index=idx,
        )
