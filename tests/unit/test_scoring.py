"""The points rule (detector.protocol.scoring), directly: the cases of issue 15 and properties
over random event sequences (hypothesis), then the same rule through the edge signer and the
backend's SQLite store, which must agree with it and with each other."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest
from helpers import act
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import signer
from detector.backend.config import BackendConfig, resolve
from detector.backend.ingest import Ingestor
from detector.backend.store import SqliteLedgerStore
from detector.protocol import keys, scoring
from detector.protocol.scoring import PointsConfig, SourceLitter

PTS = PointsConfig()
CEILING, FLOOR = 1000, 0


class Ledger:
    """The rule applied to several sources, with the ledger entries it writes (what a store keeps)."""

    def __init__(self, points: PointsConfig = PTS):
        self.points = points
        self.sources: dict[str, SourceLitter] = {}
        self.entries: list[tuple[str, str, int, int]] = []  # (zone, source, litter, points)

    def apply(self, source: str, kind: str, zone: str, items) -> scoring.Effect:
        effect = self.sources.setdefault(source, SourceLitter()).apply(self.points, kind, zone, items)
        self.entries += [(e.zone, source, e.litter, e.points) for e in effect.entries]
        return effect

    def total(self, zone: str) -> int:
        return sum(p for z, _, _, p in self.entries if z == zone)

    def outstanding(self, zone: str) -> int:
        return sum(v for s in self.sources.values() for z, v in s.outstanding_by_zone().items() if z == zone)

    def score(self, zone: str) -> int:
        return scoring.score(CEILING, FLOOR, -self.total(zone))


# -- the cases of the issue ------------------------------------------------------------------


def test_credit_is_never_banked():
    led = Ledger()
    for i in range(40):  # 40 clean-ups of bulky litter nobody saw dropped
        assert led.apply("cam", "cleanup", "z", [(i, "bulky")]).points == 0
    assert led.score("z") == CEILING
    # one clean-up naming 64 extra items gives nothing either
    assert led.apply("cam", "cleanup", "z", [(1000 + i, "bulky") for i in range(65)]).points == 0
    for i in range(40):  # then 40 bulky littering acts: 4,000 points of litter lying there
        led.apply("cam", "littering", "z", [(100 + i, "bulky")])
    assert led.outstanding("z") == 4000 and led.score("z") == FLOOR  # the floor, not -3000 nor 1000


def test_credit_once_per_litter_and_put_back_nets_zero():
    led = Ledger()
    assert led.apply("cam", "littering", "z", [(1, "bag")]).points == -30
    assert led.apply("cam", "cleanup", "z", [(1, "bag")]).points == 30
    assert led.apply("cam", "cleanup", "z", [(1, "bag")]).points == 0  # second clean-up of the same litter
    assert led.score("z") == CEILING
    # put back (seen littered again) and picked up again: -30 + 30
    assert led.apply("cam", "littering", "z", [(1, "bag")]).points == -30
    assert led.apply("cam", "cleanup", "z", [(1, "bag")]).points == 30
    assert led.score("z") == CEILING
    # littering reported twice for litter already lying there: one debit
    led.apply("cam", "littering", "z", [(2, "small")])
    assert led.apply("cam", "littering", "z", [(2, "bulky")]).points == 0
    assert led.outstanding("z") == 10
    # a grouped pick-up naming litter 2 twice and litter 3 alone and again
    eff = led.apply("cam", "cleanup", "z", [(2, "small"), (2, "small")])
    assert eff.points == 10 and eff.closed == (2,)


def test_credit_goes_to_the_zone_where_the_litter_was_counted():
    led = Ledger()
    led.apply("cam", "littering", "A", [(1, "bulky")])
    eff = led.apply("cam", "cleanup", "B", [(1, "bulky")])  # seen in B (it was carried there)
    assert eff.zone_deltas() == {"A": 100}
    assert led.score("A") == CEILING and led.score("B") == CEILING


def test_found_litter_gives_its_clean_up_something_to_give_back_and_vanished_closes_it():
    led = Ledger()
    assert led.apply("cam", "found", "z", [(7, "bag")]).points == -30  # already lying there at start
    assert led.apply("cam", "found", "z", [(7, "bag")]).points == 0  # found again (restart): once
    assert led.apply("cam", "cleanup", "z", [(7, "small")]).points == 30  # what it cost, not its severity now
    led.apply("cam", "littering", "z", [(8, "small")])
    assert led.apply("cam", "vanished", "elsewhere", [(8, "small")]).zone_deltas() == {"z": 10}
    assert led.apply("cam", "vanished", "z", [(8, "small")]).points == 0
    assert led.score("z") == CEILING


def test_litter_ids_are_per_source():
    led = Ledger()
    led.apply("cam1", "littering", "z", [(1, "bag")])
    assert led.apply("cam2", "cleanup", "z", [(1, "bag")]).points == 0  # cam2's litter 1 is another object
    assert led.outstanding("z") == 30


def test_score_is_clamped_to_floor_and_ceiling():
    assert scoring.score(1000, 0, 0) == 1000
    assert scoring.score(1000, 0, 250) == 750
    assert scoring.score(1000, 0, 5000) == 0
    assert scoring.score(1000, -500, 5000) == -500
    with pytest.raises(ValueError, match="unknown event kind"):
        scoring.apply(PTS, "tidy", "z", [(1, "small")], lambda _: None)


# -- properties over random sequences ------------------------------------------------------------

SOURCES = ("cam1", "cam2", "cam3")
ZONES = ("A", "B", "C")
severity = st.sampled_from(("small", "bag", "bulky"))
litter_id = st.integers(0, 6)


@st.composite
def event(draw):
    kind = draw(st.sampled_from(scoring.KINDS))
    n = draw(st.integers(1, 4)) if kind == "cleanup" else 1  # several items: a grouped pick-up
    items = draw(st.lists(st.tuples(litter_id, severity), min_size=n, max_size=n))
    return draw(st.sampled_from(SOURCES)), kind, draw(st.sampled_from(ZONES)), items


events_st = st.lists(event(), max_size=60)
points_st = st.builds(PointsConfig, small=st.integers(0, 50), bag=st.integers(0, 200), bulky=st.integers(0, 900))


@settings(max_examples=150, deadline=None)
@given(seq=events_st, points=points_st)
def test_score_is_always_ceiling_minus_outstanding(seq, points):
    led = Ledger(points)
    present: dict[tuple[str, int], str] = {}  # reference: litter physically counted, where
    for source, kind, zone, items in seq:
        led.apply(source, kind, zone, items)
        for lid, _ in items:
            if kind in scoring.OPENING:
                present.setdefault((source, lid), zone)
            else:
                present.pop((source, lid), None)
        for z in ZONES:
            assert led.total(z) == -led.outstanding(z)
            assert led.score(z) == max(FLOOR, min(CEILING, CEILING - led.outstanding(z)))
            assert FLOOR <= led.score(z) <= CEILING
        # the rule's outstanding litter is exactly the reference's, in the zone it was counted in
        assert {(s, lid): lit.zone for s, sl in led.sources.items() for lid, lit in sl.litter.items()} == present
        # no litter ever nets a credit: its entries sum to minus its debit while it lies there, else 0
        per_litter: dict[tuple[str, int], int] = {}
        for _, s, lid, p in led.entries:
            per_litter[(s, lid)] = per_litter.get((s, lid), 0) + p
        for key, net in per_litter.items():
            lit = led.sources[key[0]].litter.get(key[1])
            assert net == (-lit.points if lit else 0), key


@settings(max_examples=200, deadline=None)
@given(seq=events_st)
def test_no_sequence_raises_a_zone_above_its_score_before_the_litter_appeared(seq):
    """After litter opens in zone Z (score s before it), Z never rises above s unless litter
    that was already lying in Z before it is taken away."""
    led = Ledger()
    history = []  # per event: (scores before, outstanding keys per zone before, effect, source)
    for source, kind, zone, items in seq:
        before = {z: led.score(z) for z in ZONES}
        lying = {
            z: {(s, lid) for s, sl in led.sources.items() for lid, lit in sl.litter.items() if lit.zone == z}
            for z in ZONES
        }
        eff = led.apply(source, kind, zone, items)
        history.append((before, lying, eff, source, {z: led.score(z) for z in ZONES}))
    for i, (before, lying, eff, source, _) in enumerate(history):
        for _lid, lit in eff.opened:
            z = lit.zone
            for j in range(i + 1, len(history)):
                _, _, later, later_source, after = history[j]
                if any((later_source, c) in lying[z] for c in later.closed):
                    break  # older litter of Z was cleaned: Z may rightly rise above s
                assert after[z] <= before[z], (i, j, z)


@st.composite
def chains_and_interleavings(draw):
    chains = {s: draw(st.lists(event().map(lambda e: e[1:]), max_size=15)) for s in SOURCES}
    tags = [s for s, c in chains.items() for _ in c]
    orders = [draw(st.permutations(tags)) for _ in range(2)]
    return chains, orders


@settings(max_examples=80, deadline=None)
@given(data=chains_and_interleavings())
def test_any_interleaving_the_chains_allow_gives_the_same_scores(data):
    chains, orders = data
    results = []
    for order in orders:
        led, pos = Ledger(), dict.fromkeys(SOURCES, 0)
        for s in order:  # each source's own events stay in chain order
            kind, zone, items = chains[s][pos[s]]
            pos[s] += 1
            led.apply(s, kind, zone, items)
        results.append(({z: led.score(z) for z in ZONES}, {z: led.total(z) for z in ZONES}))
    assert results[0] == results[1]


# -- the same rule at the edge and in the backend's store ------------------------------------------


@pytest.fixture(scope="module")
def cam_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("scoring-keys")
    key_path, pub_path, _ = keys.generate("cam", d)
    return key_path, pub_path


def _act(i, kind, zone, items):
    (lid, sev), *also = items
    return dataclasses.replace(act(i, "cam", zone, kind, sev, litter=lid), also=tuple(also))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.lists(event().map(lambda e: e[1:]), max_size=25))
def test_edge_claims_and_backend_applies_the_same_points(cam_key, tmp_path_factory, seq):
    key_path, pub_path = cam_key
    seq = [(k, z, list({lid: (lid, s) for lid, s in items}.values())) for k, z, items in seq]  # schema: no dupes
    d = tmp_path_factory.mktemp("ledger")
    cfg = BackendConfig.model_validate({"db": str(d / "l.sqlite3"), "keys": {"/sites/s1/cameras/cam": str(pub_path)}})
    store = SqliteLedgerStore(d / "l.sqlite3")
    ingestor = Ingestor(resolve(cfg, d, "test"), store)
    evs = list(
        signer.sign_acts(
            [_act(i, *e) for i, e in enumerate(seq)],
            key_path,
            "s1",
            "cam",
            clip_start=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    led = Ledger()
    try:
        for ev, (kind, zone, items) in zip(evs, seq, strict=True):
            status, acc = ingestor.ingest(ev, now_ms=2**47)  # far after the clip: no clock refusal
            assert status == "accepted"
            ref = led.apply("cam", kind, zone, items)
            assert acc.points == ev["data"]["points"] == ref.points
            assert acc.effect == ref
        totals = {z.zone: z for z in store.zones()}
        for z in ZONES:
            have = totals[z].total if z in totals else 0
            assert have == led.total(z) == -led.outstanding(z)
            if z in totals:
                assert totals[z].outstanding == sum(
                    1 for lit in led.sources.get("cam", SourceLitter()).litter.values() if lit.zone == z
                )
    finally:
        store.close()


def test_store_keeps_outstanding_litter_across_reopen(cam_key, tmp_path):
    key_path, pub_path = cam_key
    cfg = BackendConfig.model_validate(
        {"db": str(tmp_path / "l.sqlite3"), "keys": {"/sites/s1/cameras/cam": str(pub_path)}}
    )
    evs = list(
        signer.sign_acts(
            [_act(0, "littering", "A", [(1, "bulky")]), _act(1, "cleanup", "B", [(1, "small")])],
            key_path,
            "s1",
            "cam",
            clip_start=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    store = SqliteLedgerStore(tmp_path / "l.sqlite3")
    Ingestor(resolve(cfg, tmp_path, "t"), store).ingest(evs[0], now_ms=2**47)
    store.close()
    store = SqliteLedgerStore(tmp_path / "l.sqlite3")  # a restart
    try:
        _, acc = Ingestor(resolve(cfg, tmp_path, "t"), store).ingest(evs[1], now_ms=2**47)
        assert acc.effect.zone_deltas() == {"A": 100}
        assert {z.zone: (z.total, z.entries, z.outstanding) for z in store.zones()} == {"A": (0, 2, 0)}
    finally:
        store.close()


def test_every_kind_pair_is_covered():
    # the rule knows every event kind of the schema, opening or closing, never both
    assert set(scoring.KINDS) == scoring.OPENING | scoring.CLOSING
    assert not scoring.OPENING & scoring.CLOSING
    assert set(scoring.ACT_KINDS) < set(scoring.KINDS)
    assert list(itertools.chain(scoring.ACT_KINDS)) == ["littering", "cleanup"]


# -- voids: as if the voided acts had never been seen ----------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    seq=st.lists(event().map(lambda e: e[1:]), max_size=30),
    data=st.data(),
)
def test_voids_in_any_order_leave_the_ledger_as_if_the_acts_were_never_seen(seq, data):
    seen = [scoring.Seen(k, z, tuple(items)) for k, z, items in seq]
    led = Ledger()
    for s in seen:
        led.apply("cam", s.kind, s.zone, s.items)
    to_void = data.draw(st.lists(st.sampled_from(range(len(seen))), unique=True) if seen else st.just([]))
    results = []
    for order in (to_void, data.draw(st.permutations(to_void))):
        current = dict(led.sources.get("cam", SourceLitter()).litter)
        entries = list(led.entries)
        voided: set[int] = set()
        for i in order:
            voided.add(i)
            eff = scoring.void(PTS, current, [s for j, s in enumerate(seen) if j not in voided])
            SourceLitter(current).commit(eff)
            entries += [(e.zone, "cam", e.litter, e.points) for e in eff.entries]
            # every step keeps score == ceiling - outstanding
            for z in ZONES:
                total = sum(p for zz, _, _, p in entries if zz == z)
                assert total == -sum(lit.points for lit in current.values() if lit.zone == z)
        results.append(current)
        assert current == scoring.replay(PTS, [s for j, s in enumerate(seen) if j not in voided])
    assert results[0] == results[1]
    if set(to_void) == set(range(len(seen))):
        assert results[0] == {}  # everything voided: nothing is lying there


def test_void_keeps_the_debit_litter_was_counted_with():
    # litter opened at 30 points stays at 30 in a replay, even if the table now says 50
    seen = [scoring.Seen("littering", "z", ((1, "bag"),), {1: 30}), scoring.Seen("littering", "z", ((2, "bag"),))]
    current = {1: scoring.Litter("z", 30, "bag"), 2: scoring.Litter("z", 30, "bag")}
    eff = scoring.void(PointsConfig(bag=50), current, seen[:1])  # void the second
    assert eff.zone_deltas() == {"z": 30} and eff.closed == (2,) and eff.opened == ()


def test_store_voids_in_either_order_leave_nothing_lying(cam_key, tmp_path):
    key_path, pub_path = cam_key
    evs = list(
        signer.sign_acts(
            [_act(0, "littering", "z", [(1, "bag")]), _act(1, "cleanup", "z", [(1, "bag")])],
            key_path,
            "s1",
            "cam",
            clip_start=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    for n, order in enumerate(((0, 1), (1, 0))):
        d = tmp_path / str(n)
        cfg = BackendConfig.model_validate(
            {"db": str(d / "l.sqlite3"), "keys": {"/sites/s1/cameras/cam": str(pub_path)}}
        )
        store = SqliteLedgerStore(d / "l.sqlite3")
        try:
            ingestor = Ingestor(resolve(cfg, d, "t"), store)
            for ev in evs:
                ingestor.ingest(ev, now_ms=2**47)
            for i in order:
                store.void(evs[i]["id"], "operator", "camera was wrong", ingestor.compensate)
            z = store.zone("s1", "z")
            assert (z.total, z.outstanding) == (0, 0), order
        finally:
            store.close()
