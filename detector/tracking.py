"""Thin adapter over ByteTrack from the `trackers` library (no hand-written tracker).

Track ids are short-lived, per camera, and never leave the worker.
"""

from __future__ import annotations

import warnings

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from detector.config import TrackerConfig


def empty_tracks() -> sv.Detections:
    empty = sv.Detections.empty()
    empty.tracker_id = np.empty(0, dtype=int)
    empty.class_id = np.empty(0, dtype=int)
    return empty


class Tracker:
    def __init__(self, cfg: TrackerConfig, analysis_fps: float) -> None:
        self.cfg = cfg
        self.analysis_fps = analysis_fps
        self.reset()

    def reset(self) -> None:
        self._class_of: dict[int, int] = {}  # tracker id -> class of its last detection
        self._bytetrack = ByteTrackTracker(
            # `trackers` counts this buffer in frames *at 30 fps* and scales it by `frame_rate`
            # itself (2.6: ceil(frame_rate / 30 * buffer) frames): given in seconds here, so
            # seconds x 30. (Given in analysed frames it kept a lost person 2 frames, 0.4 s.)
            lost_track_buffer=max(1, round(self.cfg.lost_track_buffer_s * 30)),
            frame_rate=self.analysis_fps,
            track_activation_threshold=self.cfg.track_activation_threshold,
            minimum_consecutive_frames=self.cfg.minimum_consecutive_frames,
            minimum_iou_threshold=self.cfg.minimum_iou_threshold,
            high_conf_det_threshold=self.cfg.high_conf_det_threshold,
        )

    def held_boxes(self, class_id: int) -> np.ndarray:
        """Boxes (N,4) of the confirmed tracks of `class_id` ByteTrack still holds, lost ones
        included (at their predicted place): the redactor blurs people it cannot see right now."""
        boxes = [
            t.get_state_bbox()
            for t in self._bytetrack.tracks
            if t.tracker_id >= 0 and self._class_of.get(t.tracker_id) == class_id
        ]
        return np.asarray(boxes, np.float32).reshape(-1, 4)

    def update(self, detections: sv.Detections) -> sv.Detections:
        """Detections with `tracker_id` set; unconfirmed detections are dropped.

        Boxes of every class are tracked together, so a class flip between frames does
        not break a track; the class kept is the detection's own.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Fixed-rate mode (one Kalman step per call), not timestamps: with `trackers` 2.6
            # a timestamp gap of two analysis intervals drops a perfectly still box from its
            # track (seen while building this; not kept as a test), and the motion gate does
            # leave such gaps.
            tracked = self._bytetrack.update(detections)
        held = {t.tracker_id for t in self._bytetrack.tracks}
        self._class_of = {i: c for i, c in self._class_of.items() if i in held}
        if tracked.tracker_id is None or len(tracked) == 0:
            return empty_tracks()
        tracked = tracked[tracked.tracker_id >= 0]
        self._class_of.update(zip(tracked.tracker_id.tolist(), tracked.class_id.tolist()))
        order = np.argsort(tracked.tracker_id, kind="stable")  # deterministic output order
        return tracked[order]
