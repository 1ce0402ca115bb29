"""YAML -> validated settings. Strict: unknown keys and wrong types are errors naming the key.

The model tree mirrors the YAML (one class per section). Every field has a default, so an
empty file, or no file at all, is a valid configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(Section):
    analysis_fps: float = Field(5.0, gt=0, description="frames analysed per second of video; 0 < fps")
    max_seconds: float | None = Field(None, gt=0, description="stop after this much video time")


class DetectorConfig(Section):
    model: str = Field("yolox-nano", description="model name from models/manifest.yaml")
    model_path: Path | None = Field(None, description="explicit ONNX file; overrides the lookup")
    score_threshold: float | None = Field(None, ge=0, le=1, description="default: the model's own")
    nms_iou: float = Field(0.45, gt=0, le=1)
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    # Persons plus the COCO classes that people carry and drop. Scenery classes (bench,
    # car, ...) are still detected when listed here; the default keeps the pipeline lean.
    classes: list[str] = Field(
        default_factory=lambda: [
            "person", "backpack", "umbrella", "handbag", "suitcase", "sports ball",
            "bottle", "wine glass", "cup", "bowl", "banana", "apple", "sandwich",
            "orange", "pizza", "donut", "cell phone", "book", "teddy bear", "vase",
        ]
    )


class TrackerConfig(Section):
    lost_track_buffer_s: float = Field(2.0, gt=0, description="how long a lost track is kept")
    track_activation_threshold: float = Field(0.4, ge=0, le=1)
    high_conf_det_threshold: float = Field(0.5, ge=0, le=1)
    minimum_iou_threshold: float = Field(0.1, ge=0, le=1)
    minimum_consecutive_frames: int = Field(2, ge=1)


class ZoneConfig(Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    polygon: list[tuple[float, float]] = Field(min_length=3)


class CameraConfig(Section):
    name: str = Field("camera", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field("site", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    zones: list[ZoneConfig] = Field(default_factory=list, description="no zones: the whole view is one zone")

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        ids = [z.id for z in zones]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate zone ids: {sorted({i for i in ids if ids.count(i) > 1})}")
        return zones


class Settings(Section):
    """Settings of one camera's pipeline (what `detector replay` and each worker use)."""

    camera: CameraConfig = CameraConfig()
    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()


M = TypeVar("M", bound=BaseModel)


def _format_error(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{origin}: {key}: {msg}{more}"


def load_yaml(path: Path) -> Any:
    """Read a YAML file, turning every failure into a one-line UserError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read config: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None


def validate(model: type[M], data: Any, origin: str) -> M:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e, origin)) from None


def load_config(model: type[M], path: Path | None) -> M:
    """Load and validate a config file into `model`; no path gives the defaults."""
    if path is None:
        return model()
    return validate(model, load_yaml(path), str(path))


def load_settings(path: Path | None) -> Settings:
    return load_config(Settings, path)
