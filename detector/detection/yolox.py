"""YOLOX (Megvii) ONNX export: [1, anchors, 5 + classes], obj and cls already sigmoid."""

from __future__ import annotations

import numpy as np

from detector.detection.base import ObjectDetector


def anchor_grid(width: int, height: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(col,row) of every anchor, row-major per stride, and its stride."""
    cells, steps = [], []
    for s in strides:
        gw, gh = width // s, height // s
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.column_stack([xs.ravel(), ys.ravel()]))
        steps.append(np.full(gw * gh, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)[:, None]


class YoloxDetector(ObjectDetector):
    strides = (8, 16, 32)
    input_multiple = 32  # convolutions, stride-2 steps and 2x upsampling: any multiple of 32

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # per input (w, h)

    def decode(self, outputs, input_size):
        pred = outputs[0][0]
        if input_size not in self._grids:  # a few sizes per process: one per frame shape
            self._grids[input_size] = anchor_grid(*input_size, self.strides)
        cells_all, steps_all = self._grids[input_size]
        scores_all = pred[:, 5:] * pred[:, 4:5]
        class_ids, scores, sel = self._candidates(scores_all)
        p, cells, steps = pred[sel], cells_all[sel], steps_all[sel]
        centre = (p[:, :2] + cells) * steps
        size = np.exp(p[:, 2:4]) * steps
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        return boxes, scores[sel], class_ids[sel]
