"""Motion gate: decides, on a small grey copy of the frame, whether the detector must run.

Like Frigate: a running-average background of a downscaled, blurred grey frame; pixels
that differ by more than `pixel_threshold` count as motion. A frame with more than
`min_fraction` of moving pixels is "active". When most of the frame changes at once
(lights, auto-exposure) the background is recalibrated to the new frame instead of
reporting motion. OpenCV's accumulateWeighted/absdiff keep this at ~0.1 ms a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class MotionResult:
    fraction: float  # share of the small frame that moved
    active: bool  # enough motion to run the detector
    recalibrated: bool  # a global change reset the background
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # moving regions in frame pixels


class MotionGate:
    def __init__(
        self,
        width: int = 160,
        alpha: float = 0.1,
        pixel_threshold: int = 25,
        min_fraction: float = 0.002,
        global_fraction: float = 0.5,
    ) -> None:
        self.width = width
        self.alpha = alpha
        self.pixel_threshold = pixel_threshold
        self.min_fraction = min_fraction
        self.global_fraction = global_fraction
        self._avg: np.ndarray | None = None
        self._scale = 1.0

    def small(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        self._scale = w / self.width
        # INTER_LINEAR is ~20x cheaper than INTER_AREA here; the blur below removes its aliasing.
        small = cv2.resize(image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def update(self, image: np.ndarray) -> MotionResult:
        grey = self.small(image)
        if self._avg is None or self._avg.shape != grey.shape:
            self._avg = grey.astype(np.float32)
            return MotionResult(1.0, True, True)
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._avg))
        mask = (diff > self.pixel_threshold).astype(np.uint8)
        fraction = float(mask.mean())
        if fraction >= self.global_fraction:
            self._avg = grey.astype(np.float32)
            return MotionResult(fraction, False, True)
        cv2.accumulateWeighted(grey, self._avg, self.alpha)
        active = fraction >= self.min_fraction
        boxes: tuple = ()
        if active:
            mask = cv2.dilate(mask, None, iterations=2)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            s = self._scale
            boxes = tuple(
                (int(x * s), int(y * s), int((x + w) * s), int((y + h) * s))
                for x, y, w, h, area in stats[1:]
                if area >= 4
            )
        return MotionResult(fraction, active, False, boxes)
