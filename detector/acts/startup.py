"""Existing litter: carryable objects the detector sees lying in view while the camera starts.

They were there before anyone could be seen leaving them, so they never count as a
littering act; they are watched so that someone taking one away is a clean-up.
"""

from __future__ import annotations

from detector.acts.values import Person, Sighting
from detector.boxes import cover, overlaps
from detector.config import ActsConfig
from detector.values import Box


class StartupScan:
    def __init__(self, cfg: ActsConfig) -> None:
        self.cfg = cfg
        self.early_people: list[Box] = []  # people seen while the camera started
        self._votes: dict[int, tuple[Box, str, int]] = {}
        self._frames = 0
        self.done = False

    def step(
        self, elapsed_s: float, people: list[Person], sightings: list[Sighting], detected: bool
    ) -> list[tuple[Box, str]]:
        """One frame, `elapsed_s` after the camera started. Returns the existing litter
        (box, class) once, on the first frame after `startup_s`; nothing before or after."""
        cfg = self.cfg
        if self.done:
            return []
        if elapsed_s <= cfg.startup_s:
            if not detected:
                return []  # no look taken: neither a vote for nor against an object
            self._frames += 1
            self.early_people.extend(p.box for p in people)
            for s in sightings:
                if s.score < cfg.startup_min_score or s.object_class not in cfg.carryable_classes:
                    continue
                if any(overlaps(s.box, p.box) for p in people):
                    continue  # carried, not lying there
                key = next((k for k, (b, _, _) in self._votes.items() if cover(b, s.box) >= 0.5), None)
                if key is None:
                    self._votes[len(self._votes)] = (s.box, s.object_class, 1)
                else:
                    b, c, n = self._votes[key]
                    self._votes[key] = (b, c, n + 1)
            return []
        self.done = True
        # Seen on at least half the looks: an object lying there, not a detector's flicker.
        return [(box, cls) for box, cls, n in self._votes.values() if n >= max(2, self._frames // 2)]
