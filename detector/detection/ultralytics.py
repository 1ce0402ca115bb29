"""Ultralytics `yolo export format=onnx` layouts, read with onnxruntime only (no ultralytics import).

Two layouts exist: the classic head [1, 4 + classes, anchors] (cx, cy, w, h, class scores,
no objectness; YOLOv5u/v8/11) and the end-to-end head [1, max_det, 6]
(x1, y1, x2, y2, score, class; YOLOv10/26 with NMS inside the graph).
"""

from __future__ import annotations

import ast

import numpy as np

from detector.detection.base import ObjectDetector


def names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    """Class names stored by the Ultralytics exporter ("{0: 'person', ...}")."""
    raw = meta.get("names")
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else None


class UltralyticsDetector(ObjectDetector):
    def decode(self, outputs, input_size):
        out = outputs[0][0]
        if out.shape[1] == 6 and out.shape[0] != 4 + len(self.class_names):  # end-to-end head
            boxes, scores, class_ids = out[:, :4], out[:, 4], out[:, 5].astype(int)
            return boxes, scores, class_ids
        pred = out.T  # (anchors, 4 + classes)
        cls = pred[:, 4 : 4 + len(self.class_names)]
        class_ids, scores, sel = self._candidates(cls)
        c, wh = pred[sel, :2], pred[sel, 2:4]
        return np.concatenate([c - wh / 2, c + wh / 2], axis=1), scores[sel], class_ids[sel]
