"""What the act recogniser takes in and keeps: people, sightings, candidates, litter."""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.values import Act, Box, Severity


@dataclass(frozen=True, slots=True)
class Person:
    track_id: int  # short-lived, never leaves the worker
    box: Box

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True, slots=True)
class Sighting:
    """A carryable-object detection (class name and score)."""

    box: Box
    object_class: str
    score: float


@dataclass
class ActsStep:
    acts: list[Act] = field(default_factory=list)
    watch: list[tuple[int, Box]] = field(default_factory=list)  # (litter_id, box) to start watching
    unwatch: list[int] = field(default_factory=list)


@dataclass
class Candidate:
    """A static region that may become litter (or, if it was taken away, a clean-up)."""

    key: int
    box: Box
    since: float
    object_class: str
    owner: int | None = None  # track id of the nearest person when it appeared
    owner_height: float = 0.0
    unattended_since: float | None = None
    change: str = ""
    change_since: float = 0.0
    done: bool = False
    last_seen: float = 0.0
    # When the region in its present form began to differ: later than `since` when it is a
    # change at the place of an earlier one (the earlier region's owner may not be this one's).
    region_since: float | None = None
    # On or beside a vehicle: the first time it was judged with a vehicle seen beside it lately,
    # and the last time a vehicle was seen beside it (None: never).
    beside_vehicle_from: float | None = None
    vehicle_last_seen: float | None = None


@dataclass
class Litter:
    """Litter known to lie (or to have lain) at one place, keyed on that place."""

    litter_id: int
    box: Box
    object_class: str
    severity: Severity
    zone: str
    present: bool = True
    touched: float | None = None  # last time a person overlapped it
    gone_since: float | None = None
    missing_since: float | None = None  # looks gone while nobody touched it lately
    gone_at: float | None = None  # when it was found gone
    taken: float = 0.0  # when it was taken (its last touch), once gone
    back_since: float | None = None  # once taken: since when the detector sees it lying there again


def size(box: Box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))
