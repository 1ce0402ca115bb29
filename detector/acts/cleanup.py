"""Clean-up: litter taken away by a person.

- A known litter region (from an act, or a carryable object detected when the camera
  started) that a person overlapped, or that was itself detected lifted off its spot (a hand
  the detector missed), looks gone for `gone_s` after people left it.
- A *removed* static region (something that was part of the scene when watching began and
  that a person took away) is a clean-up of pre-existing litter, found at removal.
- One pick-up, one act: litter items next to each other that go in the same pick-up (their
  last touches close in time) give one clean-up naming them all; the ledger still gets
  every item's points back.
"""

from __future__ import annotations

from collections.abc import Iterable

from detector.acts.recent import Recent
from detector.acts.values import Candidate, Litter, Person, Sighting, size
from detector.boxes import cover, gap, overlaps
from detector.config import ActsConfig
from detector.scene import StaticObject
from detector.values import Box

# Whoever takes a thing is at it when its pixels begin to change (their body over it, then the
# bare ground). A region that began to change with nobody on it (a shadow moving off, a stain
# drying, a background still settling) was not taken by someone who crossed it before or after.
# The slack is the 2 s the tracker holds a person the detector misses (crouching to pick up).
TAKER_AT_CHANGE_S = 2.0


class Cleanups:
    def __init__(self, cfg: ActsConfig) -> None:
        self.cfg = cfg
        self.taken: list[Litter] = []  # found gone, their clean-up act not yet emitted
        # A removed region is judged by its pixels alone (nobody saw the object lie there);
        # while the view shakes they are smeared by the motion, so that wait counts only from
        # when the view is steady again.
        self.steady_since = float("-inf")

    def watch(
        self,
        litter: Iterable[Litter],
        t: float,
        people: list[Person],
        sightings: list[Sighting],
        changed: dict[int, float],
        bare: dict[int, float],
    ) -> tuple[list[Litter], list[Litter]]:
        """Follow known litter on one frame. Returns the litter found taken (a clean-up to
        come) and the litter that vanished with nobody near (wind, a sweeper the detector did
        not see: no act)."""
        cfg = self.cfg
        taken: list[Litter] = []
        vanished: list[Litter] = []
        for lit in litter:
            if not lit.present:
                continue
            if any(overlaps(p.box, lit.box) for p in people) or any(self._lifted(s, lit.box) for s in sightings):
                lit.touched, lit.gone_since, lit.missing_since = t, None, None
                continue
            if any(self._lying(s, lit.box) for s in sightings):
                # The detector sees an object of a kind people drop lying right there (put
                # back a little off its old place, say): whatever the pixels say, not gone.
                lit.gone_since = lit.missing_since = None
                continue
            # Gone: the object's pixels no longer look like it, and, where scene memory saw the
            # ground before it came, look like that ground again. Someone standing on it, or a
            # person at the border flickering in and out of the detector's view, changes the
            # pixels but shows no ground.
            gone = (
                changed.get(lit.litter_id, 0.0) >= cfg.gone_fraction
                and bare.get(lit.litter_id, 1.0) >= cfg.gone_fraction
            )
            if not gone:
                lit.gone_since = lit.missing_since = None
                continue
            if lit.touched is not None and t - lit.touched <= cfg.touch_memory_s:
                lit.missing_since = None
                if lit.gone_since is None:
                    lit.gone_since = t
                if t - lit.gone_since >= cfg.gone_s:
                    self.gone(lit, lit.touched, t)
                    taken.append(lit)
                continue
            lit.gone_since = None
            if lit.missing_since is None:
                lit.missing_since = t
            if t - lit.missing_since >= cfg.vanish_s:
                lit.present, lit.gone_at, lit.taken = False, t, lit.missing_since
                vanished.append(lit)
        return taken, vanished

    def gone(self, lit: Litter, taken: float, t: float) -> None:
        lit.present, lit.gone_at, lit.taken = False, t, taken
        if lit not in self.taken:
            self.taken.append(lit)

    def seen_back(
        self, litter: Iterable[Litter], t: float, people: list[Person], sightings: list[Sighting]
    ) -> list[Litter]:
        """Taken litter the detector sees lying in its place again, on every look for
        `confirm_s`, with nobody on it: put back. The detector's word, not the pixels' (a
        region flickering back is no put-back). Call on frames the detector ran on."""
        back = []
        for lit in litter:
            if lit.present or self.pending(lit):
                continue
            lying = any(self._lying(s, lit.box) for s in sightings)
            if not lying or any(overlaps(p.box, lit.box) for p in people):
                lit.back_since = None
                continue
            if lit.back_since is None:
                lit.back_since = t
            if t - lit.back_since >= self.cfg.confirm_s:
                back.append(lit)
        return back

    def pending(self, lit: Litter) -> bool:
        """Found taken, its clean-up not reported yet."""
        return lit in self.taken

    def put_back(self, lit: Litter) -> None:
        """The object is back where it was taken from: if its clean-up was still waiting for
        the rest of a pick-up, there was none."""
        if lit in self.taken:
            self.taken.remove(lit)
        lit.present, lit.touched, lit.gone_since, lit.missing_since, lit.back_since = True, None, None, None, None

    def removed(
        self,
        cand: Candidate,
        obj: StaticObject,
        t: float,
        recent: Recent,
        early_people: list[Box],
        litter: Iterable[Litter],
    ) -> tuple[float, float] | None:
        """Something that lay there when watching began was taken away by a person: the
        region looked removed, and nobody was near it, for `gone_s`. Returns (when it was
        touched, the height of who touched it) once it is a clean-up."""
        cfg = self.cfg
        wait_from = max(
            cand.change_since, cand.unattended_since if cand.unattended_since is not None else t, self.steady_since
        )
        if t - wait_from < cfg.gone_s:
            return None
        if any(cover(b, obj.box) >= 0.5 for b in early_people):
            return None  # a person standing there at the start walked off: not an object
        touched = None
        height = None
        at_change = False
        area = (obj.box[2] - obj.box[0]) * (obj.box[3] - obj.box[1])
        for ts, ps in recent.people(t - cfg.touch_memory_s):
            for p in ps:
                pw = p.box[2] - p.box[0]
                # An upright person (not an arm reaching in), bigger than the thing taken
                # (else it is the person's own ghost), overlapping it.
                if overlaps(p.box, obj.box) and p.height >= cfg.upright_ratio * pw:
                    if area < 0.5 * pw * p.height and size(obj.box) >= cfg.min_size_frac * p.height:
                        touched, height = ts, p.height
                        at_change |= abs(ts - cand.since) <= TAKER_AT_CHANGE_S
        if not at_change:
            return None
        cand.done = True
        if any(
            lit.gone_at is not None and touched <= lit.gone_at and gap(lit.box, obj.box) < size(lit.box)
            for lit in litter
        ):
            return None  # a piece of a removal already reported next to it (one object, two regions)
        return touched, height

    def pickups(self, t: float, litter: Iterable[Litter]) -> list[list[Litter]]:
        """The pick-ups ready to report: one group of litter per act. Litter found gone waits
        (at most `gone_s`) while litter taken in the same pick-up (touched last at about the
        same time, lying next to it, in the same zone) is still on its way to looking gone."""
        cfg = self.cfg
        if not self.taken:
            return []

        def same_pickup(a: Litter, a_taken: float, b: Litter, b_taken: float) -> bool:
            # Lying next to each other, in one zone, last touched at about the same time.
            return (
                a.zone == b.zone
                and abs(a_taken - b_taken) <= cfg.pickup_window_s
                and gap(a.box, b.box) <= max(size(a.box), size(b.box))
            )

        groups: list[list[Litter]] = []
        for lit in sorted(self.taken, key=lambda x: x.litter_id):
            # Joins (and so merges) every group it belongs with: grouping must not depend on order.
            joined = [g for g in groups if any(same_pickup(m, m.taken, lit, lit.taken) for m in g)]
            merged = sorted([lit, *(m for g in joined for m in g)], key=lambda x: x.litter_id)
            groups = [g for g in groups if g not in joined] + [merged]
        # An event names at most 1 + 64 items.
        groups = [g[k : k + 65] for g in groups for k in range(0, len(g), 65)]
        ready = []
        present = [lit for lit in litter if lit.present]
        for group in groups:
            going = [
                lit
                for lit in present
                if lit.gone_since is not None
                and lit.touched is not None
                and any(same_pickup(m, m.taken, lit, lit.touched) for m in group)
            ]
            if going and t - min(m.gone_at for m in group) < cfg.gone_s:
                continue  # part of the same pick-up may still be on its way out of view
            for m in group:
                self.taken.remove(m)
            ready.append(group)
        return ready

    def _lying(self, s: Sighting, box: Box) -> bool:
        """A carryable object detected lying where the litter lies (mostly the same box, its
        bottom where the litter's is)."""
        h = box[3] - box[1]
        return (
            s.object_class in self.cfg.carryable_classes
            and cover(s.box, box) >= 0.5
            and abs(box[3] - s.box[3]) < self.cfg.lift_frac * h
        )

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
