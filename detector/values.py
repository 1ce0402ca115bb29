"""Small typed values passed between the stages of one camera's pipeline.

Detections and tracks use `supervision.Detections` (xyxy boxes, confidence, class_id,
tracker_id), the value type the tracking library already speaks; the rest is defined here.
No value carries anything that identifies a person: track ids stay inside the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np

# littering and cleanup are acts (somebody did them); found (litter already lying there when
# the camera started) and vanished (litter gone with nobody near) are nobody's doing: they keep
# the ledger's litter right and must stay out of anything that counts acts (`Act.is_act`).
ActKind = Literal["littering", "cleanup", "found", "vanished"]
ACT_KINDS = ("littering", "cleanup")
Severity = Literal["small", "bag", "bulky"]
Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels of the source frame


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. `time_s` is video time from the stream's own timestamps."""

    index: int  # index in the decoded stream (before decimation)
    time_s: float
    image: np.ndarray  # BGR uint8, HxWx3; never modified after decoding
    # time.time() when a live source handed the frame on (the start of its act latency);
    # None for recorded clips, whose frames have no arrival time.
    received: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return w, h


class CameraState(StrEnum):
    """Where a live camera is in its life; one set of names for sources, workers, supervisor and health."""

    STARTING = "starting"  # its worker process or source is starting
    CONNECTING = "connecting"  # opening the stream
    RUNNING = "running"  # frames are coming
    RECONNECTING = "reconnecting"  # the stream was lost; about to reopen it
    BACKOFF = "backoff"  # waiting before the next attempt (stream or worker)
    FINISHED = "finished"  # a file camera without loop reached its end
    STOPPED = "stopped"  # stopped on request
    ERROR = "error"  # a configuration error (missing file, bad model): stopped, not retried


@dataclass(frozen=True, slots=True)
class Act:
    """A recognised littering or clean-up act (or litter found or vanished), anonymous by construction."""

    kind: ActKind
    camera: str
    zone: str
    object_class: str  # COCO name, or "unknown"
    box: Box
    severity: Severity
    t_release: (
        float  # video time the object left (littering), was taken (cleanup), first seen (found) or gone (vanished)
    )
    t_notify: float  # video time the act was recognised
    litter_id: int  # per-camera id of the litter location this act refers to
    frame_index: int = 0
    snapshot: bytes | None = field(default=None, repr=False, compare=False)  # blurred JPEG
    # clean-up only: other litter taken in the same pick-up, (litter_id, severity) each
    also: tuple[tuple[int, Severity], ...] = ()

    @property
    def is_act(self) -> bool:
        """A person's act (littering, clean-up), not litter found or vanished."""
        return self.kind in ACT_KINDS

    def to_json(self) -> dict:
        """JSON-ready dict (no snapshot bytes)."""
        return {
            "kind": self.kind,
            "camera": self.camera,
            "zone": self.zone,
            "object_class": self.object_class,
            "box": list(self.box),
            "severity": self.severity,
            "t_release": round(self.t_release, 3),
            "t_notify": round(self.t_notify, 3),
            "litter_id": self.litter_id,
            "frame_index": self.frame_index,
        } | ({"also": [{"litter_id": i, "severity": s} for i, s in self.also]} if self.also else {})
