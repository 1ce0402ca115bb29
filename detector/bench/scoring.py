"""Matching acts to truth events and counting: IWDD time-only, and located (time and place).

**Time only (IWDD).** Scoring follows the IWDD contest (Mivia-IWDD): a detected act matches
a truth event of its kind when its notification time lies in [t_start - 5 s, t_start + 10 s]
(both edges inclusive, with a 1 µs tolerance for float rounding).

**Located (the headline).** Time alone can credit the wrong object (a clean-up of another
spot in the same minute), so the located score also needs the act's box to touch the truth
`where.box` grown by half its width and height on every side (touching edges count). The
growth allows for the act's box being the region that changed (object plus shadow, or the
part not hidden by a person) rather than a tight box around the object.
A scored event whose truth has no `where.box` (some annotations only describe the place)
cannot be checked for place: located judges it on time alone, exactly as the IWDD score
does, so located never credits less than it can check and the two scores count the same
events. How many events were judged so is reported (`located.events_time_only`), per match
(`place: "unknown"`), and in the report, so a headline resting on them is visible.

Both scores: matching is one-to-one and optimal: scipy's `linear_sum_assignment` maximises
the number of matches and, among those, minimises the total |delay|. A second act on an
already matched event is a false positive. Unscored truth events (`scored: false`,
informational types): an act in their window (time only, in both scores) that matched no
scored event is "ignored" (neither TP nor FP), and they are never misses. Acts of kinds the
bench does not score (anything but littering and clean-up, e.g. litter found already lying
there, or litter that vanished with nobody near) are "other": never matched, never counted.

Zero cases: precision = 1.0 when nothing was detected (no false alarm was made), recall =
1.0 when there was nothing to find, F1 = 0.0 when precision + recall = 0. So a negative
clip with no detections scores 1/1/1, never NaN.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from detector.bench.truth import KINDS, TruthEvent

WINDOW_BEFORE_S = 5.0
WINDOW_AFTER_S = 10.0
# The truth box grows by this fraction of its width (height) on the left and right (top and bottom).
PLACE_GROWTH = 0.5
_EPS = 1e-6


class ActLike(Protocol):
    kind: str
    t_notify: float
    box: Sequence[float]  # x1, y1, x2, y2 in pixels of the source frame


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def metrics(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, **prf(self.tp, self.fp, self.fn)}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 with the zero cases defined in the module docstring."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@dataclass
class ClipScore:
    """Outcome of matching one clip's acts against its truth events.

    `matches` holds (event index, act index, delay s); `outcomes[i]` is 'tp', 'fp',
    'ignored' or 'other' (a kind the bench does not score) for act i; `missed` lists the
    indices of unmatched scored events; `located` says which score this is.
    """

    by_kind: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    matches: list[tuple[int, int, float]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    located: bool = False

    @property
    def total(self) -> Counts:
        c = Counts()
        for k in KINDS:
            c.add(self.by_kind[k])
        return c

    @property
    def delays(self) -> list[float]:
        return [d for _, _, d in self.matches]

    def delays_of(self, kind: str, acts: Sequence[ActLike]) -> list[float]:
        return [d for _, ai, d in self.matches if acts[ai].kind == kind]


def in_window(t_notify: float, t_start: float) -> bool:
    delay = t_notify - t_start
    return -WINDOW_BEFORE_S - _EPS <= delay <= WINDOW_AFTER_S + _EPS


def grown(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The truth box grown by PLACE_GROWTH of its width and height on every side."""
    x1, y1, x2, y2 = box
    dx, dy = PLACE_GROWTH * (x2 - x1), PLACE_GROWTH * (y2 - y1)
    return x1 - dx, y1 - dy, x2 + dx, y2 + dy


def in_place(act_box: Sequence[float], truth_box: Sequence[float] | None) -> bool:
    """Whether an act's box touches the grown truth box (edges touching count); True when no truth box."""
    if truth_box is None:
        return True
    gx1, gy1, gx2, gy2 = grown(truth_box)
    ax1, ay1, ax2, ay2 = act_box
    return ax1 <= gx2 and ax2 >= gx1 and ay1 <= gy2 and ay2 >= gy1


def _pairs(ev: TruthEvent, act: ActLike, located: bool) -> bool:
    return act.kind == ev.kind and in_window(act.t_notify, ev.t_start) and (not located or in_place(act.box, ev.box))


def match_acts(truth_events: Sequence[TruthEvent], acts: Sequence[ActLike], *, located: bool = False) -> ClipScore:
    """One-to-one optimal matching of a clip's acts to its truth events (time only, or time and place)."""
    score = ClipScore(outcomes=["fp" if a.kind in KINDS else "other" for a in acts], located=located)
    scored = [i for i, e in enumerate(truth_events) if e.kind is not None]
    candidates = [c for c, a in enumerate(acts) if a.kind in KINDS]
    if scored and candidates:
        # Infeasible pairs cost more than any set of feasible ones (each <= 10 s), so the
        # assignment first maximises the number of matches, then minimises total |delay|.
        big = 1e6
        cost = np.full((len(scored), len(candidates)), big)
        for r, ei in enumerate(scored):
            ev = truth_events[ei]
            for col, c in enumerate(candidates):
                if _pairs(ev, acts[c], located):
                    cost[r, col] = abs(acts[c].t_notify - ev.t_start)
        for r, col in zip(*linear_sum_assignment(cost)):
            if cost[r, col] < big:
                ei, c = scored[r], candidates[col]
                score.matches.append((ei, c, acts[c].t_notify - truth_events[ei].t_start))
                score.outcomes[c] = "tp"
        score.matches.sort()
    matched_events = {ei for ei, _, _ in score.matches}
    unscored = [e for e in truth_events if e.kind is None]
    for c, act in enumerate(acts):
        if score.outcomes[c] == "fp" and any(
            act.kind in e.absorbs and in_window(act.t_notify, e.t_start) for e in unscored
        ):
            score.outcomes[c] = "ignored"
    for c, act in enumerate(acts):
        if score.outcomes[c] == "tp":
            score.by_kind[act.kind].tp += 1
        elif score.outcomes[c] == "fp":
            score.by_kind[act.kind].fp += 1
    for ei in scored:
        if ei not in matched_events:
            score.missed.append(ei)
            score.by_kind[truth_events[ei].kind].fn += 1
    return score


def place_labels(truth_events: Sequence[TruthEvent], acts: Sequence[ActLike], located: ClipScore) -> list[str | None]:
    """Per act: 'ok' (a located match on a boxed event), 'unknown' (a located match on an event
    without a box), 'wrong' (not a located match, but in time for a scored boxed event of its kind
    whose grown box it misses: right time, wrong place), or None."""
    matched = {ai: ei for ei, ai, _ in located.matches}
    labels: list[str | None] = []
    for c, act in enumerate(acts):
        if c in matched:
            labels.append("ok" if truth_events[matched[c]].box is not None else "unknown")
        elif located.outcomes[c] == "fp" and any(
            e.kind == act.kind and e.box is not None and in_window(act.t_notify, e.t_start) for e in truth_events
        ):
            labels.append("wrong")
        else:
            labels.append(None)
    return labels


def score_totals(scores: Sequence[ClipScore], acts: Sequence[Sequence[ActLike]] | None = None) -> dict[str, Any]:
    """Micro-averaged totals: counts summed over clips, then precision/recall/F1.

    With each clip's `acts` given, delays are also split by act kind (`delays_by_type`)."""
    overall = Counts()
    by_kind = {k: Counts() for k in KINDS}
    delays: list[float] = []
    for s in scores:
        for k in KINDS:
            by_kind[k].add(s.by_kind[k])
            overall.add(s.by_kind[k])
        delays.extend(s.delays)
    out = {
        "overall": overall.metrics(),
        "by_type": {k: c.metrics() for k, c in by_kind.items()},
        "delays": delay_stats(delays),
    }
    if acts is not None:
        out["delays_by_type"] = {
            k: delay_stats([d for s, a in zip(scores, acts, strict=True) for d in s.delays_of(k, a)]) for k in KINDS
        }
    return out


def delay_stats(delays: Sequence[float]) -> dict[str, Any]:
    """Count, mean, quartiles, the 90th percentile (the wait an operator can count on in nine
    cases out of ten), extremes and the sorted values of notification - onset delays (s)."""
    if not delays:
        return {"count": 0, "mean_s": None, "median_s": None, "min_s": None, "max_s": None}
    q1, _, q3 = statistics.quantiles(delays, n=4, method="inclusive") if len(delays) > 1 else (delays[0],) * 3
    p90 = statistics.quantiles(delays, n=10, method="inclusive")[-1] if len(delays) > 1 else delays[0]
    return {
        "count": len(delays),
        "mean_s": round(statistics.fmean(delays), 3),
        "median_s": round(statistics.median(delays), 3),
        "min_s": round(min(delays), 3),
        "max_s": round(max(delays), 3),
        "q1_s": round(q1, 3),
        "q3_s": round(q3, 3),
        "p90_s": round(p90, 3),
        "values_s": sorted(round(d, 3) for d in delays),
    }
