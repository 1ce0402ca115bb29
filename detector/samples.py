"""Sample clips (detector/manifests/samples.yaml), resolved like models: env dir, cache, download."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from detector.assets import AssetEntry, resolve
from detector.manifests import manifest_path
from detector.protocol.config import load_yaml
from detector.protocol.errors import UserError

SAMPLE_MANIFEST = manifest_path("samples.yaml")
SAMPLE_DIR_VAR = "DETECTOR_SAMPLE_DIR"
DEFAULT_SAMPLE = "aboda_video4"


@lru_cache(maxsize=2)
def load_samples(path: Path = SAMPLE_MANIFEST) -> dict[str, dict]:
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("clips"), list):
        raise UserError(f"{path}: expected a mapping with a 'clips' list")
    return {c["name"]: c for c in raw["clips"]}


def sample_entry(clip: dict) -> AssetEntry:
    return AssetEntry("sample", clip["name"], clip["file"], clip["sha256"], clip.get("url"), clip.get("size"))


def resolve_clip(text: str) -> Path:
    """A clip argument: an existing path, or a sample name (or file name) from the manifest."""
    path = Path(text)
    if path.exists():
        return path
    samples = load_samples()
    by_file = {c["file"]: c for c in samples.values()}
    clip = samples.get(text) or by_file.get(text)
    if clip is None:
        raise UserError(f"clip not found: {text} (not a file, nor a sample name from `detector samples list`)")
    return resolve(sample_entry(clip), SAMPLE_DIR_VAR)


def fetch_sample(name: str) -> Path:
    samples = load_samples()
    if name not in samples:
        raise UserError(f"unknown sample '{name}'; see `detector samples list`")
    return resolve(sample_entry(samples[name]), SAMPLE_DIR_VAR)
