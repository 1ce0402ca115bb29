"""One camera's analysis pipeline, frame by frame, with no I/O: Frame in, FrameResult out.

source -> detector -> tracker -> (scene memory -> act recogniser). The worker (live
cameras) and `detector replay` (recorded clips) both drive this class.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import supervision as sv

from detector.acts import ActRecogniser, Person, Sighting
from detector.boxes import iou
from detector.config import Settings
from detector.detection import ObjectDetector, build_detector
from detector.motion import MotionGate
from detector.scene import SceneMemory, SceneView
from detector.tracking import Tracker, empty_tracks
from detector.values import Act, Box, Frame
from detector.zones import ZoneMap


@dataclass
class FrameResult:
    frame: Frame
    detections: sv.Detections
    tracks: sv.Detections
    acts: list[Act] = field(default_factory=list)
    detector_ran: bool = False
    detector_ms: float = 0.0
    scene: SceneView | None = None
    motion_boxes: tuple[tuple[int, int, int, int], ...] = ()  # what moved (the redactor blurs on doubt there)


def person_boxes(result: FrameResult, class_names: list[str]) -> np.ndarray:
    """Every person the detector saw on this frame (tracked or not yet): the boxes whose
    heads are blurred in anything stored."""
    dets = result.detections
    if "person" not in class_names or dets.class_id is None or not len(dets):
        return np.zeros((0, 4), np.float32)
    return dets.xyxy[dets.class_id == class_names.index("person")]


class Pipeline:
    def __init__(self, settings: Settings, detector: ObjectDetector | None = None) -> None:
        self.settings = settings
        self.detector = detector or build_detector(settings.detector)
        self.class_names = self.detector.class_names
        self.tracker = Tracker(settings.tracker, settings.source.analysis_fps)
        self.zones = ZoneMap(settings.camera)
        self.scene = SceneMemory(settings.scene)
        self.recogniser = ActRecogniser(settings.acts, self.zones, settings.camera.name)
        m = settings.motion
        self.gate = (
            MotionGate(
                m.width,
                pixel_threshold=m.pixel_threshold,
                min_fraction=m.min_fraction,
                global_fraction=m.global_fraction,
            )
            if m.enabled
            else None
        )
        # A parked vehicle, a bench or a dumped sofa is tracked too, but needs no detector on
        # every frame: it does not move by itself.
        scenery = set(settings.scene.scenery_classes) | set(settings.acts.bulky_classes)
        self._scenery = np.array([name in scenery for name in self.class_names])
        self._last_detect_t = float("-inf")
        self._tracks_in_view = False
        self._last: tuple[sv.Detections, sv.Detections] = (empty_tracks(), empty_tracks())
        self.detector_runs = 0
        self.frames_seen = 0
        self._motion_boxes: tuple = ()

    def _plan(self, frame: Frame, grey: np.ndarray) -> str:
        """ "detect", "reuse" (the last detections still describe the frame) or "skip".

        - quiet and nothing tracked: skip; a frame where nothing moves and nobody is in
          view cannot hold a new act, and scene memory (run on every frame) keeps watching
          static objects; the detector still re-checks every `recheck_s`;
        - motion only on or next to what is already tracked: the detector runs every
          `tracking_interval_s`; in between its last result is reused (a walker moves a
          few pixels in 0.2 s; the tracker's boxes lag that much at most);
        - motion anywhere else (someone or something new): detect now.
        """
        if self.gate is None:
            return "detect"
        m = self.settings.motion
        motion = self.gate.update(grey)
        self._motion_boxes = motion.boxes
        since = frame.time_s - self._last_detect_t
        if since >= m.recheck_s:
            return "detect"
        if not self._tracks_in_view:
            return "detect" if motion.active else "skip"
        if since + 1e-6 >= m.tracking_interval_s or _outside(motion.boxes, self._last[1].xyxy):
            return "detect"
        return "reuse"

    def process(self, frame: Frame) -> FrameResult:
        """One frame. A skipped detector is fine: scene memory runs anyway."""
        self.frames_seen += 1
        # One grey conversion per frame, shared by the motion gate and scene memory.
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        plan = self._plan(frame, grey)
        detector_ms = 0.0
        if plan == "detect":
            t0 = time.perf_counter()
            detections = self.detector.detect(frame.image)
            detector_ms = (time.perf_counter() - t0) * 1000
            self.detector_runs += 1
            self._last_detect_t = frame.time_s
        if plan == "skip":  # nothing tracked, nothing moving
            detections, tracks = empty_tracks(), empty_tracks()
        elif plan == "reuse":
            detections, tracks = self._last
        else:
            tracks = self.tracker.update(detections)
            self._last = (detections, tracks)
            self._tracks_in_view = not self._scenery[tracks.class_id.astype(int)].all()
        people, others = self._split(detections, tracks)
        view = self.scene.update(
            grey, frame.time_s, [p.box for p in people], [(s.box, s.object_class, s.score) for s in others]
        )
        if self.recogniser.frame_size is None:
            self.recogniser.frame_size = frame.size
        step = self.recogniser.step(frame.time_s, frame.index, people, others, view, plan == "detect")
        for litter_id in step.unwatch:
            self.scene.unwatch(litter_id)
        for litter_id, box in step.watch:
            self.scene.watch(litter_id, box)
        return FrameResult(
            frame, detections, tracks, step.acts, plan == "detect", detector_ms, view, self._motion_boxes
        )

    def _split(self, detections: sv.Detections, tracks: sv.Detections) -> tuple[list[Person], list[Sighting]]:
        """People (tracked, plus untracked person detections so that nobody is mistaken
        for a left object) and every other detection as class evidence."""
        names = self.class_names
        people = [
            Person(int(tid), _box(b))
            for b, c, tid in zip(tracks.xyxy, tracks.class_id, tracks.tracker_id)
            if names[int(c)] == "person"
        ]
        for b, c, s in zip(detections.xyxy, detections.class_id, detections.confidence):
            if names[int(c)] == "person" and s >= self.settings.tracker.track_activation_threshold:
                box = _box(b)
                if not any(iou(box, p.box) > 0.5 for p in people):
                    people.append(Person(-1, box))
        others = [
            Sighting(_box(b), names[int(c)], float(s))
            for b, c, s in zip(detections.xyxy, detections.class_id, detections.confidence)
            if names[int(c)] != "person"
        ]
        return people, others

    def litter_overlay(self) -> list[tuple[int, Box, str]]:
        """Litter currently known to lie in view, for drawing: (litter_id, box, class)."""
        return self.recogniser.litter()


def _outside(motion_boxes, tracked_xyxy, grow: float = 0.5) -> bool:
    """True if some moving region is not mostly inside a tracked box grown by `grow` of its size."""
    if not len(motion_boxes):
        return False
    if not len(tracked_xyxy):
        return True
    t = np.asarray(tracked_xyxy, np.float32)
    w, h = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    g = np.column_stack([t[:, 0] - grow * w, t[:, 1] - grow * h, t[:, 2] + grow * w, t[:, 3] + grow * h])
    for x1, y1, x2, y2 in motion_boxes:
        area = max(1, (x2 - x1) * (y2 - y1))
        ix = np.clip(np.minimum(x2, g[:, 2]) - np.maximum(x1, g[:, 0]), 0, None)
        iy = np.clip(np.minimum(y2, g[:, 3]) - np.maximum(y1, g[:, 1]), 0, None)
        if (ix * iy).max() < 0.8 * area:
            return True
    return False


def _box(b) -> Box:
    return (int(round(float(b[0]))), int(round(float(b[1]))), int(round(float(b[2]))), int(round(float(b[3]))))
