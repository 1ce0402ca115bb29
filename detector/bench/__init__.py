"""`detector bench`: the recogniser's accuracy and speed against ground truth.

One module per seam: `truth` (the truth file), `scoring` (matching acts to events and
counting), `runner` (running clips in worker processes), `report` and `plot` (what a person
reads), `result` (one bench run from options to files), `loco` (the leave-one-clip-out check
of settings behind `benchmarks/bench_loco.py`).
"""

from detector.bench.result import BenchOptions, BenchOutput, build_result, run
from detector.bench.runner import ActRecord, ClipRun, run_clips
from detector.bench.scoring import ClipScore, Counts, in_window, match_acts, prf, score_totals
from detector.bench.truth import KINDS, SCORED_TYPES, TruthClip, TruthEvent, TruthFile, load_truth, select_clips

__all__ = [
    "KINDS",
    "SCORED_TYPES",
    "ActRecord",
    "BenchOptions",
    "BenchOutput",
    "ClipRun",
    "ClipScore",
    "Counts",
    "TruthClip",
    "TruthEvent",
    "TruthFile",
    "build_result",
    "in_window",
    "load_truth",
    "match_acts",
    "prf",
    "run",
    "run_clips",
    "score_totals",
    "select_clips",
]
