"""Running clips through the pipeline in worker processes: clips + settings + jobs -> runs.

`run_clips` is the one seam between scoring and how clips are executed: today a local
process pool; another engine (a Ray cluster) only has to return the same `ClipRun`s.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from detector.config import Settings


@dataclass
class ActRecord:
    """What the bench keeps of an act (the matcher needs kind, t_notify and box)."""

    kind: str
    t_notify: float
    t_release: float
    box: list[int]
    object_class: str

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "t_notify": round(self.t_notify, 3),
            "t_release": round(self.t_release, 3),
            "box": self.box,
            "class": self.object_class,
        }

    @classmethod
    def from_json(cls, data: dict) -> ActRecord:
        return cls(data["kind"], data["t_notify"], data["t_release"], list(data["box"]), data["class"])


@dataclass
class ClipRun:
    file: str
    acts: list[ActRecord]
    frames: int
    video_s: float
    wall_s: float
    setup_s: float
    peak_rss_mb: float


def _init_worker(model_dir: str | None) -> None:
    if model_dir:
        os.environ["DETECTOR_MODEL_DIR"] = model_dir
    import cv2

    # Parallelism comes from the process pool; onnxruntime threads come from the config
    # (detector.threads), so keep OpenCV from adding its own thread pool on top.
    cv2.setNumThreads(1)


def run_clip(path: str, settings_data: dict) -> ClipRun:
    """Run the pipeline on one clip (in a worker process) and keep its acts and timings."""
    from detector.pipeline import Pipeline
    from detector.replay import iterate
    from detector.sources import FileSource

    settings = Settings.model_validate(settings_data)
    clip = Path(path)
    t0 = time.perf_counter()
    pipeline = Pipeline(settings)  # model load is setup, not per-frame speed
    t1 = time.perf_counter()
    acts: list[ActRecord] = []
    frames = 0
    last_t = 0.0
    for result in iterate(clip, settings, pipeline):
        frames += 1
        last_t = result.frame.time_s
        acts.extend(
            ActRecord(a.kind, float(a.t_notify), float(a.t_release), [int(v) for v in a.box], a.object_class)
            # Every kind is kept: found / vanished (nobody's act) are never matched by the scorer
            # but are listed per clip (`other_acts`) so they can be looked at.
            for a in result.acts
        )
    wall = time.perf_counter() - t1
    # Video time covered: the header duration (capped by max_seconds), or the last frame's time.
    estimate = FileSource(clip, None).duration_estimate_s
    if settings.source.max_seconds is not None:
        estimate = min(estimate, settings.source.max_seconds)
    video_s = max(last_t, estimate)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ClipRun(clip.name, acts, frames, video_s, wall, t1 - t0, rss_mb)


@dataclass(frozen=True)
class ClipTask:
    """One clip as a task for an engine of `detector.audit.engines` (Ray)."""

    index: int
    path: str
    settings_data: dict

    def run(self) -> tuple[int, ClipRun]:
        return self.index, run_clip(self.path, self.settings_data)


def run_clips(
    paths: Sequence[Path],
    settings: Settings,
    *,
    jobs: int,
    model_dir: Path | None = None,
    progress: bool | None = None,
    desc: str = "bench",
    on_done: Callable[[int, ClipRun], None] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> list[ClipRun]:
    """Run every clip with the same settings on `jobs` worker processes; runs in the order of `paths`.

    `on_done(i, run)` is called in the parent as each clip finishes (for caching).
    `progress` None shows a bar only on a terminal.
    """
    from tqdm import tqdm

    settings_data = settings.model_dump(mode="json")
    runs: list[ClipRun | None] = [None] * len(paths)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(paths), unit="clip", desc=desc, disable=not show, file=sys.stderr)
    if engine == "ray":
        _run_on_ray(paths, settings_data, jobs, model_dir, address, runs, on_done, bar)
        return [r for r in runs if r is not None]
    import multiprocessing

    with ProcessPoolExecutor(
        max_workers=max(1, min(jobs, len(paths))),
        # Spawned, not forked (as `detector audit`'s local engine): a caller that already ran the
        # pipeline has threads (onnxruntime's pool, OpenCV, frame readers) whose locks a forked
        # child inherits held; such a child hung for good in tests/accuracy (futex wait).
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(str(model_dir) if model_dir else None,),
    ) as pool:
        futures = {pool.submit(run_clip, str(p), settings_data): i for i, p in enumerate(paths)}
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                runs[i] = fut.result()
                if on_done is not None:
                    on_done(i, runs[i])
                bar.set_postfix_str(runs[i].file, refresh=False)
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
    return [r for r in runs if r is not None]


def _run_on_ray(paths, settings_data, jobs, model_dir, address, runs, on_done, bar) -> None:
    """The same clips on Ray actors (`detector audit`'s Ray engine)."""
    from detector.audit.engines import Failed, RayEngine, results
    from detector.protocol.errors import UserError

    if model_dir:
        os.environ["DETECTOR_MODEL_DIR"] = str(model_dir)  # passed on to the actors
    engine = RayEngine(jobs, address)
    try:
        for result in results(engine, [ClipTask(i, str(p), settings_data) for i, p in enumerate(paths)]):
            if isinstance(result, Failed):
                raise UserError(f"{result.task.path}: {result.message}")
            i, run = result
            runs[i] = run
            if on_done is not None:
                on_done(i, run)
            bar.set_postfix_str(run.file, refresh=False)
            bar.update(1)
    finally:
        bar.close()
        engine.close()
