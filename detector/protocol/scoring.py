"""The points rule: a zone's score is the litter lying there now, nothing else.

One pure implementation, called by the edge signer (the points it claims in `data.points`),
by every backend store (the points it applies) and by the property tests. The state it needs
is the litter *outstanding* per source: litter id -> (zone where it was counted, points,
severity). Given that state and one accepted event, `apply` says what changes:

- `littering` (an act) and `found` (litter already lying there when the camera started: no
  act, nobody's doing) open outstanding litter in the event's zone and debit its points there.
  Litter that is already outstanding is not opened again (one debit per litter).
- `cleanup` (an act) and `vanished` (litter gone with nobody near: wind, an unseen sweeper)
  close outstanding litter and give back exactly the points it was debited, once, to the zone
  where it was counted, whatever zone the event is seen in. Litter that is not outstanding
  (never counted, or already closed) gives nothing: credit is never banked.

So a zone's ledger sums to minus its outstanding points, its score is
`clamp(ceiling - outstanding, floor, ceiling)`, and no sequence of events on one litter moves
its zone above where it was before that litter appeared (a put-back and a second pick-up of
the same object net zero). Litter ids are per source, so events of different sources never
touch each other's litter and any interleaving of the sources' chains gives the same scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from detector.protocol.config import Section

Kind = Literal["littering", "cleanup", "found", "vanished"]
KINDS: tuple[str, ...] = ("littering", "cleanup", "found", "vanished")
# Acts are what a person did; `found` and `vanished` are nobody's doing and must stay out of
# anything that counts acts (bench, act counters, accuracy reports).
ACT_KINDS: tuple[str, ...] = ("littering", "cleanup")
OPENING: frozenset[str] = frozenset({"littering", "found"})
CLOSING: frozenset[str] = frozenset({"cleanup", "vanished"})


class PointsConfig(Section):
    """Points per severity: litter lying in a zone costs it these points until it is gone."""

    small: int = Field(10, ge=0, le=1_000_000, description="points of a small item")
    bag: int = Field(30, ge=0, le=1_000_000, description="points of a bag-sized item (or a bag)")
    bulky: int = Field(100, ge=0, le=1_000_000, description="points of a bulky item")

    def of(self, severity: str) -> int:
        return int(getattr(self, severity))


@dataclass(frozen=True, slots=True)
class Litter:
    """Outstanding litter: where it was counted and what it cost."""

    zone: str
    points: int  # >= 0, debited from `zone` when it was opened
    severity: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry: `points` added to `zone` for one litter (0: nothing changed)."""

    zone: str
    litter: int
    points: int
    severity: str


@dataclass(frozen=True, slots=True)
class Effect:
    """What one event changes: ledger entries, litter opened, litter closed."""

    entries: tuple[Entry, ...]
    opened: tuple[tuple[int, Litter], ...] = ()
    closed: tuple[int, ...] = ()

    @property
    def points(self) -> int:
        """The event's net points (what the edge signs as `data.points`)."""
        return sum(e.points for e in self.entries)

    def zone_deltas(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.zone] = out.get(e.zone, 0) + e.points
        return out


def apply(
    points: PointsConfig,
    kind: str,
    zone: str,
    items: Iterable[tuple[int, str]],
    outstanding: Callable[[int], Litter | None],
) -> Effect:
    """The effect of one event of `kind`, seen in `zone`, on `items` ((litter id, severity),
    the first one first) of one source whose outstanding litter `outstanding(litter)` returns
    (None: not outstanding). Pure: the caller persists the effect."""
    if kind not in OPENING and kind not in CLOSING:
        raise ValueError(f"unknown event kind {kind!r}")
    entries: list[Entry] = []
    opened: dict[int, Litter] = {}
    closed: list[int] = []
    for litter, severity in items:
        if litter in opened or litter in closed:  # named twice in one event: counts once
            entries.append(Entry(zone, litter, 0, severity))
            continue
        current = outstanding(litter)
        if kind in OPENING:
            if current is not None:  # already lying there and counted: one debit per litter
                entries.append(Entry(current.zone, litter, 0, current.severity))
                continue
            lit = Litter(zone, points.of(severity), severity)
            opened[litter] = lit
            entries.append(Entry(zone, litter, -lit.points, severity))
        else:
            if current is None:  # nothing outstanding: nothing to give back
                entries.append(Entry(zone, litter, 0, severity))
                continue
            closed.append(litter)
            entries.append(Entry(current.zone, litter, current.points, current.severity))
    return Effect(tuple(entries), tuple(opened.items()), tuple(closed))


def score(ceiling: int, floor: int, outstanding_points: int) -> int:
    """A zone's score: the ceiling minus the points of the litter lying there, kept in
    [floor, ceiling] (more litter than the scale holds still reads as the floor)."""
    return max(floor, min(ceiling, ceiling - outstanding_points))


@dataclass
class SourceLitter:
    """The outstanding litter of one source, in memory (the edge signer's chain state and the
    tests' reference; the stores keep the same in their tables)."""

    litter: dict[int, Litter] = field(default_factory=dict)

    def apply(self, points: PointsConfig, kind: str, zone: str, items: Iterable[tuple[int, str]]) -> Effect:
        effect = apply(points, kind, zone, items, self.litter.get)
        self.commit(effect)
        return effect

    def commit(self, effect: Effect) -> None:
        for lid in effect.closed:
            self.litter.pop(lid, None)
        for lid, lit in effect.opened:
            self.litter[lid] = lit

    def outstanding_by_zone(self) -> Mapping[str, int]:
        out: dict[str, int] = {}
        for lit in self.litter.values():
            out[lit.zone] = out.get(lit.zone, 0) + lit.points
        return out


# -- voids: the ledger as if an act had not been seen ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One accepted event of a source, as the rule needs it to be replayed."""

    kind: str
    zone: str
    items: tuple[tuple[int, str], ...]
    # points each litter this event opened was debited when it was accepted (a later change of
    # the points table does not re-price litter that is still the same litter)
    debits: Mapping[int, int] = field(default_factory=dict)


def replay(points: PointsConfig, seen: Iterable[Seen]) -> dict[int, Litter]:
    """The litter outstanding after a source's events, in chain order."""
    state = SourceLitter()
    for s in seen:
        effect = apply(points, s.kind, s.zone, s.items, state.litter.get)
        opened = tuple(
            (lid, Litter(lit.zone, s.debits[lid], lit.severity) if lid in s.debits else lit)
            for lid, lit in effect.opened
        )
        state.commit(Effect(effect.entries, opened, effect.closed))
    return state.litter


def reconcile(current: Mapping[int, Litter], target: Mapping[int, Litter]) -> Effect:
    """The effect that turns a source's outstanding litter from `current` into `target`: litter
    no longer (or differently) lying there is closed, giving its points back where it was
    counted; litter lying there now is opened where it is counted."""
    entries: list[Entry] = []
    opened: list[tuple[int, Litter]] = []
    closed: list[int] = []
    for lid in sorted(set(current) | set(target)):
        now, then = current.get(lid), target.get(lid)
        if now == then:
            continue
        if now is not None:
            closed.append(lid)
            entries.append(Entry(now.zone, lid, now.points, now.severity))
        if then is not None:
            opened.append((lid, then))
            entries.append(Entry(then.zone, lid, -then.points, then.severity))
    return Effect(tuple(entries), tuple(opened), tuple(closed))


def void(points: PointsConfig, current: Mapping[int, Litter], kept: Iterable[Seen]) -> Effect:
    """Voiding events (an operator says the camera was wrong): the source's outstanding litter
    becomes what its events that are not voided (`kept`, in chain order) leave, as if the voided
    ones had never been seen. Replaying, rather than undoing one act's own entries, makes the
    result independent of the order acts are voided in (voiding a littering and then its
    clean-up leaves nothing lying there, as does the reverse)."""
    return reconcile(current, replay(points, kept))
