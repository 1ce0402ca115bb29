"""Package data: the model manifest (`models.yaml`) and the sample clip manifest
(`samples.yaml`), shipped inside the package so that a plain `pip install` finds them."""

from importlib.resources import files
from pathlib import Path


def manifest_path(name: str) -> Path:
    """Filesystem path of a shipped manifest (the package is installed as files, not a zip)."""
    return Path(str(files(__name__) / name))
