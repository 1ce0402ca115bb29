"""Object detectors: one module per model family behind `ObjectDetector`."""

from __future__ import annotations

from pathlib import Path

from detector.config import DetectorConfig
from detector.detection.base import ObjectDetector
from detector.detection.nanodet import NanoDetDetector
from detector.detection.ultralytics import UltralyticsDetector
from detector.detection.yolox import YoloxDetector
from detector.models import resolve_model
from detector.protocol.errors import UserError

FAMILIES: dict[str, type[ObjectDetector]] = {
    "yolox": YoloxDetector,
    "nanodet": NanoDetDetector,
    "ultralytics": UltralyticsDetector,
}


def build_detector(cfg: DetectorConfig, model_dir: Path | None = None) -> ObjectDetector:
    """The configured detector, its model file resolved through the manifest."""
    spec, path = resolve_model(cfg.model, cfg.model_path)
    if spec.family not in FAMILIES:
        raise UserError(f"model '{spec.name}' is a {spec.task} model, not an object detector")
    return FAMILIES[spec.family](
        spec, path, threads=cfg.threads, score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou, classes=cfg.classes
    )


__all__ = ["FAMILIES", "ObjectDetector", "build_detector"]
