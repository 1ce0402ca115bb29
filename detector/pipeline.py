"""One camera's analysis pipeline, frame by frame, with no I/O: Frame in, FrameResult out.

source -> detector -> tracker -> (scene memory -> act recogniser). The worker (live
cameras) and `detector replay` (recorded clips) both drive this class.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import supervision as sv

from detector.config import Settings
from detector.detection import ObjectDetector, build_detector
from detector.tracking import Tracker
from detector.values import Act, Frame
from detector.zones import ZoneMap


@dataclass
class FrameResult:
    frame: Frame
    detections: sv.Detections
    tracks: sv.Detections
    acts: list[Act] = field(default_factory=list)
    detector_ms: float = 0.0


class Pipeline:
    def __init__(self, settings: Settings, detector: ObjectDetector | None = None) -> None:
        self.settings = settings
        self.detector = detector or build_detector(settings.detector)
        self.class_names = self.detector.class_names
        self.tracker = Tracker(settings.tracker, settings.source.analysis_fps)
        self.zones = ZoneMap(settings.camera)

    def process(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        detections = self.detector.detect(frame.image)
        detector_ms = (time.perf_counter() - t0) * 1000
        tracks = self.tracker.update(detections, frame.time_s)
        return FrameResult(frame, detections, tracks, [], detector_ms)

    def finish(self) -> list[Act]:
        """Acts still pending at the end of a clip (none for detection only)."""
        return []
