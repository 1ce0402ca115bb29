"""Face blurring of evidence: every image the product stores or sends goes through `Redactor`.

Faces are found with YuNet (onnxruntime, decoded in numpy as models/MODELS.md describes);
as a fallback, the head region (top part, full width) of every person box that has no face
inside it is blurred too, because YuNet misses small, turned-away or low-light faces.
Blurring is coarse pixelation followed by a heavy Gaussian, done in memory on a copy before JPEG
encoding, so nothing unblurred ever reaches disk or the network.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.config import PrivacyConfig
from detector.detection.base import class_wise_nms, make_session
from detector.models import resolve_model
from detector.protocol.errors import UserError

_STRIDES = (8, 16, 32)


class FaceDetector:
    """YuNet (dynamic-input or fixed 640x640 file) -> face boxes (N,4) xyxy and scores (N,)."""

    def __init__(
        self,
        model: str = "yunet-dynamic",
        path: Path | None = None,
        score_threshold: float | None = None,
        max_side: int = 640,
        threads: int = 1,
    ) -> None:
        spec, file = resolve_model(model, path)
        if spec.family != "yunet":
            raise UserError(f"privacy.face_model: '{model}' is not a YuNet face model")
        self.spec = spec
        self.score_threshold = spec.score_threshold if score_threshold is None else score_threshold
        self.nms_iou = spec.nms_iou
        self.max_side = max_side
        self.session = make_session(file, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed = all(isinstance(d, int) for d in inp.shape[2:])  # 640x640 file vs dynamic file
        self.fixed_hw = tuple(inp.shape[2:]) if self.fixed else None
        names = [o.name for o in self.session.get_outputs()]
        self.output_names = [f"{k}_{s}" for k in ("cls", "obj", "bbox") for s in _STRIDES]
        missing = set(self.output_names) - set(names)
        if missing:
            raise UserError(f"{file}: not a YuNet model (missing outputs {sorted(missing)})")

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        # YuNet is trained on faces of ~10-300 px: downscale large frames (keeping the aspect).
        scale = min(1.0, self.max_side / max(h, w))
        if self.fixed:
            ih, iw = self.fixed_hw
            scale = min(iw / w, ih / h)
        else:
            ih = max(32, int(np.ceil(h * scale / 32)) * 32)
            iw = max(32, int(np.ceil(w * scale / 32)) * 32)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        canvas = np.zeros((ih, iw, 3), np.uint8)  # top-left placement, pad 0, raw BGR 0..255
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        outs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: blob}), strict=True))
        boxes, scores = [], []
        for s in _STRIDES:
            gw = iw // s
            cls = np.clip(outs[f"cls_{s}"][0, :, 0], 0, 1)
            obj = np.clip(outs[f"obj_{s}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            sel = np.flatnonzero(score >= self.score_threshold)
            if not len(sel):
                continue
            b = outs[f"bbox_{s}"][0, sel]
            col, row = sel % gw, sel // gw
            cx, cy = (col + b[:, 0]) * s, (row + b[:, 1]) * s
            bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
            boxes.append(np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]))
            scores.append(score[sel])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        xyxy = np.concatenate(boxes) / scale
        conf = np.concatenate(scores).astype(np.float32)
        keep = class_wise_nms(xyxy, conf, np.zeros(len(conf), np.int32), self.nms_iou)  # one class: faces
        xyxy = xyxy[keep]
        np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
        return xyxy.astype(np.float32), conf[keep]


def blur_region(image: np.ndarray, box: np.ndarray | tuple) -> None:
    """Irreversibly blur `box` of `image` in place: pixelate to a few blocks, then a heavy Gaussian."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    roi = image[y1:y2, x1:x2]
    # 3x3 cells: finer pixelation keeps a face-shaped blob that YuNet still scores as a face.
    small = cv2.resize(roi, (3, 3), interpolation=cv2.INTER_AREA)
    pix = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    k = (max(x2 - x1, y2 - y1) // 2) | 1
    image[y1:y2, x1:x2] = cv2.GaussianBlur(pix, (k, k), 0)


class Redactor:
    """Blurs faces and head regions of a frame; returns JPEG bytes that are safe to store."""

    def __init__(self, cfg: PrivacyConfig, faces: FaceDetector | None = None) -> None:
        self.cfg = cfg
        self.faces = faces or FaceDetector(
            cfg.face_model, cfg.face_model_path, cfg.face_score_threshold, cfg.face_max_side, cfg.threads
        )

    def regions(self, image: np.ndarray, person_boxes: np.ndarray | None = None) -> np.ndarray:
        """Boxes (N,4) to blur: grown face boxes, plus the head of each person box with no face in it."""
        faces, _ = self.faces.detect(image)
        out = []
        m = self.cfg.face_margin
        for x1, y1, x2, y2 in faces:
            dw, dh = (x2 - x1) * m, (y2 - y1) * m
            out.append((x1 - dw, y1 - dh, x2 + dw, y2 + dh))
        if person_boxes is not None and len(person_boxes):
            centres = (faces[:, :2] + faces[:, 2:]) / 2 if len(faces) else np.zeros((0, 2))
            for x1, y1, x2, y2 in np.asarray(person_boxes, float).reshape(-1, 4):
                inside = (centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1) & (centres[:, 1] <= y2)
                if not inside.any():
                    out.append((x1, y1, x2, y1 + (y2 - y1) * self.cfg.head_fraction))
        return np.asarray(out, np.float32).reshape(-1, 4)

    def redact(self, image: np.ndarray, person_boxes: np.ndarray | None = None) -> np.ndarray:
        """A blurred copy of `image` (the input is never modified).

        Later passes look again at the blurred result: a face just under the threshold can
        rise above it once a neighbouring region has changed.
        """
        out = image.copy()
        regions = self.regions(image, person_boxes)
        for i in range(self.cfg.blur_passes):
            for box in regions:
                blur_region(out, box)
            if i + 1 == self.cfg.blur_passes:
                break
            regions = self.regions(out)
            if not len(regions):
                break
        return out

    def snapshot(self, image: np.ndarray, person_boxes: np.ndarray | None = None) -> bytes:
        """Blur in memory, then encode: the only way the product turns a frame into bytes."""
        ok, buf = cv2.imencode(
            ".jpg", self.redact(image, person_boxes), [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()
