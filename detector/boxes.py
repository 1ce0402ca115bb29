"""Geometry of integer xyxy boxes, shared by the pipeline, scene memory and the recogniser.

Plain-Python on purpose: these run on a handful of boxes per frame, where numpy's call
overhead (or supervision's batch IoU) costs more than the arithmetic.
"""

from __future__ import annotations

from detector.values import Box


def area(b: Box) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def intersection(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def cover(a: Box, b: Box) -> float:
    """Intersection over the smaller box: a region that grows or shrinks keeps its key."""
    small = min(area(a), area(b))
    return intersection(a, b) / small if small > 0 else 0.0


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def gap(a: Box, b: Box) -> float:
    """Edge-to-edge distance between two boxes (0 if they overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return float((dx * dx + dy * dy) ** 0.5)


def grow(box: Box, margin: float) -> Box:
    """The box grown by `margin` of its width and height on each side."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return (int(x1 - dx), int(y1 - dy), int(x2 + dx), int(y2 + dy))
