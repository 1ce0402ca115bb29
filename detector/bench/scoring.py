"""Matching acts to truth events and counting, IWDD-style.

Scoring follows the IWDD contest (Mivia-IWDD): a detected act matches a truth event of
its kind when its notification time lies in [t_start - 5 s, t_start + 10 s] (both edges
inclusive, with a 1 µs tolerance for float rounding). Matching is one-to-one and optimal:
scipy's `linear_sum_assignment` maximises the number of matches and, among those, minimises
the total |delay|. A second act on an already matched event is a false positive.

Unscored truth events (`scored: false`, informational types): an act in their window that
matched no scored event is "ignored" (neither TP nor FP), and they are never misses.

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
_EPS = 1e-6


class ActLike(Protocol):
    kind: str
    t_notify: float


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

    `matches` holds (event index, act index, delay s); `outcomes[i]` is 'tp', 'fp' or
    'ignored' for act i; `missed` lists the indices of unmatched scored events.
    """

    by_kind: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    matches: list[tuple[int, int, float]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    @property
    def total(self) -> Counts:
        c = Counts()
        for k in KINDS:
            c.add(self.by_kind[k])
        return c

    @property
    def delays(self) -> list[float]:
        return [d for _, _, d in self.matches]


def in_window(t_notify: float, t_start: float) -> bool:
    delay = t_notify - t_start
    return -WINDOW_BEFORE_S - _EPS <= delay <= WINDOW_AFTER_S + _EPS


def match_acts(truth_events: Sequence[TruthEvent], acts: Sequence[ActLike]) -> ClipScore:
    score = ClipScore(outcomes=["fp"] * len(acts))
    scored = [i for i, e in enumerate(truth_events) if e.kind is not None]
    if scored and acts:
        # Infeasible pairs cost more than any set of feasible ones (each <= 10 s), so the
        # assignment first maximises the number of matches, then minimises total |delay|.
        big = 1e6
        cost = np.full((len(scored), len(acts)), big)
        for r, ei in enumerate(scored):
            ev = truth_events[ei]
            for c, act in enumerate(acts):
                if act.kind == ev.kind and in_window(act.t_notify, ev.t_start):
                    cost[r, c] = abs(act.t_notify - ev.t_start)
        for r, c in zip(*linear_sum_assignment(cost)):
            if cost[r, c] < big:
                ei = scored[r]
                score.matches.append((ei, int(c), acts[c].t_notify - truth_events[ei].t_start))
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
        if act.kind not in score.by_kind:
            raise ValueError(f"unknown act kind {act.kind!r}")
        if score.outcomes[c] == "tp":
            score.by_kind[act.kind].tp += 1
        elif score.outcomes[c] == "fp":
            score.by_kind[act.kind].fp += 1
    for ei in scored:
        if ei not in matched_events:
            score.missed.append(ei)
            score.by_kind[truth_events[ei].kind].fn += 1
    return score


def score_totals(scores: Sequence[ClipScore]) -> dict[str, Any]:
    """Micro-averaged totals: counts summed over clips, then precision/recall/F1."""
    overall = Counts()
    by_kind = {k: Counts() for k in KINDS}
    delays: list[float] = []
    for s in scores:
        for k in KINDS:
            by_kind[k].add(s.by_kind[k])
            overall.add(s.by_kind[k])
        delays.extend(s.delays)
    return {
        "overall": overall.metrics(),
        "by_type": {k: c.metrics() for k, c in by_kind.items()},
        "delays": delay_stats(delays),
    }


def delay_stats(delays: list[float]) -> dict[str, float | int | None]:
    if not delays:
        return {"count": 0, "mean_s": None, "median_s": None, "min_s": None, "max_s": None}
    return {
        "count": len(delays),
        "mean_s": round(statistics.fmean(delays), 3),
        "median_s": round(statistics.median(delays), 3),
        "min_s": round(min(delays), 3),
        "max_s": round(max(delays), 3),
    }
