"""NanoDet-Plus ONNX export (opencv_zoo layout): cls per stride, then GFL reg per stride."""

from __future__ import annotations

import numpy as np

from detector.detection.base import ObjectDetector


class NanoDetDetector(ObjectDetector):
    strides = (8, 16, 32)
    reg_max = 7  # 8 bins per side: distances 0..7 strides

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        centres, steps = [], []
        for s in self.strides:
            gw, gh = -(-self.input_w // s), -(-self.input_h // s)
            ys, xs = np.mgrid[0:gh, 0:gw]
            # opencv_zoo convention: anchor centre offset by half a stride minus half a pixel.
            off = 0.5 * (s - 1)
            centres.append(np.column_stack([xs.ravel() * s + off, ys.ravel() * s + off]))
            steps.append(np.full(gw * gh, s))
        self._centres = np.concatenate(centres).astype(np.float32)
        self._steps = np.concatenate(steps).astype(np.float32)[:, None]
        self._bins = np.arange(self.reg_max + 1, dtype=np.float32)

    def decode(self, outputs, input_size):
        n = len(self.strides)
        cls = np.concatenate([o[0] for o in outputs[:n]])
        reg = np.concatenate([o[0] for o in outputs[n:]])
        class_ids, scores, sel = self._candidates(cls)
        logits = reg[sel].reshape(-1, 4, self.reg_max + 1)
        logits = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (logits / logits.sum(axis=2, keepdims=True)) @ self._bins * self._steps[sel]
        c = self._centres[sel]
        boxes = np.column_stack(
            [c[:, 0] - dist[:, 0], c[:, 1] - dist[:, 1], c[:, 0] + dist[:, 2], c[:, 1] + dist[:, 3]]
        )
        np.clip(boxes, 0, [self.input_w, self.input_h, self.input_w, self.input_h], out=boxes)
        return boxes, scores[sel], class_ids[sel]
