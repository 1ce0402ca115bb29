"""Leave-one-clip-out check of settings: would the default still be chosen without each clip?

For a few named settings and candidate values, every clip of a truth file is run once per
value (one setting changed at a time, the others at their defaults). Then, for each clip and
each setting, the value with the best located F1 on the *other* clips is chosen (ties keep
the default, since the question is whether the default holds), and the held-out clip is
scored with the chosen value and with the default. A default that is only right because of
one clip shows up as a clip whose removal changes the choice; pooling every held-out clip's
counts at its chosen value gives an honest estimate of what tuning on the files would buy.

Clip runs are cached on disk, keyed by the clip's sha256, the full settings, the model file's
sha256 and a fingerprint of the pipeline's source code, so a rerun (or another setting on the
same clips) costs only the runs not seen before, and a change to the recogniser invalidates
what it would change.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from detector.bench.runner import ActRecord, ClipRun, run_clips
from detector.bench.scoring import Counts, match_acts, prf
from detector.bench.truth import KINDS, TruthClip
from detector.config import Settings
from detector.protocol.config import format_error
from detector.protocol.errors import UserError

CACHE_VERSION = 1  # bump when ClipRun's cached shape changes


@dataclass(frozen=True)
class Param:
    """One setting under test: its dotted path, its default and the values to try (default included)."""

    name: str
    default: Any
    values: tuple[Any, ...]


def get_setting(settings: Settings, name: str) -> Any:
    node: Any = settings
    for part in name.split("."):
        if not hasattr(node, part):
            raise UserError(f"--param {name}: no such setting ({part!r} unknown)")
        node = getattr(node, part)
    return node


def with_setting(settings: Settings, name: str, value: Any) -> Settings:
    """A copy of `settings` with one dotted setting changed, validated as a config file would be."""
    data = settings.model_dump(mode="json")
    node = data
    parts = name.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise UserError(format_error(e, f"--param {name}={value}")) from None


def parse_param(text: str, base: Settings) -> Param:
    """`section.key=v1,v2,...` -> Param; values are YAML scalars, the base value is always included."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise UserError(f"--param {text!r}: expected SECTION.KEY=V1,V2,... (e.g. acts.dwell_s=0.5,1,2)")
    default = get_setting(base, name)
    if "." not in name or isinstance(default, list | dict) or hasattr(default, "model_dump"):
        raise UserError(f"--param {name}: only single-valued settings can be varied")
    values: list[Any] = []
    for token in raw.split(","):
        try:
            parsed = yaml.safe_load(token.strip())
        except yaml.YAMLError:
            raise UserError(f"--param {name}: cannot read value {token.strip()!r}") from None
        # Validated through the settings model, so "1" and "1.0" are one value for a float setting.
        value = get_setting(with_setting(base, name, parsed), name)
        if value not in values:
            values.append(value)
    if default not in values:
        values.append(default)
    return Param(name, default, tuple(sorted(values, key=_order)))


def _order(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0.0, str(v))


# -- the cache -------------------------------------------------------------------------------


# What a clip run imports, listed by a fresh interpreter so the caller's own imports do not count.
_LIST_PIPELINE_MODULES = """
import importlib, sys
for name in ("detector.pipeline", "detector.replay", "detector.sources", "detector.bench.runner"):
    importlib.import_module(name)
for name, module in sorted(sys.modules.items()):
    if name == "detector" or name.startswith("detector."):
        print(name, getattr(module, "__file__", None) or "")
"""
# Imported on the way but never part of a clip run's result: the rest of the bench (scoring,
# reports, this module), the CLI and the backend.
_NOT_PIPELINE = ("detector.bench", "detector.cli", "detector.backend")


def pipeline_sources() -> list[Path]:
    """Source files of every detector module a clip run imports, plus the model manifests."""
    out = subprocess.run([sys.executable, "-c", _LIST_PIPELINE_MODULES], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UserError(f"cannot import the pipeline to fingerprint it: {out.stderr.strip().splitlines()[-1:]}")
    files = set()
    for line in out.stdout.splitlines():
        name, _, path = line.partition(" ")
        skip = any(name == p or name.startswith(p + ".") for p in _NOT_PIPELINE)
        if path and (not skip or name == "detector.bench.runner"):
            files.add(Path(path))
    package = Path(__file__).resolve().parents[1]
    files.update((package / "manifests").glob("*.yaml"))
    return sorted(files)


def code_fingerprint(files: Sequence[Path] | None = None) -> str:
    """sha256 over the source a clip run executes: editing a report or the backend keeps the
    cache, editing the recogniser (or anything it imports) does not."""
    files = pipeline_sources() if files is None else files
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name + str(p)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_key(clip_sha256: str, settings: Settings, model_sha256: str, code: str) -> str:
    payload = json.dumps(
        {
            "v": CACHE_VERSION,
            "clip": clip_sha256,
            "settings": settings.model_dump(mode="json"),
            "model": model_sha256,
            "code": code,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class RunCache:
    """ClipRuns on disk, one JSON file per key (written whole, then renamed, so never half)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{self.root}: cannot create the cache directory: {e.strerror}") from None

    def get(self, key: str) -> ClipRun | None:
        path = self.root / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return ClipRun(**{**data, "acts": [ActRecord.from_json(a) for a in data["acts"]]})
        except (OSError, ValueError, TypeError, KeyError):
            return None  # absent or unreadable: run it again

    def drop(self, key: str) -> None:
        (self.root / f"{key}.json").unlink(missing_ok=True)

    def put(self, key: str, run: ClipRun) -> None:
        data = {**asdict(run), "acts": [a.to_json() for a in run.acts]}
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.root / f"{key}.json")


# -- running ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """Every (setting variant, clip) run needed, and which of them the cache already holds."""

    variants: list[Settings]  # variants[0] is the base
    keys: list[list[str]]  # keys[v][c]
    cached: list[list[ClipRun | None]]

    @property
    def total(self) -> int:
        return sum(len(k) for k in self.keys)

    @property
    def missing(self) -> int:
        return sum(r is None for row in self.cached for r in row)


def variants_of(base: Settings, params: Sequence[Param]) -> tuple[list[Settings], dict[tuple[str, Any], int]]:
    """The base settings plus one variant per non-default value; (param, value) -> variant index."""
    variants = [base]
    index: dict[tuple[str, Any], int] = {}
    for p in params:
        for v in p.values:
            if v == p.default:
                index[(p.name, v)] = 0
            else:
                index[(p.name, v)] = len(variants)
                variants.append(with_setting(base, p.name, v))
    return variants, index


def make_plan(paths: Sequence[Path], variants: list[Settings], cache: RunCache, model_sha256: str, code: str) -> Plan:
    from detector.assets import sha256_of

    shas = [sha256_of(p) for p in paths]
    keys = [[run_key(s, v, model_sha256, code) for s in shas] for v in variants]
    return Plan(variants, keys, [[cache.get(k) for k in row] for row in keys])


def execute(
    plan: Plan,
    paths: Sequence[Path],
    cache: RunCache,
    *,
    jobs: int,
    model_dir: Path | None,
    on_run: Callable[[ClipRun], None] | None = None,
    keyed_code: str | None = None,
) -> list[list[ClipRun]]:
    """Run what the cache lacks (longest clips first, so the pool's tail is short); runs[v][c].

    Workers import the pipeline from disk when they start, so code edited during a long run
    would be cached under the old fingerprint: with `keyed_code` (the fingerprint the plan was
    keyed with) given, the code is fingerprinted again after each pass, whose runs are dropped
    if it moved."""
    runs = [list(row) for row in plan.cached]
    for v, settings in enumerate(plan.variants):
        todo = sorted((c for c, r in enumerate(runs[v]) if r is None), key=lambda c: -paths[c].stat().st_size)
        if not todo:
            continue

        def done(i: int, run: ClipRun, v: int = v, todo: list[int] = todo) -> None:
            cache.put(plan.keys[v][todo[i]], run)
            if on_run is not None:
                on_run(run)

        fresh = run_clips(
            [paths[c] for c in todo], settings, jobs=jobs, model_dir=model_dir, progress=False, on_done=done
        )
        if keyed_code is not None and code_fingerprint() != keyed_code:
            for c in todo:
                cache.drop(plan.keys[v][c])
            raise UserError("the pipeline's code changed during the run; its new runs were dropped: run again")
        for c, run in zip(todo, fresh, strict=True):
            runs[v][c] = run
    return runs  # type: ignore[return-value]


# -- choosing --------------------------------------------------------------------------------


def located_counts(clip: TruthClip, run: ClipRun) -> Counts:
    return match_acts(clip.events, [a for a in run.acts if a.kind in KINDS], located=True).total


def pooled_f1(counts: Sequence[Counts], held_out: int | None = None) -> float:
    """Located F1 of counts summed over every clip but `held_out`."""
    total = Counts()
    for i, c in enumerate(counts):
        if i != held_out:
            total.add(c)
    return prf(total.tp, total.fp, total.fn)["f1"]


def choose(f1_by_value: dict[Any, float], default: Any) -> Any:
    """The value with the highest F1; ties keep the default, then the smallest value."""
    best = max(f1_by_value.values())
    if f1_by_value[default] >= best - 1e-12:
        return default
    return min((v for v, f in f1_by_value.items() if f >= best - 1e-12), key=_order)


def leave_one_out(
    clips: Sequence[TruthClip], params: Sequence[Param], runs: list[list[ClipRun]], index: dict[tuple[str, Any], int]
) -> list[dict[str, Any]]:
    """Per setting: the located score of each value on all clips, and per held-out clip the value
    chosen on the others, whether that is the default, and the held-out clip's score with each."""
    out = []
    for p in params:
        scores = {
            v: [located_counts(clip, runs[index[(p.name, v)]][c]) for c, clip in enumerate(clips)] for v in p.values
        }
        all_clips = []
        for v in p.values:
            total = Counts()
            for c in scores[v]:
                total.add(c)
            # Where this value changes the outcome against the default: what the setting really moves.
            differs = [
                {"clip": clip.file, **scores[v][c].metrics()}
                for c, clip in enumerate(clips)
                if (scores[v][c].tp, scores[v][c].fp, scores[v][c].fn)
                != (scores[p.default][c].tp, scores[p.default][c].fp, scores[p.default][c].fn)
            ]
            all_clips.append({"value": v, **total.metrics(), "differs_from_default": differs})
        held = []
        pooled_chosen, pooled_default = Counts(), Counts()
        for c, clip in enumerate(clips):
            others = {v: pooled_f1(scores[v], held_out=c) for v in p.values}
            chosen = choose(others, p.default)
            pooled_chosen.add(scores[chosen][c])
            pooled_default.add(scores[p.default][c])
            held.append(
                {
                    "clip": clip.file,
                    "chosen": chosen,
                    "default_holds": chosen == p.default,
                    "f1_on_others": [{"value": v, "f1": f} for v, f in others.items()],
                    "with_chosen": scores[chosen][c].metrics(),
                    "with_default": scores[p.default][c].metrics(),
                }
            )
        out.append(
            {
                "param": p.name,
                "default": p.default,
                "values": list(p.values),
                "best_on_all_clips": choose({v: pooled_f1(scores[v]) for v in p.values}, p.default),
                "all_clips": all_clips,
                "held_out": held,
                "default_holds": sum(h["default_holds"] for h in held),
                "pooled_held_out": {"chosen": pooled_chosen.metrics(), "default": pooled_default.metrics()},
            }
        )
    return out


def loco_result(
    clips: Sequence[TruthClip],
    params: Sequence[Param],
    plan: Plan,
    runs: list[list[ClipRun]],
    index: dict[tuple[str, Any], int],
    *,
    truth: Path,
    config: Path | None,
    code: str,
    elapsed_s: float,
) -> dict[str, Any]:
    fresh_wall = sum(
        r.wall_s + r.setup_s for row, cached in zip(runs, plan.cached) for r, c in zip(row, cached) if c is None
    )
    return {
        "truth": str(truth),
        "config": str(config) if config else None,
        "score": "located F1 (micro-averaged over clips), one setting varied at a time",
        "tie_rule": "ties keep the default, then the smallest value",
        "clips": [c.file for c in clips],
        "params": leave_one_out(clips, params, runs, index),
        "runs": {
            "total": plan.total,
            "cached": plan.total - plan.missing,
            "run": plan.missing,
            "processing_s": round(fresh_wall, 1),
            "elapsed_s": round(elapsed_s, 1),
        },
        "code_fingerprint": code,
    }


def render_markdown(result: dict[str, Any]) -> str:
    def f(v: float) -> str:
        return f"{v:.2f}"

    def tpfpfn(m: dict[str, Any]) -> str:
        return f"{m['tp']}/{m['fp']}/{m['fn']}"

    r = result["runs"]
    lines = [
        "# Leave-one-clip-out check of settings",
        "",
        f"Truth: `{result['truth']}`, base config: `{result['config'] or 'defaults'}`, {len(result['clips'])} clips.  ",
        f"Score: {result['score']}; {result['tie_rule']}.  ",
        f"Clip runs: {r['total']} ({r['cached']} from the cache, {r['run']} run: {r['processing_s']:.0f} s of "
        f"processing), {r['elapsed_s']:.0f} s elapsed.",
    ]
    for p in result["params"]:
        n = len(p["held_out"])
        pc, pd = p["pooled_held_out"]["chosen"], p["pooled_held_out"]["default"]
        lines += [
            "",
            f"## `{p['param']}` (default {p['default']})",
            "",
            f"The default holds for **{p['default_holds']} of {n}** clips left out. Every clip scored with the value "
            f"chosen without it: located F1 **{f(pc['f1'])}** (TP/FP/FN {tpfpfn(pc)}) against {f(pd['f1'])} "
            f"({tpfpfn(pd)}) with the default. Best on all clips: {p['best_on_all_clips']}.",
            "",
            "| value | TP | FP | FN | precision | recall | located F1 | clips it changes (TP/FP/FN) |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in p["all_clips"]:
            mark = " (default)" if row["value"] == p["default"] else ""
            changes = ", ".join(f"{d['clip']} {tpfpfn(d)}" for d in row["differs_from_default"]) or "-"
            lines.append(
                f"| {row['value']}{mark} | {row['tp']} | {row['fp']} | {row['fn']} | {f(row['precision'])} | "
                f"{f(row['recall'])} | {f(row['f1'])} | {changes} |"
            )
        lines += [
            "",
            "| clip left out | F1 on the others per value | chosen | default holds | held-out TP/FP/FN, chosen | F1 "
            "| with default | F1 |",
            "|---|---|---|---|---|---:|---|---:|",
        ]
        for h in p["held_out"]:
            others = ", ".join(f"{o['value']}: {f(o['f1'])}" for o in h["f1_on_others"])
            lines.append(
                f"| {h['clip']} | {others} | {h['chosen']} | {'yes' if h['default_holds'] else '**no**'} | "
                f"{tpfpfn(h['with_chosen'])} | {f(h['with_chosen']['f1'])} | {tpfpfn(h['with_default'])} | "
                f"{f(h['with_default']['f1'])} |"
            )
    return "\n".join(lines) + "\n"
