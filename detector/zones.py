"""Zones: named polygons of a camera's view. A point belongs to the first zone containing it.

A camera configured without zones has one, named after the camera: zones are per camera (and
per site, in the backend), so two cameras never add up in one score unless the site config
says they share a zone (`shared: true`, checked by `detector.config.site.validate_site`).
"""

from __future__ import annotations

import cv2
import numpy as np

from detector.config import CameraConfig


class ZoneMap:
    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self._polygons = [(z.id, np.asarray(z.polygon, np.float32).reshape(-1, 1, 2)) for z in camera.zones]
        self.whole_view = camera.name  # the zone of a camera configured without zones

    @property
    def ids(self) -> list[str]:
        return [zid for zid, _ in self._polygons] or [self.whole_view]

    def zone_of(self, x: float, y: float) -> str | None:
        """Zone id containing (x, y); None if the camera has zones and none contains it."""
        if not self._polygons:
            return self.whole_view
        for zid, poly in self._polygons:
            if cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0:
                return zid
        return None

    def polygons(self) -> list[tuple[str, np.ndarray]]:
        return list(self._polygons)
