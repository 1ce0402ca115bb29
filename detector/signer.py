"""The edge's signer: turns an `Act` plus the source's chain state into a signed event and the
next chain state (see docs/EVENTS.md). The outbox persists that state; the audit writer
(`sign_acts`) keeps it in memory.

Two modes:
- live (`clip_start=None`): `time` is the wall clock, the UUIDv7 random bits are random;
- audit (`clip_start` given): `time` = clip_start + the act's t_notify and the UUIDv7 random
  bits come from sha256(source, seq), so the same acts and key give byte-identical events
  (Ed25519 signatures are deterministic).
In both, `time` never goes back within a chain (a clock stepped back by NTP, an act reported
after a later one): it is held at the previous event's time, as the chain rule requires.

The points an event claims (`data.points`) come from the one points rule
(`detector.protocol.scoring.apply`) on the source's outstanding litter, kept in the chain state.

Litter ids in events are unique per chain, not per run: the recogniser numbers its litter from
1 again every time a camera starts, so each run's ids are mapped above every id the chain used
before (`EventSigner.begin_run`). Without that, a restarted camera's litter 1 would be taken for
the previous run's litter 1: its littering not debited (already outstanding) and its clean-up
credited to wherever the old litter lay. Litter a new run recognises as the same object as
litter still outstanding from before (`ChainState.outstanding()` has each one's box) is mapped
onto the old id with `EventSigner.adopt`. The signer does that itself for litter a new run
reports as *found* (lying there when the camera started): a found object in the same zone
whose box lies mostly on an outstanding litter's box is that litter, still there after the
restart, and must not be counted a second time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detector.protocol import keys as keys_mod
from detector.protocol.events import (
    DATACONTENTTYPE,
    EPOCH,
    GENESIS_PREVHASH,
    SPECVERSION,
    TYPES,
    EventError,
    check_envelope,
    event_hash,
    make_source,
    rfc3339,
    sign_event,
    uuid7,
)
from detector.protocol.scoring import Litter, PointsConfig, SourceLitter
from detector.values import Act

# Outstanding litter remembered in the chain state (oldest forgotten first). It only shapes the
# points the edge claims; the backend applies its own copy of the rule to its own state.
_LITTER_MEMORY = 10_000


# A found object is an earlier run's outstanding litter when at least this share of the smaller
# of the two boxes lies inside the other (see EventSigner._adopt_found).
_SAME_PLACE = 0.5


def _overlap_of_smaller(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _ms(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


@dataclass
class ChainState:
    """What a source must remember between events: last seq, its hash and time, outstanding litter."""

    seq: int = 0  # last seq used; the next event gets seq + 1
    prevhash: str = GENESIS_PREVHASH
    litter: dict[int, Litter] = field(default_factory=dict)  # outstanding: litter id -> zone, points
    time_ms: int | None = None  # time of the last event (the next is never earlier)
    max_litter: int = 0  # the highest litter id the chain has used (a new run numbers above it)
    seen: dict[int, tuple[list[int], str]] = field(default_factory=dict)  # outstanding litter's box, class

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "prevhash": self.prevhash,
                "time_ms": self.time_ms,
                "max_litter": self.max_litter,
                "litter": [
                    [k, v.zone, v.points, v.severity, *self.seen.get(k, ([], ""))] for k, v in self.litter.items()
                ],
            }
        )

    def outstanding(self) -> list[tuple[int, Litter, list[int], str]]:
        """Litter this chain counts as lying there: (litter id, zone/points/severity, box, class)."""
        return [(k, v, *self.seen.get(k, ([], ""))) for k, v in self.litter.items()]

    @classmethod
    def from_json(cls, text: str) -> ChainState:
        d = json.loads(text)
        litter, seen = {}, {}
        for item in d["litter"]:
            if len(item) == 2:  # written before outstanding litter kept its zone: zone unknown
                litter[int(item[0])] = Litter("", int(item[1]), "small")
            else:
                litter[int(item[0])] = Litter(str(item[1]), int(item[2]), str(item[3]))
            if len(item) >= 6:
                seen[int(item[0])] = (list(item[4]), str(item[5]))
        max_litter = d.get("max_litter", max(litter, default=0))
        return cls(d["seq"], d["prevhash"], litter, d.get("time_ms"), max_litter, seen)


class EventSigner:
    """Turns acts into signed events for one source (site + camera)."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        site: str,
        camera: str,
        points: PointsConfig | None = None,
        clip_start: datetime | None = None,
    ):
        self.key = private_key
        self.source = make_source(site, camera)
        self.keyid = keys_mod.keyid(private_key)
        self.points = points or PointsConfig()
        if clip_start is not None and clip_start.tzinfo is None:
            clip_start = clip_start.replace(tzinfo=UTC)
        self.clip_start = clip_start
        self.litter_base = 0  # this run's litter ids are mapped to base + id
        self.adopted: dict[int, int] = {}  # this run's litter id -> an older outstanding litter's id
        self.earlier: frozenset[int] = frozenset()

    def begin_run(self, state: ChainState) -> None:
        """A new run of the recogniser (a camera (re)started): its litter ids, from 1 again, are
        mapped above every id the chain has used."""
        self.litter_base = state.max_litter
        self.adopted = {}
        self.earlier = frozenset(state.litter)  # outstanding from before this run: may be found again

    def adopt(self, run_litter: int, chain_litter: int) -> None:
        """The recogniser found its litter `run_litter` to be litter `chain_litter` that is still
        outstanding from before: events about it name the old id (one debit, and its clean-up
        gives back what that debit cost)."""
        self.adopted[run_litter] = chain_litter

    def _adopt_found(self, act: Act, state: ChainState) -> None:
        """A found object lying where litter of an earlier run is still outstanding is that litter.

        A fixed camera sees an object that did not move in the same pixels after a restart; the
        recogniser's box for it may be cut tighter or looser (a region now, a detection then), so
        the test is that most of the smaller box lies inside the larger one, not an exact IoU.
        Each old litter is adopted once per run (two objects side by side stay two)."""
        if act.kind != "found" or act.litter_id in self.adopted:
            return
        taken = set(self.adopted.values())
        best, best_overlap = None, _SAME_PLACE
        for lid, lit, box, _cls in state.outstanding():
            if lid not in self.earlier or lid in taken or len(box) != 4:
                continue  # this run's own litter, already adopted, or no box kept
            if lit.zone and lit.zone != act.zone:
                continue
            overlap = _overlap_of_smaller(box, act.box)
            if overlap >= best_overlap:
                best, best_overlap = lid, overlap
        if best is not None:
            self.adopt(act.litter_id, best)

    def chain_litter(self, run_litter: int) -> int:
        return self.adopted.get(run_litter, self.litter_base + int(run_litter))

    def sign(self, act: Act, state: ChainState) -> tuple[dict, ChainState]:
        """The signed event for `act` and the chain state after it (state is not modified)."""
        seq = state.seq + 1
        self._adopt_found(act, state)
        main_id = self.chain_litter(act.litter_id)
        also = [(self.chain_litter(lid), sev) for lid, sev in act.also]
        outstanding = SourceLitter(dict(state.litter))
        effect = outstanding.apply(self.points, act.kind, act.zone, [(main_id, act.severity), *also])
        litter = outstanding.litter
        seen = {k: v for k, v in state.seen.items() if k in litter}
        for lid, _ in effect.opened:
            seen[lid] = ([max(0, int(v)) for v in act.box], act.object_class)
        while len(litter) > _LITTER_MEMORY:
            oldest = next(iter(litter))
            litter.pop(oldest)
            seen.pop(oldest, None)
        points = effect.points
        max_litter = max(state.max_litter, main_id, *(lid for lid, _ in also))
        if self.clip_start is None:
            when = datetime.now(UTC)
            rand = os.urandom(10)
        else:
            when = self.clip_start + timedelta(milliseconds=_ms(act.t_notify))
            rand = hashlib.sha256(f"{self.source}\n{seq}".encode()).digest()
        when_ms = (when - EPOCH) // timedelta(milliseconds=1)  # exact integer ms, as in `time`
        if state.time_ms is not None:
            when_ms = max(when_ms, state.time_ms)
        data: dict[str, Any] = {
            "act": act.kind,
            "object_class": act.object_class,
            "box": [max(0, int(v)) for v in act.box],
            "severity": act.severity,
            "t_release_ms": _ms(act.t_release),
            "t_notify_ms": _ms(act.t_notify),
            "frame_index": int(act.frame_index),
            "litter": main_id,
            "points": points,
        }
        if also:
            data["also"] = [{"litter": lid, "severity": sev} for lid, sev in also]
        if act.snapshot:
            data["evidence_sha256"] = hashlib.sha256(act.snapshot).hexdigest()
        event: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": uuid7(when_ms, rand),
            "source": self.source,
            "type": TYPES[act.kind],
            "subject": act.zone,
            "time": rfc3339(EPOCH + timedelta(milliseconds=when_ms)),
            "datacontenttype": DATACONTENTTYPE,
            "seq": seq,
            "prevhash": state.prevhash,
            "keyid": self.keyid,
            "data": data,
        }
        event = sign_event(event, self.key)
        # An event the backend would refuse would block this source's chain for good: refuse
        # it here, before it is committed anywhere (the chain state is then unchanged).
        try:
            check_envelope(event)
        except EventError as e:
            raise ValueError(f"act cannot become a valid event: {e.detail}") from None
        return event, ChainState(seq, event_hash(event), litter, when_ms, max_litter, seen)


def sign_acts(
    acts: Iterable[Act],
    key_path: Path,
    site: str,
    camera: str,
    *,
    clip_start: datetime = EPOCH,
    points: PointsConfig | None = None,
    state: ChainState | None = None,
) -> Iterator[dict]:
    """Audit mode: signed events for `acts`, byte-identical for the same inputs and key.

    `time` = clip_start + act.t_notify; the chain starts at seq 1 (or after `state`).
    """
    signer = EventSigner(keys_mod.load_private_key(key_path), site, camera, points, clip_start)
    st = state or ChainState()
    signer.begin_run(st)
    for act in acts:
        event, st = signer.sign(act, st)
        yield event
