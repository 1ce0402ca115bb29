"""`detector models list | fetch | export` and `detector samples list | fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, fetch and export detection models")
    msub = p.add_subparsers(dest="models_cmd", metavar="{list,fetch,export}", required=True)
    msub.add_parser("list", help="show each model of the manifest and where its file resolves")
    f = msub.add_parser("fetch", help="download a model into the user cache (checked by sha256)")
    f.add_argument("name", help="model name from `detector models list`")
    e = msub.add_parser("export", help="turn an Ultralytics .pt checkpoint into ONNX (needs the `export` extra)")
    e.add_argument("weights", type=Path, help="Ultralytics checkpoint, e.g. yolo11n.pt")
    e.add_argument("--imgsz", type=int, default=640, help="square input size (default 640)")
    e.add_argument("--out", type=Path, default=None, help="where to write the .onnx (default: beside the weights)")
    p.set_defaults(handler=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from detector.assets import locate
    from detector.models import MODEL_DIR_VAR, load_manifest

    if args.models_cmd == "list":
        print(f"{'name':14} {'family':11} {'input':8} {'licence':12} {'source':8} where")
        for spec in load_manifest().values():
            found = locate(spec.asset(), MODEL_DIR_VAR)
            if found.path:
                where = f"{found.path} ({found.how})"
            else:
                where = f"not found; download: {spec.url}" if spec.url else "not found"
            size = f"{spec.input_size[0]}x{spec.input_size[1]}"
            host = spec.source.host
            print(f"{spec.name:14} {spec.family:11} {size:8} {spec.licence.split()[0]:12} {host:8} {where}")
        return 0
    from detector import model_export

    if args.models_cmd == "fetch":
        how, path = model_export.fetch_model(args.name)
        print(f"{args.name}: {'already in the cache' if how == 'cached' else how}: {path}")
        return 0
    import yaml

    produced, entry = model_export.export_checkpoint(args.weights, args.imgsz, args.out)
    print(f"# {produced}: add this entry to detector/manifests/models.yaml (set url: to where you publish it)")
    print(yaml.safe_dump([entry], sort_keys=False, width=100), end="")
    return 0


def add_samples(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samples", help="list and fetch the sample clips of detector/manifests/samples.yaml")
    ssub = p.add_subparsers(dest="samples_cmd", metavar="{list,fetch}", required=True)
    ssub.add_parser("list", help="show each sample clip and where it resolves")
    f = ssub.add_parser("fetch", help="download a sample clip into the user cache")
    f.add_argument("name")
    p.set_defaults(handler=_run_samples)


def _run_samples(args: argparse.Namespace) -> int:
    from detector import samples
    from detector.assets import locate

    if args.samples_cmd == "fetch":
        print(samples.fetch_sample(args.name))
        return 0
    print(f"{'name':34} {'events':>6}  where")
    for name, clip in samples.load_samples().items():
        found = locate(samples.sample_entry(clip), samples.SAMPLE_DIR_VAR)
        if found.path:
            where = str(found.path)
        else:
            where = "download: " + clip["url"] if clip.get("url") else f"missing (set {samples.SAMPLE_DIR_VAR})"
        print(f"{name:34} {len(clip.get('events') or []):>6}  {where}")
    return 0
