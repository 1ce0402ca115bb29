"""Draw what the pipeline saw onto a copy of the frame: zones, tracks, litter, acts, time."""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv

from detector.values import Act

PERSON_COLOUR = (80, 200, 80)  # BGR
OBJECT_COLOUR = (0, 165, 255)
LITTER_COLOUR = (0, 0, 255)
CLEANUP_COLOUR = (255, 160, 0)
ZONE_COLOUR = (200, 200, 0)


def _label(img: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: float) -> None:
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = max(0, min(x, img.shape[1] - tw))  # keep labels of boxes at the edge readable
    y = max(th + base, y)
    cv2.rectangle(img, (x, y - th - base), (x + tw, y), colour, -1)
    cv2.putText(img, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)


def draw_frame(
    image: np.ndarray,
    time_s: float,
    tracks: sv.Detections,
    class_names: list[str],
    zones: list[tuple[str, np.ndarray]] = (),
    litter: list[tuple[int, tuple[int, int, int, int], str]] = (),
    acts: list[Act] = (),
) -> np.ndarray:
    """Draw onto `image` in place and return it.

    Pass a copy, never a decoded frame (frames are shared and never modified): replay passes
    the face-blurred copy it already made, so no frame is copied twice.
    """
    out = image
    h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 900)
    thick = max(1, round(scale * 2.5))
    for zid, poly in zones:
        cv2.polylines(out, [poly.astype(np.int32)], True, ZONE_COLOUR, thick)
        x, y = poly.reshape(-1, 2).min(axis=0).astype(int)
        _label(out, f"zone {zid}", int(x), int(y) + 20, ZONE_COLOUR, scale)
    for box, cid, tid, conf in zip(tracks.xyxy, tracks.class_id, tracks.tracker_id, tracks.confidence):
        name = class_names[int(cid)]
        colour = PERSON_COLOUR if name == "person" else OBJECT_COLOUR
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        _label(out, f"#{int(tid)} {name} {float(conf):.2f}", x1, y1, colour, scale)
    for lid, (x1, y1, x2, y2), name in litter:
        cv2.rectangle(out, (x1, y1), (x2, y2), LITTER_COLOUR, thick)
        _label(out, f"litter L{lid} {name}", x1, y2 + int(22 * scale) + 4, LITTER_COLOUR, scale)
    for act in acts:
        colour = LITTER_COLOUR if act.kind in ("littering", "found") else CLEANUP_COLOUR
        x1, y1, x2, y2 = act.box
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick + 2)
    banner = [f"t={time_s:7.2f}s"] + [f"{a.kind.upper()} {a.object_class} ({a.severity}) zone {a.zone}" for a in acts]
    for i, text in enumerate(banner):
        colour = (
            (255, 255, 255)
            if i == 0
            else (LITTER_COLOUR if acts[i - 1].kind in ("littering", "found") else CLEANUP_COLOUR)
        )
        _label(out, text, 4, int((i + 1) * (40 * scale + 4)), colour, scale)
    return out
