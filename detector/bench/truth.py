"""The truth file: clips, their annotated events, and which act kind each event scores against.

Truth types: `litter` and `abandon` score against `littering`, `pickup` against `cleanup`.
Events with `scored: false` and informational types (`place`, `drop`, anything else) are
unscored (see `detector.bench.scoring` for how acts near them are treated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.config import load_yaml
from detector.protocol.errors import UserError

# The act kinds the bench scores; the recogniser may emit others (they are listed, never scored).
KINDS = ("littering", "cleanup")
# Scored truth types and the act kind each one is matched against.
SCORED_TYPES = {"litter": "littering", "abandon": "littering", "pickup": "cleanup"}
# Informational types: never scored, but a nearby act of this kind is not a false alarm.
INFO_TYPES = {"place": "littering", "drop": "littering"}


class TruthEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # annotators add notes, confidence, ...

    type: str = Field(
        min_length=1, description="litter | abandon | pickup (scored); place | drop | ... (informational)"
    )
    t_start: float = Field(ge=0, description="onset in seconds of video from the first frame")
    t_end: float | None = Field(None, ge=0, description="end of the act")
    scored: bool = Field(True, description="false: counts neither way")
    where: dict[str, Any] | None = Field(None, description="box [x1, y1, x2, y2] and/or desc")

    @model_validator(mode="after")
    def _end_after_start(self) -> TruthEvent:
        if self.t_end is not None and self.t_end < self.t_start:
            raise ValueError(f"t_end {self.t_end} is before t_start {self.t_start}")
        self.box  # noqa: B018 - a malformed where.box is an error in the truth file, not at scoring time
        return self

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """The truth object's box [x1, y1, x2, y2] in pixels of the stored frame, or None when not annotated."""
        raw = (self.where or {}).get("box")
        if raw is None:
            return None
        if (
            not isinstance(raw, list | tuple)
            or len(raw) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
        ):
            raise ValueError(f"where.box must be [x1, y1, x2, y2] numbers, got {raw!r}")
        x1, y1, x2, y2 = (float(v) for v in raw)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"where.box {raw!r} has no area (needs x1 < x2 and y1 < y2)")
        return x1, y1, x2, y2

    @property
    def kind(self) -> str | None:
        """The act kind this event scores against, or None when unscored."""
        return SCORED_TYPES.get(self.type) if self.scored else None

    @property
    def absorbs(self) -> set[str]:
        """Act kinds that are not false alarms near this unscored event (unknown types: both)."""
        k = SCORED_TYPES.get(self.type) or INFO_TYPES.get(self.type)
        return {k} if k else set(KINDS)


class TruthClip(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    file: str = Field(min_length=1, description="file name inside the footage directory")
    name: str | None = Field(None, description="short name (sample manifest)")
    events: list[TruthEvent] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _null_events(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("events") is None:
            data = {**data, "events": []}
        return data


class TruthFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    clips: list[TruthClip]


def load_truth(path: Path) -> TruthFile:
    """Read and validate a truth file; every problem becomes a one-line UserError."""
    if not Path(path).is_file():
        raise UserError(f"{path}: truth file not found")
    raw = load_yaml(path)
    if not isinstance(raw, dict) or "clips" not in raw:
        raise UserError(f"{path}: expected a mapping with a 'clips' list")
    try:
        truth = TruthFile.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = list(first["loc"])
        # Name the clip by its file rather than its index where possible.
        if len(loc) >= 2 and loc[0] == "clips" and isinstance(loc[1], int) and isinstance(raw["clips"][loc[1]], dict):
            loc[1] = raw["clips"][loc[1]].get("file", loc[1])
        key = ".".join(str(p) for p in loc) or "(top level)"
        raise UserError(f"{path}: {key}: {first['msg']}") from None
    files = [c.file for c in truth.clips]
    dupes = sorted({f for f in files if files.count(f) > 1})
    if dupes:
        raise UserError(f"{path}: clip listed twice: {', '.join(dupes)}")
    return truth


def select_clips(truth: TruthFile, names: list[str] | None) -> list[TruthClip]:
    """The clips named (by file name, stem or short name), in the order asked; all when none."""
    if not names:
        return list(truth.clips)
    out = []
    for n in names:
        found = [c for c in truth.clips if n in (c.file, c.name, Path(c.file).stem)]
        if not found:
            raise UserError(f"--clips: '{n}' is not in the truth file")
        out.extend(c for c in found if c not in out)
    return out
