"""Sample clips (sample_videos/manifest.yaml), resolved like models: env dir, cache, download."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from detector.assets import PROJECT_ROOT, AssetEntry, locate, resolve
from detector.config import load_yaml
from detector.errors import UserError

SAMPLE_MANIFEST = PROJECT_ROOT / "sample_videos" / "manifest.yaml"
SAMPLE_DIR_VAR = "DETECTOR_SAMPLE_DIR"
DEFAULT_SAMPLE = "aboda_video4"


@lru_cache(maxsize=2)
def load_samples(path: Path = SAMPLE_MANIFEST) -> dict[str, dict]:
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("clips"), list):
        raise UserError(f"{path}: expected a mapping with a 'clips' list")
    return {c["name"]: c for c in raw["clips"]}


def _entry(clip: dict) -> AssetEntry:
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
    return resolve(_entry(clip), SAMPLE_DIR_VAR)


def list_samples() -> int:
    samples = load_samples()
    print(f"{'name':34} {'events':>6}  where")
    for name, clip in samples.items():
        found = locate(_entry(clip), SAMPLE_DIR_VAR)
        where = str(found.path) if found.path else ("download: " + clip["url"] if clip.get("url") else f"missing (set {SAMPLE_DIR_VAR})")
        print(f"{name:34} {len(clip.get('events') or []):>6}  {where}")
    return 0


def fetch(name: str) -> int:
    samples = load_samples()
    if name not in samples:
        raise UserError(f"unknown sample '{name}'; see `detector samples list`")
    print(resolve(_entry(samples[name]), SAMPLE_DIR_VAR))
    return 0
