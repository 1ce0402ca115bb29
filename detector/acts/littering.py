"""Littering: a static region that was *added* next to a person (its owner: the person
nearest when it appeared) has lain unattended for `dwell_s`.

Attendance counts any person, not only the owner: track ids switch under occlusion, and a
crowd around an object is no sign it was left. A drop must be plausible: the owner stood on
the same ground (their foot line near the object's bottom), the region is no taller than
them, is not where people stood (mostly covered by person boxes and person-sized), is not
cut by the top of the view, and, if it lay on or beside a vehicle (not clearly in front of it on
the ground), was seen at rest there before the vehicle left and is still there once it has gone.
"""

from __future__ import annotations

import numpy as np

from detector.acts.recent import Recent
from detector.acts.values import Candidate, Person, size
from detector.boxes import area, gap, intersection, overlaps
from detector.config import ActsConfig


def find_owner(cfg: ActsConfig, cand: Candidate, recent: Recent, formed: float | None = None) -> None:
    """The person nearest to the object around the time it appeared, if close enough.
    `formed`: when most of the region's pixels began to differ (scene memory's median)."""
    best: tuple[float, Person] | None = None
    # A change older than anyone in view has no owner at all. Whoever left it was there when
    # the change began, or when the region took its present form: a bag put down where its
    # owner had stood a moment before, that change still showing (the recogniser's region
    # was another's, `region_since`, or scene memory's region moved onto it, `formed`).
    moments = {m for m in (cand.since, cand.region_since, formed) if m is not None}
    for _, people in (frame for m in sorted(moments) for frame in recent.people_around(m)):
        for p in people:
            d = gap(p.box, cand.box)
            # A dropped object comes to rest on the ground the person stands on, so its
            # bottom is near their foot line; a change up at head height (foliage, a
            # load on a truck, someone leaving at the top of the view) was not dropped.
            grounded = abs(cand.box[3] - p.box[3]) <= cfg.foot_band * p.height
            if grounded and d <= cfg.owner_reach * p.height and (best is None or d < best[0]):
                best = (d, p)
    if best is not None:
        cand.owner, cand.owner_height = best[1].track_id, best[1].height


def person_ghost(cfg: ActsConfig, cand: Candidate, recent: Recent) -> bool:
    """A region about as tall as a person, that person boxes mostly covered just before
    it appeared, is where people stood (one, or a group standing together whose boxes
    each hold only part of it), not an object they put down."""
    b = cand.box
    w, h = b[2] - b[0], b[3] - b[1]
    if w <= 0 or h <= 0:
        return False
    for _, people in recent.people_around(cand.since):
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


def person_part(cfg: ActsConfig, cand: Candidate, recent: Recent, view_bottom: float) -> bool:
    """A region that lay mostly inside a person's box when it appeared, up at their body rather
    than at their feet, is part of that person (head and shoulders, the back of someone seated
    whom the detector keeps losing), not something put down: a dropped thing rests on the
    ground its owner stands on, so its bottom is within the same `foot_band` of a foot line
    that the owner test asks for. An object on the ground in front of someone farther away
    lies below their feet in the image, not inside their body. A box cut by the bottom of the
    view (`view_bottom`) shows no foot line to judge by."""
    b = cand.box
    if area(b) <= 0:
        return False
    for _, people in recent.people_around(cand.since):
        # Tracked people only: an untracked box is a weak, often partial detection (legs and
        # a bag) whose bottom is no foot line.
        for p in people:
            if p.track_id < 0 or p.box[3] >= view_bottom - 1:
                continue
            inside = intersection(b, p.box) / area(b)
            if inside >= 0.5 and p.box[3] - b[3] > cfg.foot_band * p.height:
                return True
    return False


def attends(cfg: ActsConfig, p: Person, box) -> bool:
    """A person near enough to an object to be looking after it (AVSS 2007 used 2x the
    object's width; a small object is also attended within a fraction of the person's height)."""
    return gap(p.box, box) <= max(cfg.attend_factor * size(box), cfg.attend_person_frac * p.height)


def is_littering(cfg: ActsConfig, cand: Candidate, t: float) -> bool:
    """An owned, plausible, settled object that has lain unattended for `dwell_s`."""
    return (
        cand.owner is not None
        and size(cand.box) >= cfg.min_size_frac * cand.owner_height
        # Lying on the ground, anything one person carried stands lower than they do;
        # a taller region is people standing together, or a part of the scene.
        and cand.box[3] - cand.box[1] <= cfg.max_height_frac * cand.owner_height
        and t - cand.change_since >= cfg.confirm_s
        and t - cand.since >= cfg.min_static_s
        and cand.unattended_since is not None
        and t - cand.unattended_since >= cfg.dwell_s
    )
