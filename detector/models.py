"""The model manifest (detector/manifests/models.yaml): what each model is and where its file resolves."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detector.assets import AssetEntry, resolve
from detector.manifests import manifest_path
from detector.protocol.config import load_yaml, validate
from detector.protocol.errors import UserError

MODEL_MANIFEST = manifest_path("models.yaml")
MODEL_DIR_VAR = "DETECTOR_MODEL_DIR"


class Preprocess(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    color: Literal["bgr", "rgb"]
    letterbox: Literal["top-left", "center"]
    pad_value: float
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class Source(BaseModel):
    """Where a model file really comes from: the address in `url` is not always the publisher's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # upstream: `url` is the publisher's own file; mirror: a third party's copy or re-export;
    # local: a file exported here (`detector models export`), with no published address yet.
    host: Literal["upstream", "mirror", "local"]
    upstream: str  # the publisher's release (repository, tag or commit, file) the file matches or was made from
    relation: str  # how this file relates to it: the same bytes, a re-export, a quantisation...


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    task: Literal["detect", "face"]
    file: str
    url: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = None
    licence: str
    source: Source
    family: Literal["yolox", "nanodet", "ultralytics", "yunet"]
    input_size: tuple[int, int]  # width, height
    preprocess: Preprocess
    score_threshold: float
    nms_iou: float
    classes: list[str]
    optional: bool = False

    def asset(self) -> AssetEntry:
        return AssetEntry("model", self.name, self.file, self.sha256, self.url, self.size)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int
    class_sets: dict[str, list[str]]
    models: list[dict]


@lru_cache(maxsize=4)
def load_manifest(path: Path = MODEL_MANIFEST) -> dict[str, ModelSpec]:
    raw = validate(_Manifest, load_yaml(path), str(path))
    specs: dict[str, ModelSpec] = {}
    for item in raw.models:
        item = dict(item)
        if isinstance(item.get("classes"), str):
            item["classes"] = raw.class_sets[item["classes"]]
        spec = validate(ModelSpec, item, f"{path}: model {item.get('name')!r}")
        specs[spec.name] = spec
    return specs


def get_spec(name: str) -> ModelSpec:
    specs = load_manifest()
    if name not in specs:
        raise UserError(f"unknown model '{name}'; known models: {', '.join(specs)}")
    return specs[name]


def resolve_model(name: str, explicit: Path | None = None, allow_download: bool = True) -> tuple[ModelSpec, Path]:
    spec = get_spec(name)
    return spec, resolve(spec.asset(), MODEL_DIR_VAR, explicit, allow_download)
