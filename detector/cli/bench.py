"""`detector bench DIR --truth TRUTH.yaml`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="score the detector against ground truth (accuracy and speed)",
        description="Run every clip of a truth file found in DIR (in parallel processes) and score the "
        "recognised acts like the IWDD contest: an act counts when it is notified between 5 s before "
        "and 10 s after the true onset. The headline score is located: the act's box must also touch "
        "the truth box grown by half its size on every side. Writes JSON, a Markdown report, a "
        "timeline plot and a delay plot.",
    )
    p.add_argument("dir", type=Path, help="directory holding the clips named in the truth file")
    p.add_argument("--truth", type=Path, required=True, help="truth YAML (clips: [{file, events: [...]}])")
    p.add_argument("--json", type=Path, required=True, help="write results as JSON here")
    p.add_argument("--config", type=Path, default=None, help="YAML settings used for every clip")
    p.add_argument(
        "--model-dir", type=Path, default=None, help="directory to look for models in (sets DETECTOR_MODEL_DIR)"
    )
    p.add_argument("--report", type=Path, default=None, help="Markdown report (default: beside --json, .md)")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG (default: beside --json, .png)")
    p.add_argument(
        "--delay-plot", type=Path, default=None, help="delay distribution PNG (default: beside --json, .delays.png)"
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(clips, CPU count))")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local processes (default) or Ray")
    p.add_argument("--address", default=None, help="Ray cluster (auto or ray://HOST:PORT); default: a Ray started here")
    p.add_argument(
        "--clips", nargs="+", default=None, metavar="NAME", help="only these clips (file name, stem or name)"
    )
    p.add_argument(
        "--skip-missing", action="store_true", help="bench the clips found instead of failing on a missing one"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from detector import bench

    out = bench.run(
        bench.BenchOptions(
            footage=args.dir,
            truth=args.truth,
            json=args.json,
            config=args.config,
            model_dir=args.model_dir,
            report=args.report,
            plot=args.plot,
            delay_plot=args.delay_plot,
            jobs=args.jobs,
            clips=args.clips,
            skip_missing=args.skip_missing,
            engine=args.engine,
            address=args.address,
        )
    )
    print(summary_line(out.result, out.json))
    return 0


def summary_line(result: dict, out_json: Path) -> str:
    """The headline (located), the time-only F1 beside it, and speed."""
    o, t = result["located"], result["overall"]
    return (
        f"{len(result['clips'])} clips, located: TP {o['tp']} FP {o['fp']} FN {o['fn']}  "
        f"precision {o['precision']:.2f} recall {o['recall']:.2f} F1 {o['f1']:.2f}  "
        f"(time only: TP {t['tp']} FP {t['fp']} FN {t['fn']} F1 {t['f1']:.2f})  "
        f"{result['speed']['realtime_factor']:.1f}x real time  -> {out_json}"
    )
