"""Face blurring of everything stored or sent: every image the product keeps goes through `Redactor`.

One entry point: `Redactor.redact(image, seen)` (or `.snapshot(...)` for JPEG bytes), where `seen`
is what the pipeline knows about the frame (`Seen.of(result, pipeline)`): person boxes (detected,
tracked, or still held by the tracker while unseen) and moving regions. The rule is blur on doubt
(a false blur costs nothing, a missed face is a defect):
- faces found by YuNet at several scales: the whole frame at 1x and enlarged `roi_scale` times (YuNet
  cannot see a face under 10 px at 1x) as far as `face_pixels` allows, and coarser for faces too
  big for YuNet's 10-300 px range; a frame too large for that budget is searched whole at the
  scale the budget allows, plus crops enlarged `roi_scale` times where people may be (person
  boxes, moving regions, faces of the previous frame); each face is blurred whole, grown by
  `face_margin` and to at least 16 px square; on consecutive frames of one camera the enlarged
  whole-frame search is repeated only where the frame has changed since it last ran, the faces
  it found elsewhere kept (`Redactor._search_changes`: same pixels, same faces);
- the head region of every person box, whether or not a face was found in it (the face found
  there may be someone else's), sized for the view: see `head_region`;
- the head region of upright moving regions (people the detector misses);
- the faces of the previous frame again for `carry_s`, grown by their size (a face YuNet finds
  on one frame and loses on the next has not gone anywhere).
Blurring is coarse pixelation followed by a heavy Gaussian, done in memory on a copy before any
encoding, so nothing unblurred ever reaches disk or the network. Nothing here recognises or
compares faces: they are found only to be blurred, and forgotten after `carry_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detector.config import PrivacyConfig
from detector.detection.base import class_wise_nms, make_session
from detector.models import resolve_model
from detector.protocol.errors import UserError

if TYPE_CHECKING:
    from detector.pipeline import FrameResult, Pipeline

_STRIDES = (8, 16, 32)
_NO_BOXES = np.zeros((0, 4), np.float32)
# YuNet's training range is faces of about 10-300 px: frames longer than this get a coarse pass
# too, so a face close to the camera (bigger than 300 px at full size) is found as well.
_COARSE_SIDE = 480
# An upright person seen from the side is at least this much taller than wide (a pedestrian is
# ~3x, an upper body ~1.5x); anything squatter is seen from above, through a fisheye, seated,
# crouching or cut off, and its head may be anywhere in the box.
_UPRIGHT = 1.2
# A blurred face region is at least this many pixels square. Blurring averages a region into
# 3x3 cells and its edge is a step: around a 6 px face grown by 30% (2 px) the cells are 3 px, as
# fine as the face's own features, and the step runs through its outline, so its shape survives
# the blur. At 16 px (a face of YuNet's smallest size, 5-10 px, at the centre of a region twice
# as large) the cells are coarser than the face and the edge lies outside it.
_MIN_FACE_REGION = 16
# Change test of the enlarged whole-frame search (see `Redactor._changed`). A pixel has changed
# when its smoothed grey level differs from the last searched frame's by more than this: above
# video noise after a 5x5 smoothing (a few levels), far below what a face appearing, turning or
# moving does to the pixels it covers (skin against hair, background or its own eyes: tens of
# levels). Tiles of `_TILE` px; a changed tile is searched with its neighbours within
# `_CONTEXT` px, since YuNet's response to a face depends on the pixels around it too.
_CHANGE_LEVEL = 10
_TILE = 16
_CONTEXT = 32
# Above this share of the frame changed (a camera's gain or light changing, a crowd) the whole
# frame is searched again: crops cost more per pixel than one whole pass (padding, per-call cost).
_CHANGED_WHOLE = 0.5


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

    def detect(self, image: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Faces in `image`, searched with the image resized by `scale` (default: down to
        `max_side`, never up). Boxes are in `image` pixels."""
        h, w = image.shape[:2]
        if scale is None:
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


@dataclass(frozen=True)
class Seen:
    """What the pipeline knows about one frame that tells the redactor where people may be."""

    time_s: float | None = None  # video time; lets faces of the frame before be blurred again
    source: str = ""  # which camera: one redactor may serve several, and carries faces per camera
    people: np.ndarray = field(default_factory=lambda: _NO_BOXES)  # person boxes (N,4) xyxy
    moving: np.ndarray = field(default_factory=lambda: _NO_BOXES)  # moving regions (M,4) xyxy

    @classmethod
    def of(cls, result: FrameResult, pipeline: Pipeline) -> Seen:
        """Everything the pipeline has on this frame: every person it detected (tracked or not
        yet), the tracks it still holds (people it has lost sight of for a moment are still
        there), and what the motion gate saw move."""
        from detector.pipeline import person_boxes

        people = [person_boxes(result, pipeline.class_names)]
        if "person" in pipeline.class_names:
            people.append(pipeline.tracker.held_boxes(pipeline.class_names.index("person")))
        return cls(
            result.frame.time_s,
            pipeline.settings.camera.name,
            _boxes(np.concatenate(people)),
            _boxes(result.motion_boxes),
        )


def _boxes(a) -> np.ndarray:
    return np.asarray(a, np.float32).reshape(-1, 4)


def head_region(box, min_fraction: float = 0.25, margin: float = 0.15) -> tuple[float, float, float, float]:
    """Where the head of the person in `box` can be, with a margin.

    An upright box (height >= 1.2 x width: someone standing or walking, seen from the side) has
    the head on top: the top `min_fraction` of its height, and at least 0.75 of its width (an
    upper body cut off by the frame or a desk has a head that is a large part of its box; a
    head is about as tall as 0.4-0.5 of the shoulder width that sets the box's width). A squatter
    box (seen from above, through a fisheye, seated, crouching, lying) gets blurred whole.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    mx = margin * bw
    if bh < _UPRIGHT * bw:
        my = margin * bh
        return (x1 - mx, y1 - my, x2 + mx, y2 + my)
    hh = min(bh, max(min_fraction * bh, 0.75 * bw))
    return (x1 - mx, y1 - margin * hh, x2 + mx, y1 + hh)


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
    # Sigma a third of the kernel (half a cell; about twice OpenCV's default for that kernel):
    # the steps between cells are smoothed away too, so none is left across a small face for a
    # face detector, or an eye, to read features into.
    k = (max(x2 - x1, y2 - y1) // 2) | 1
    image[y1:y2, x1:x2] = cv2.GaussianBlur(pix, (k, k), k / 3)


def _grow(boxes: np.ndarray, by: float) -> np.ndarray:
    boxes = _boxes(boxes)
    d = np.column_stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]]) * by
    return np.column_stack([boxes[:, :2] - d, boxes[:, 2:] + d]).astype(np.float32)


def face_regions(faces: np.ndarray, margin: float) -> np.ndarray:
    """Face boxes grown by `margin` of their size on every side, then to at least
    `_MIN_FACE_REGION` pixels square about their centre (see there why)."""
    grown = _grow(faces, margin)
    centre = (grown[:, :2] + grown[:, 2:]) / 2
    half = np.maximum((grown[:, 2:] - grown[:, :2]) / 2, _MIN_FACE_REGION / 2)
    return np.column_stack([centre - half, centre + half]).astype(np.float32)


def merge_rects(boxes: np.ndarray, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Integer rectangles clipped to the frame, overlapping ones merged into their union, so a
    crowd is searched as one crop rather than one per person (each YuNet call has a fixed cost)."""
    rects = []
    for x1, y1, x2, y2 in _boxes(boxes):
        r = [max(0, int(x1)), max(0, int(y1)), min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))]
        if r[2] - r[0] >= 4 and r[3] - r[1] >= 4:
            rects.append(r)
    merged = True
    while merged:
        merged = False
        out: list[list[int]] = []
        for r in rects:
            for o in out:
                if r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3]:
                    o[:] = [min(o[0], r[0]), min(o[1], r[1]), max(o[2], r[2]), max(o[3], r[3])]
                    merged = True
                    break
            else:
                out.append(r)
        rects = out
    return sorted(tuple(r) for r in rects)  # sorted: the same search order every run


class Redactor:
    """Blurs every face and head a frame may hold; returns an image or JPEG bytes safe to store."""

    def __init__(self, cfg: PrivacyConfig, faces: FaceDetector | None = None) -> None:
        self.cfg = cfg
        self.faces = faces or FaceDetector(
            cfg.face_model, cfg.face_model_path, cfg.face_score_threshold, 640, cfg.threads
        )
        # Per source: (time, face boxes) of its frame before. Replaced whole, never mutated, so
        # threads analysing several cameras with one redactor need no lock.
        self._last_faces: dict[str, tuple[float, np.ndarray]] = {}
        # Per source: the last frame searched whole at the enlarged scale (grey, smoothed) and the
        # faces that search found; replaced whole, like `_last_faces`.
        self._scans: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def find_faces(
        self, image: np.ndarray, where: np.ndarray = _NO_BOXES, everywhere: bool = False, source: str | None = None
    ) -> np.ndarray:
        """Face boxes (N,4): the whole frame enlarged up to `roi_scale` within `face_pixels` (plus a
        coarse pass for big faces); on a frame too large for that, also the regions `where` (or,
        with `everywhere`, the whole frame) enlarged `roi_scale` times for small faces. With
        `source` (consecutive frames of one camera), the enlarged pass covers only what changed
        since that camera's last enlarged whole-frame search (see `_changed`)."""
        h, w = image.shape[:2]
        cfg = self.cfg
        # A face too small for YuNet at 1x (under 10 px: someone far away) can be anywhere a
        # person can be, and neither the person detector nor the motion gate bounds where that
        # is: a passer-by standing still, one the detector misses, one half hidden behind someone
        # close to the camera, every pixel at once while the background model settles. So the
        # small-face search covers the whole frame, at a cost fixed by the frame size alone (a
        # search of people and motion regions cost that much anyway in a crowd).
        full = min(cfg.roi_scale, np.sqrt(cfg.face_pixels / (h * w)))
        if source is None or full <= 1:
            found = [self.faces.detect(image, full)[0]]
        else:
            found = [self._search_changes(image, full, source)]
        # At 1x as well: YuNet finds some faces at one scale and not at another (a 9 px face of
        # the shopping street found at 1x, lost at 2x), so the enlarged pass does not replace it.
        if full > 1:
            found.append(self.faces.detect(image, 1.0)[0])
        # Coarser still for faces too big for the smallest pass so far (YuNet's 300 px limit).
        if max(h, w) * min(full, 1.0) > 1.5 * _COARSE_SIDE:
            found.append(self.faces.detect(image, _COARSE_SIDE / max(h, w))[0])
        if full >= cfg.roi_scale:
            return np.concatenate(found)
        # A frame larger than the budget: its smallest faces are looked for where people may be,
        # smallest regions first (a distant person has a small box), within one more budget.
        if everywhere:
            rects = [(0, 0, w, h)]
        else:
            rects = sorted(merge_rects(where, w, h), key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        budget = cfg.face_pixels / cfg.roi_scale**2
        for x1, y1, x2, y2 in rects:
            if not everywhere:
                budget -= (x2 - x1) * (y2 - y1)
                if budget < 0:
                    break
            boxes = self.faces.detect(image[y1:y2, x1:x2], cfg.roi_scale)[0]
            found.append(boxes + np.array([x1, y1, x1, y1], np.float32))
        return np.concatenate(found)

    def regions(self, image: np.ndarray, seen: Seen | np.ndarray | None = None, thorough: bool = False) -> np.ndarray:
        """Boxes (N,4) to blur in `image`: see the module docstring."""
        if not isinstance(seen, Seen):
            seen = Seen(people=_boxes(seen if seen is not None else _NO_BOXES))
        cfg = self.cfg
        last = self._recent_faces(seen)
        # Search people and motion generously: a box from the detector or the motion gate can
        # be off by a good part of its size, and a face search needs some context around it.
        where = np.concatenate([_grow(seen.people, 0.2), _grow(seen.moving, 0.2), _grow(last, 1.0)])
        # Consecutive frames of one camera (not snapshots: rare, each searched whole) let the
        # enlarged search skip what has not changed since it last ran.
        source = seen.source if seen.time_s is not None and not thorough else None
        faces = self.find_faces(image, where, everywhere=thorough, source=source)
        if seen.time_s is not None:
            self._last_faces = {**self._last_faces, seen.source: (seen.time_s, faces)}
        out = [face_regions(faces, cfg.face_margin), _grow(last, 1.0)]
        heads = [head_region(b, cfg.head_fraction) for b in seen.people]
        h = image.shape[0]
        for x1, y1, x2, y2 in seen.moving:
            # A moving region standing upright and taller than a face is taken for a person the
            # detector missed; wide ones (vehicles, groups walking together) are left to the
            # face search above, so evidence of a vehicle act is not blurred away.
            bw, bh = x2 - x1, y2 - y1
            if bh >= _UPRIGHT * bw and bh >= 16 and bh < 0.9 * h:
                heads.append(head_region((x1, y1, x2, y2), cfg.head_fraction))
        out.append(_boxes(heads))
        return np.concatenate(out)

    def _search_changes(self, image: np.ndarray, scale: float, source: str) -> np.ndarray:
        """The enlarged whole-frame search, done again only where the frame differs from the last
        frame of `source` searched whole: YuNet's answer is a function of the pixels, so where they
        are the same (within video noise) and so are their surroundings (`_CONTEXT`), the faces
        are those that search found, kept, and none other can be there. A face cannot appear
        unseen in between: a person entering, a far walker moving a few pixels, a head turning
        towards the camera all change the pixels they cover by tens of grey levels, and the
        comparison is with the last searched frame, not the previous one, so slow changes add up
        until they are searched. Left to chance: a face whose whole appearance changes by less
        than `_CHANGE_LEVEL` grey levels, and yet turns from unfound to found (a face in deep
        shadow or noise barely above it); the 1x pass, head regions and carried faces of every
        frame still cover it, and whole-frame searches come back whenever half the frame changes.
        """
        gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        last = self._scans.get(source)
        rects = None if last is None or last[0].shape != gray.shape else self._changed(gray, last[0])
        if rects is None:
            faces = self.faces.detect(image, scale)[0]
            self._scans = {**self._scans, source: (gray, faces)}
            return faces
        ref_faces = last[1]
        found = []
        keep = np.ones(len(ref_faces), bool)
        cx, cy = (ref_faces[:, 0] + ref_faces[:, 2]) / 2, (ref_faces[:, 1] + ref_faces[:, 3]) / 2
        for x1, y1, x2, y2 in rects:
            boxes = self.faces.detect(image[y1:y2, x1:x2], scale)[0]
            found.append(boxes + np.array([x1, y1, x1, y1], np.float32))
            # A face of the last search inside a searched region is found again or gone.
            keep &= ~((cx >= x1 + _CONTEXT) & (cx < x2 - _CONTEXT) & (cy >= y1 + _CONTEXT) & (cy < y2 - _CONTEXT))
        return np.concatenate([ref_faces[keep], *found])

    @staticmethod
    def _changed(gray: np.ndarray, ref: np.ndarray) -> list[tuple[int, int, int, int]] | None:
        """Regions (with `_CONTEXT` around them) where `gray` differs from `ref`, or None when
        they cover so much that one whole-frame search is cheaper."""
        h, w = gray.shape
        moved = (cv2.absdiff(gray, ref) > _CHANGE_LEVEL).astype(np.uint8)
        th, tw = -(-h // _TILE), -(-w // _TILE)
        pad = np.zeros((th * _TILE, tw * _TILE), np.uint8)
        pad[:h, :w] = moved
        tiles = pad.reshape(th, _TILE, tw, _TILE).max(axis=(1, 3))
        if not tiles.any():
            return []
        n, _, stats, _ = cv2.connectedComponentsWithStats(tiles, connectivity=8)
        x, y, bw, bh = (stats[1:n, i].astype(np.float32) * _TILE for i in range(4))
        boxes = np.column_stack([x - _CONTEXT, y - _CONTEXT, x + bw + _CONTEXT, y + bh + _CONTEXT])
        rects = merge_rects(boxes, w, h)
        if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects) > _CHANGED_WHOLE * h * w:
            return None
        return rects

    def _recent_faces(self, seen: Seen) -> np.ndarray:
        last = self._last_faces.get(seen.source)
        if seen.time_s is None or last is None:
            return _NO_BOXES
        t, boxes = last
        return boxes if 0 < seen.time_s - t <= self.cfg.carry_s else _NO_BOXES

    def redact(self, image: np.ndarray, seen: Seen | np.ndarray | None = None, thorough: bool = False) -> np.ndarray:
        """A blurred copy of `image` (the input is never modified).

        `thorough` searches the whole frame at `roi_scale` too (snapshots: rare, and each one is
        evidence sent out). Later passes look again at the blurred result: a face just under the
        threshold can rise above it once a neighbouring region has changed.
        """
        out = image.copy()
        regions = self.regions(image, seen, thorough)
        h, w = image.shape[:2]
        for i in range(self.cfg.blur_passes):
            for box in regions:
                blur_region(out, box)
            if i + 1 == self.cfg.blur_passes or not len(regions):
                break
            # Only next to what was just blurred can a face have changed (the rest of the
            # frame was searched already): search there again, at 1x.
            found = [
                self.faces.detect(out[y1:y2, x1:x2], 1.0)[0] + np.array([x1, y1, x1, y1], np.float32)
                for x1, y1, x2, y2 in merge_rects(_grow(regions, 0.5), w, h)
            ]
            regions = face_regions(np.concatenate(found), self.cfg.face_margin) if found else _NO_BOXES
        return out

    def snapshot(self, image: np.ndarray, seen: Seen | np.ndarray | None = None) -> bytes:
        """Blur in memory (thoroughly), then encode: the only way the product turns a frame into bytes."""
        ok, buf = cv2.imencode(
            ".jpg", self.redact(image, seen, thorough=True), [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()
