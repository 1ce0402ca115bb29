"""Zones: named polygons of a camera's view. A point belongs to the first zone containing it."""

from __future__ import annotations

import cv2
import numpy as np

from detector.config import CameraConfig

WHOLE_VIEW = "all"  # the zone id of a camera configured without zones


class ZoneMap:
    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self._polygons = [(z.id, np.asarray(z.polygon, np.float32).reshape(-1, 1, 2)) for z in camera.zones]

    @property
    def ids(self) -> list[str]:
        return [zid for zid, _ in self._polygons] or [WHOLE_VIEW]

    def zone_of(self, x: float, y: float) -> str | None:
        """Zone id containing (x, y); None if the camera has zones and none contains it."""
        if not self._polygons:
            return WHOLE_VIEW
        for zid, poly in self._polygons:
            if cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0:
                return zid
        return None

    def polygons(self) -> list[tuple[str, np.ndarray]]:
        return list(self._polygons)
