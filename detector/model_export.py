"""Models: fill the cache (`fetch_model`), and turn an Ultralytics checkpoint into an ONNX file
with its manifest entry (`export_checkpoint`, needs the optional `export` extra)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from detector.assets import cache_dir, download, locate, sha256_of
from detector.models import MODEL_DIR_VAR, get_spec
from detector.protocol.errors import UserError


def fetch_model(name: str) -> tuple[str, Path]:
    """Put a model's file into the user cache: ("cached" | "copied" | "downloaded", its path)."""
    spec = get_spec(name)
    found = locate(spec.asset(), MODEL_DIR_VAR)
    if found.how == "cache":
        return "cached", found.path
    if found.path is not None:  # copy a local copy into the cache instead of downloading
        target = cache_dir() / "models" / spec.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found.path, target)
        return "copied", target
    return "downloaded", download(spec.asset(), MODEL_DIR_VAR)


def manifest_entry(onnx_path: Path, name: str, imgsz: int) -> dict:
    """The manifest entry of an Ultralytics ONNX export, read from the file itself."""
    import onnxruntime as ort

    from detector.detection.ultralytics import names_from_metadata

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    names = names_from_metadata(meta)
    if not names:
        raise UserError(f"{onnx_path}: no class names in the ONNX metadata; is it an Ultralytics export?")
    shape = sess.get_inputs()[0].shape
    h, w = (shape[2], shape[3]) if all(isinstance(v, int) for v in shape[2:4]) else (imgsz, imgsz)
    return {
        "name": name,
        "task": "detect",
        "optional": True,
        "file": onnx_path.name,
        "url": None,
        "sha256": sha256_of(onnx_path),
        "size": onnx_path.stat().st_size,
        "licence": meta.get("license", "see the checkpoint's licence (Ultralytics weights are AGPL-3.0)"),
        "source": {
            "host": "local",
            "upstream": meta.get("description", "an Ultralytics checkpoint"),
            "relation": f"exported here with Ultralytics {meta.get('version', '(version not recorded)')}",
        },
        "family": "ultralytics",
        "input_size": [w, h],
        "preprocess": {
            "color": "rgb",
            "letterbox": "center",
            "pad_value": 114,
            "mean": [0, 0, 0],
            "std": [255, 255, 255],
        },
        "score_threshold": 0.3,
        "nms_iou": 0.45,
        "classes": names,
    }


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def export_checkpoint(weights: Path, imgsz: int, out: Path | None) -> tuple[Path, dict]:
    """Export, load the result the way replay would and run it once; (ONNX path, manifest entry)."""
    if not weights.is_file():
        raise UserError(f"checkpoint not found: {weights}")
    try:
        from ultralytics import YOLO  # optional extra, imported only here (AGPL-3.0)
    except ImportError:
        raise UserError("`detector models export` needs the optional extra: pip install -e '.[export]'") from None
    # Ultralytics logs to stdout (a handler bound at import); keep stdout for the manifest
    # entry alone by pointing file descriptor 1 at stderr while it works.
    with _stdout_to_stderr():
        produced = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=False, simplify=True))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(produced, out)
        produced = out
    entry = manifest_entry(produced, weights.stem, imgsz)
    # Prove the runtime accepts it: load it the way `detector replay` would and run it once.
    from detector.detection.ultralytics import UltralyticsDetector
    from detector.models import ModelSpec

    w, h = entry["input_size"]
    UltralyticsDetector(ModelSpec.model_validate(entry), produced).detect(np.zeros((h, w, 3), np.uint8))
    return produced, entry
