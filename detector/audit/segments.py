"""Long recordings in segments: the plan, the overlap rule, and merging the segments' acts.

A segment owns the acts notified in `[own_from, own_to)`. It starts processing `overlap_s`
earlier (its warm-up) so that its scene memory and act recogniser are in the state the whole
file would have them in by `own_from`, and runs `margin_s` past `own_to`, so that an act
notified near a boundary is found by both neighbours and merged once.

The overlap rule, from the settings (defaults in brackets):

    overlap = warmup_s [3] + startup_s [3]                 the background is learnt, early objects classed
            + owner_lookback_s [2]                         the owner of an object must have been seen
            + candidate_hold_s [30]                        a candidate stays in view for a littering act this long,
            + long_tau_s * ln(255 / diff_threshold) [76.4] then fades into the long-term background
            = 114.4 s, rounded up to whole analysis intervals

An object whose story began before a segment's warm-up ended (so the segment may see it
differently from the whole file) can give an act only before `own_from`, where the previous
segment owns it: a static region gives a littering act at most `candidate_hold_s` after it
appeared, plus the time the long-term model takes to absorb even the strongest change (grey
step 255 down to `diff_threshold`) once no longer held. Clean-ups look back
`touch_memory_s + gone_s + pickup_window_s` (22 s), shorter than that. The one thing no overlap
bounds is litter that lay longer than the overlap before the segment: a segment starts with it
as part of the scene (or as existing litter when the detector classes it at start-up), so its
clean-up is found by the "removed" path rather than as litter known from its littering act.

`margin_s = dwell_s + gone_s` [2]: the waits between a look and a notification, the amount by
which one act's notification can move when a neighbour's state differs by one look.

Segmentation depends only on the file's duration (from its container) and the settings:
never on the engine or the number of jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detector.boxes import cover
from detector.config import Settings
from detector.protocol.scoring import OPENING

_TOL = 1e-6


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float  # processing starts (the warm-up)
    own_from: float  # acts notified from here...
    own_to: float | None  # ...to here are this segment's (None: to the end of the file)
    end_s: float | None  # processing stops (own_to + margin; None: the end of the file)

    def to_json(self) -> dict:
        return {"index": self.index, "start_s": self.start_s, "own_from": self.own_from, "own_to": self.own_to}


@dataclass(frozen=True)
class SegmentRule:
    segment_s: float  # nominal length of one segment's own range
    overlap_s: float
    margin_s: float
    interval_s: float  # one analysis interval: every boundary lies on the analysis grid

    @classmethod
    def from_settings(cls, settings: Settings, segment_s: float) -> SegmentRule:
        s, a = settings.scene, settings.acts
        interval = 1.0 / settings.source.analysis_fps
        absorb = s.long_tau_s * math.log(255.0 / s.diff_threshold) if s.diff_threshold < 255 else 0.0
        story = max(
            a.owner_lookback_s + s.candidate_hold_s + absorb,
            a.touch_memory_s + a.gone_s + a.pickup_window_s,
            a.vehicle_memory_s,
        )
        overlap = _up(s.warmup_s + a.startup_s + story, interval)
        margin = _up(a.dwell_s + a.gone_s, interval)
        # A segment's warm-up never reaches back past its neighbour's own range (plus both
        # margins): then only neighbours ever find the same act, which keeps merging simple.
        segment = max(_up(segment_s, interval), overlap + 2 * margin + interval)
        return cls(segment, overlap, margin, interval)

    def plan(self, duration_s: float) -> list[Segment]:
        """Segments of a file `duration_s` long (from its header; the last one runs to the
        real end of the file, whatever the header said)."""
        n = max(1, math.floor(duration_s / self.segment_s + 0.5))
        bounds = [0.0] + [_grid(k * duration_s / n, self.interval_s) for k in range(1, n)]
        out = []
        for k, own_from in enumerate(bounds):
            own_to = bounds[k + 1] if k + 1 < n else None
            out.append(
                Segment(
                    index=k,
                    start_s=max(0.0, _grid(own_from - self.overlap_s, self.interval_s)),
                    own_from=own_from,
                    own_to=own_to,
                    end_s=None if own_to is None else _grid(own_to + self.margin_s, self.interval_s),
                )
            )
        return out

    def to_json(self) -> dict:
        return {
            "segment_s": self.segment_s,
            "overlap_s": self.overlap_s,
            "margin_s": self.margin_s,
            "interval_s": self.interval_s,
        }


def _grid(t: float, interval: float) -> float:
    return round(round(t / interval) * interval, 6)


def _up(t: float, interval: float) -> float:
    return round(math.ceil(t / interval - _TOL) * interval, 6)


# -- merging -----------------------------------------------------------------------------------


def _same_act(a: dict, b: dict, margin_s: float) -> bool:
    return (
        a["kind"] == b["kind"]
        and a["zone"] == b["zone"]
        and cover(tuple(a["box"]), tuple(b["box"])) >= 0.5
        and abs(a["t_notify"] - b["t_notify"]) <= margin_s + _TOL
    )


def merge(segments: list[Segment], acts: list[list[dict]], margin_s: float) -> list[dict]:
    """One file's acts from its segments' (each a list of `Act.to_json()` dicts in the order
    the segment emitted them), in notification order, with litter ids renumbered per file.

    - An act found by two neighbours (same kind, zone and place, notified within `margin_s`)
      is kept once, as the earlier segment saw it (it has the longer history). The later
      segment's copy tells which of its litter ids that act's litter is.
    - An act found by one segment only counts where that segment owns the time.
    """
    tagged = [[(k, i, a) for i, a in enumerate(seg_acts)] for k, seg_acts in enumerate(acts)]
    twin: dict[tuple[int, int], tuple[int, int]] = {}  # later copy -> earlier copy
    for k in range(len(segments) - 1):
        nxt = segments[k + 1]
        boundary = segments[k].own_to
        # Every act both saw: the later segment's up to the boundary band's end, the earlier
        # segment's from where the later one started.
        early = [x for x in tagged[k] if x[2]["t_notify"] + _TOL >= nxt.start_s]
        late = [x for x in tagged[k + 1] if x[2]["t_notify"] < boundary + margin_s - _TOL]
        pairs = sorted(
            (abs(e[2]["t_notify"] - lt[2]["t_notify"]), e[1], lt[1])
            for e in early
            for lt in late
            if _same_act(e[2], lt[2], margin_s)
        )
        used_e: set[int] = set()
        used_l: set[int] = set()
        for _, ei, li in pairs:
            if ei not in used_e and li not in used_l:
                used_e.add(ei)
                used_l.add(li)
                twin[(k + 1, li)] = (k, ei)
    paired_earlier = set(twin.values())
    kept: list[tuple[int, int, dict]] = []
    for k, seg in enumerate(segments):
        for _, i, a in tagged[k]:
            t = a["t_notify"]
            if (k, i) in twin:
                continue  # the earlier segment's copy stands for it
            owned = t + _TOL >= seg.own_from and (seg.own_to is None or t + _TOL < seg.own_to)
            if owned or ((k, i) in paired_earlier and t + _TOL >= seg.own_from):
                kept.append((k, i, a))
    kept.sort(key=lambda x: (x[2]["t_notify"], x[0], x[1]))
    return _renumber(kept, twin, acts)


def _renumber(kept: list[tuple[int, int, dict]], twin: dict, acts: list[list[dict]]) -> list[dict]:
    """Litter ids 1, 2, ... in order of first mention, the same whether the file was processed
    whole or in segments. A clean-up (or litter vanished) names the litter of a littering (or
    found) record when its segment knew that litter from it (directly or through its twin),
    else the last open litter at the same place (its segment started with it already lying
    there)."""
    gid: dict[tuple[int, int], int] = {}  # (segment, segment's litter id) -> file litter id
    twins_of: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for later, earlier in twin.items():
        twins_of.setdefault(earlier, []).append(later)
    open_litter: dict[int, dict] = {}  # file litter id -> its littering act, until cleaned up
    next_id = 1
    out = []
    for k, i, a in kept:
        a = dict(a)
        if a["kind"] in OPENING:  # littering, or litter found lying there at the start
            new = next_id
            next_id += 1
            gid[(k, a["litter_id"])] = new
            for lk, li in twins_of.get((k, i), []):
                gid[(lk, acts[lk][li]["litter_id"])] = new
            a["litter_id"] = new
            open_litter[new] = a
        else:
            items = [a["litter_id"]] + [x["litter_id"] for x in a.get("also", [])]
            ids = []
            for n, lid in enumerate(items):
                g = gid.get((k, lid))
                if g is None:
                    g = _at_same_place(a, open_litter, exclude=ids, primary=n == 0)
                if g is None:
                    g = next_id
                    next_id += 1
                gid[(k, lid)] = g
                ids.append(g)
                open_litter.pop(g, None)
            a["litter_id"] = ids[0]
            if "also" in a:
                a["also"] = [{**x, "litter_id": g} for x, g in zip(a["also"], ids[1:])]
        out.append(a)
    return out


def _at_same_place(act: dict, open_litter: dict[int, dict], exclude: list[int], primary: bool) -> int | None:
    """The latest open littering in the act's zone under its box (for the first item: the box
    is that item's; for the others the box covers the whole pick-up)."""
    box = tuple(act["box"])
    for g in sorted(open_litter, reverse=True):
        lit = open_litter[g]
        if g in exclude or lit["zone"] != act["zone"]:
            continue
        if cover(tuple(lit["box"]), box) >= (0.5 if primary else 0.99):
            return g
    return None
