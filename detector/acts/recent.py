"""What the recogniser saw lately: people (to find an owner or a toucher) and vehicles."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator

from detector.acts.values import Person
from detector.boxes import overlaps
from detector.config import ActsConfig
from detector.values import Box


class Recent:
    def __init__(self, cfg: ActsConfig) -> None:
        self.cfg = cfg
        # Parallel lists (times ascending), pruned in chunks: the owner of an object first seen
        # long after it appeared is looked up by time, so lookups bisect instead of scanning.
        self._times: list[float] = []
        self._people: list[tuple[Person, ...]] = []
        self._vehicles: deque[tuple[float, list[Box]]] = deque()

    def add(self, time_s: float, people: list[Person], vehicles: list[Box]) -> None:
        cfg = self.cfg
        self._times.append(time_s)
        self._people.append(tuple(people))
        horizon = max(cfg.memory_s, cfg.owner_lookback_s, cfg.touch_memory_s) + 1.0
        old = bisect_left(self._times, time_s - horizon)
        if old > 64 or (old and old * 2 > len(self._times)):
            del self._times[:old], self._people[:old]
        if vehicles:
            self._vehicles.append((time_s, vehicles))
        while self._vehicles and time_s - self._vehicles[0][0] > cfg.vehicle_memory_s:
            self._vehicles.popleft()

    def people(self, since: float) -> Iterator[tuple[float, tuple[Person, ...]]]:
        """(time, people in view) for every frame from `since` on, oldest first."""
        for i in range(bisect_left(self._times, since), len(self._times)):
            yield self._times[i], self._people[i]

    def people_around(self, since: float) -> Iterator[tuple[float, tuple[Person, ...]]]:
        """The frames of the `owner_lookback_s` before `since`: whoever left something was
        there when it appeared; someone first seen afterwards is a passer-by."""
        lo = bisect_left(self._times, since - self.cfg.owner_lookback_s)
        hi = bisect_right(self._times, since)
        for i in range(lo, hi):
            yield self._times[i], self._people[i]

    def vehicle_beside(self, box: Box) -> float | None:
        """When a vehicle was last seen on or next to `box` (within `vehicle_memory_s`) with
        `box` not clearly in front of it on the ground (its bottom below the vehicle's): then
        it may be part of the vehicle or of where it stood. None if no vehicle was."""
        m = self.cfg.vehicle_margin
        for seen, boxes in reversed(self._vehicles):
            for v in boxes:
                dx, dy = (v[2] - v[0]) * m, (v[3] - v[1]) * m
                near = overlaps((v[0] - dx, v[1] - dy, v[2] + dx, v[3] + dy), box)
                if near and box[3] < v[3] + dy:
                    return seen
        return None
