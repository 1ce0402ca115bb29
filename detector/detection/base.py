"""One interface for every ONNX detector family: image in, `sv.Detections` out.

A family supplies only `decode` (raw outputs -> boxes in network-input pixels, scores,
class ids); letterboxing, thresholds, class filtering, NMS and mapping back to frame
pixels are shared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from detector.models import ModelSpec
from detector.protocol.errors import UserError


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed into the network input: input = frame * scale + (dx, dy)."""

    scale: float
    dx: int
    dy: int


def _free_input_size(path: Path) -> bytes:
    """The model with its input's height and width left free (only for graphs that work at
    any multiple of their largest stride, such as YOLOX's)."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:  # the anchor count follows the input size
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]  # shapes inferred for the square input
    return model.SerializeToString()


def make_session(path: Path, threads: int, free_input: bool = False) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # Set deliberately: the worker runs one detector per process, and the remaining
    # cores decode video and run other cameras. Inter-op parallelism buys nothing here.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        model = _free_input_size(path) if free_input else str(path)
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise UserError(f"{path}: not a usable ONNX model ({str(e).splitlines()[0][:200]})") from None


class ObjectDetector(ABC):
    """Runs one ONNX model on BGR frames."""

    # The graph runs at any input size that is a multiple of this (0: only its own size). The
    # letterbox then pads a frame only up to the next multiple, not to the square: a 16:9
    # frame at 416x256 instead of 416x416, the same pixels with 38% less work. The content
    # is placed and scaled exactly as in the square input (top-left letterbox).
    input_multiple = 0

    def __init__(
        self,
        spec: ModelSpec,
        path: Path,
        threads: int = 1,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        classes: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.class_names = list(spec.classes)
        self.score_threshold = spec.score_threshold if score_threshold is None else score_threshold
        self.nms_iou = spec.nms_iou if nms_iou is None else nms_iou
        free = self.input_multiple > 0 and spec.preprocess.letterbox == "top-left"
        self._multiple = self.input_multiple if free else 0
        self.session = make_session(path, threads, free_input=free)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_w, self.input_h = spec.input_size
        pp = spec.preprocess
        self._swap_rb = pp.color == "rgb"
        self._center = pp.letterbox == "center"
        self._pad = pp.pad_value
        self._mean = np.asarray(pp.mean, np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(pp.std, np.float32)).reshape(3, 1, 1)
        self._identity_norm = not np.any(self._mean) and np.all(self._inv_std == 1.0)
        wanted = set(classes) if classes else None
        if wanted is not None:
            unknown = wanted - set(self.class_names)
            if unknown:
                raise UserError(f"detector.classes: {sorted(unknown)} not among the classes of model '{spec.name}'")
        self._keep = None if wanted is None else np.array([n in wanted for n in self.class_names])

    # -- preprocessing ---------------------------------------------------------------
    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        h, w = image.shape[:2]
        scale = min(self.input_w / w, self.input_h / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        dx = (self.input_w - nw) // 2 if self._center else 0
        dy = (self.input_h - nh) // 2 if self._center else 0
        cw, ch = self.input_w, self.input_h
        if self._multiple:
            m = self._multiple
            cw, ch = min(cw, -(-nw // m) * m), min(ch, -(-nh // m) * m)
        canvas = np.full((ch, cw, 3), self._pad, np.uint8)
        canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return canvas, Letterbox(scale, dx, dy)

    def to_blob(self, canvas: np.ndarray) -> np.ndarray:
        if self._swap_rb:
            canvas = canvas[:, :, ::-1]
        blob = canvas.transpose(2, 0, 1).astype(np.float32)
        if not self._identity_norm:
            blob -= self._mean
            blob *= self._inv_std
        return blob[None]

    # -- decoding ----------------------------------------------------------------------
    @abstractmethod
    def decode(
        self, outputs: list[np.ndarray], input_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw outputs of an input of `input_size` (w, h) -> (xyxy boxes in input pixels (N,4),
        scores (N,), class ids (N,))."""

    def _candidates(self, class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per anchor its best class and that class's score, and the anchors that pass the
        score threshold: only those are worth decoding (most of thousands cannot)."""
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_scores)), class_ids]
        return class_ids, scores, np.flatnonzero(scores >= self.score_threshold)

    def detect(self, image: np.ndarray) -> sv.Detections:
        canvas, lb = self.letterbox(image)
        outputs = self.session.run(self.output_names, {self.input_name: self.to_blob(canvas)})
        boxes, scores, class_ids = self.decode(outputs, (canvas.shape[1], canvas.shape[0]))
        keep = scores >= self.score_threshold
        if self._keep is not None:
            keep &= self._keep[class_ids]
        boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        if len(scores):
            boxes = (boxes - np.array([lb.dx, lb.dy, lb.dx, lb.dy], np.float32)) / lb.scale
            h, w = image.shape[:2]
            np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
            np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
            idx = class_wise_nms(boxes, scores, class_ids, self.nms_iou)
            boxes, scores, class_ids = boxes[idx], scores[idx], class_ids[idx]
        return sv.Detections(
            xyxy=boxes.astype(np.float32).reshape(-1, 4),
            confidence=scores.astype(np.float32),
            class_id=class_ids.astype(int),
        )


def class_wise_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by per-class NMS, best score first (OpenCV's batched NMS)."""
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float32)
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), class_ids.astype(np.int32), 0.0, iou)
    kept = np.asarray(kept, dtype=int).reshape(-1)
    return kept[np.argsort(-scores[kept], kind="stable")]
