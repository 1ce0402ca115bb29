"""Leave-one-clip-out check: do the recogniser's defaults hold if any one clip had not existed?

For each `--param SECTION.KEY=V1,V2,...` every clip of the truth file is run once per value
(one setting changed at a time; runs are cached on disk, so a rerun costs only new runs).
For each clip, each setting's value is chosen by located F1 on the *other* clips (ties keep
the default), and the held-out clip is scored with the chosen value and with the default.
See `detector/bench/loco.py` for the method. Not a test: run by hand, e.g.

    nice -n 10 .venv/bin/python benchmarks/bench_loco.py ../shared/footage \\
        --param acts.dwell_s=0.5,1,2 --param scene.persist_s=1,1.5,2 --out out/loco

writes out/loco/loco.json and out/loco/loco.md. Time: each setting adds (values - 1) full
passes over the clips. The example (5 passes, 95 clip runs, 2723 s of video) took 43 and 50 min
cold in two runs with --jobs 2 on this 2-core box while other jobs kept its load between 15 and
55 (about 0.5x real time per worker); a quiet box is several times faster. A rerun whose runs
are all cached takes about 20 s (start-up, hashing the clips); a change to the code a clip run
imports invalidates its runs. `--plan` prints the work and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from detector.assets import cache_dir, sha256_of
from detector.bench import loco
from detector.bench.truth import load_truth, select_clips
from detector.config import load_settings
from detector.protocol.errors import UserError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("footage", type=Path, help="directory holding the clips named in the truth file")
    ap.add_argument("--truth", type=Path, default=None, help="truth YAML (default: FOOTAGE/truth.yaml)")
    ap.add_argument(
        "--param",
        action="append",
        required=True,
        metavar="SECTION.KEY=V1,V2,...",
        help="a setting and the values to try (repeatable); its current value is always tried",
    )
    ap.add_argument("--config", type=Path, default=None, help="base settings YAML (default: the defaults)")
    ap.add_argument("--out", type=Path, default=Path("out/loco"), help="directory for loco.json and loco.md")
    ap.add_argument(
        "--cache", type=Path, default=None, help="cache of clip runs (default: the user cache, detector/loco)"
    )
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    ap.add_argument("--model-dir", type=Path, default=None, help="directory to look for models in")
    ap.add_argument("--clips", nargs="+", default=None, metavar="NAME", help="only these clips")
    ap.add_argument("--plan", action="store_true", help="print the runs needed (and cached) and exit")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"bench_loco: error: {e}", file=sys.stderr)
        return e.exit_code


def run(args: argparse.Namespace) -> int:
    truth_path = args.truth or args.footage / "truth.yaml"
    truth = load_truth(truth_path)
    base = load_settings(args.config)
    if not args.footage.is_dir():
        raise UserError(f"{args.footage}: footage directory not found")
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    clips = select_clips(truth, args.clips)
    missing = [c.file for c in clips if not (args.footage / c.file).is_file()]
    if missing:
        raise UserError(f"{args.footage}: clip(s) of {truth_path} not found: {', '.join(missing)}")
    params = [loco.parse_param(p, base) for p in args.param]
    if len({p.name for p in params}) != len(params):
        raise UserError("--param: a setting is named twice")
    if args.model_dir is not None:
        if not args.model_dir.is_dir():
            raise UserError(f"{args.model_dir}: model directory not found")
        os.environ["DETECTOR_MODEL_DIR"] = str(args.model_dir)
    from detector.models import resolve_model

    _, model_path = resolve_model(base.detector.model, base.detector.model_path)
    paths = [args.footage / c.file for c in clips]
    cache = loco.RunCache(args.cache or cache_dir() / "loco")
    code = loco.code_fingerprint()  # a fresh interpreter lists what a clip run imports
    variants, index = loco.variants_of(base, params)
    plan = loco.make_plan(paths, variants, cache, sha256_of(model_path), code)
    todo_video_s = _video_to_run(plan, paths)
    print(
        f"{len(params)} setting(s), {len(variants)} variant(s) x {len(clips)} clips = {plan.total} clip runs: "
        f"{plan.total - plan.missing} cached, {plan.missing} to run ({todo_video_s:.0f} s of video); "
        f"cache {cache.root}",
        file=sys.stderr,
    )
    if args.plan:
        return 0

    jobs = args.jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    # One bar over the video still to process (not over runs: clips differ 20x in length).
    bar = tqdm(total=round(todo_video_s), unit="s video", desc="loco", disable=not sys.stderr.isatty())
    try:
        runs = loco.execute(
            plan,
            paths,
            cache,
            jobs=jobs,
            model_dir=args.model_dir,
            on_run=lambda r: bar.update(round(r.video_s)),
            keyed_code=code,
        )
    finally:
        bar.close()
    result = loco.loco_result(
        clips,
        params,
        plan,
        runs,
        index,
        truth=truth_path,
        config=args.config,
        code=code,
        elapsed_s=time.perf_counter() - t0,
    )
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "loco.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (args.out / "loco.md").write_text(loco.render_markdown(result), encoding="utf-8")
    except OSError as e:
        raise UserError(f"{args.out}: cannot write: {e.strerror}") from None
    for p in result["params"]:
        pc, pd = p["pooled_held_out"]["chosen"], p["pooled_held_out"]["default"]
        print(
            f"{p['param']}: default {p['default']} holds for {p['default_holds']}/{len(clips)} clips left out; "
            f"held-out located F1 {pc['f1']:.2f} with the value chosen without the clip, "
            f"{pd['f1']:.2f} with the default"
        )
    print(f"-> {args.out / 'loco.md'}")
    return 0


def _video_to_run(plan: loco.Plan, paths: list[Path]) -> float:
    from detector.sources import FileSource

    durations = [FileSource(p, None).duration_estimate_s for p in paths]
    return sum(durations[c] for row in plan.cached for c, r in enumerate(row) if r is None)


if __name__ == "__main__":
    sys.exit(main())
