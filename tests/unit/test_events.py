"""Envelope, canonical JSON, signatures, chain and the deterministic audit writer."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from helpers import act, event_fields, get_field, tampered, with_field

from detector import signer
from detector.cli import main
from detector.protocol import events, keys, scoring
from detector.protocol.errors import UserError

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    key_path, pub_path, kid = keys.generate("cam1", d)
    return key_path, pub_path, kid


def _acts():
    return [
        act(0, "cam1", "z1", "littering", "bag", litter=5, snapshot=b"\xff\xd8jpeg"),
        act(1, "cam1", "z2", "littering", "small", litter=6),
        act(2, "cam1", "z1", "cleanup", "small", litter=5),  # severity differs: points come from the littering
        act(3, "cam1", "z3", "cleanup", "bulky", litter=99),  # never counted (no littering, not found): nothing
    ]


def test_keys_generate_files_mode_and_keyid(key):
    key_path, pub_path, kid = key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    priv = keys.load_private_key(key_path)
    pub = keys.load_public_key(str(pub_path))
    assert keys.raw_public(pub) == keys.raw_public(priv.public_key())
    assert kid == hashlib.sha256(keys.raw_public(pub)).hexdigest()[:16]
    inline = keys.load_public_key(keys.public_b64(pub))
    assert keys.keyid(inline) == kid
    assert keys.keyid(keys.load_public_key(str(key_path))) == kid  # a private key file gives its public half
    with pytest.raises(UserError, match="already exists"):
        keys.generate("cam1", key_path.parent)


def test_keys_cli_and_bad_key_files(tmp_path, capsys):
    assert main(["keys", "generate", "--camera", "c2", "--out", str(tmp_path)]) == 0
    assert "keyid" in capsys.readouterr().out and (tmp_path / "c2.pub").is_file()
    assert main(["keys", "generate", "--camera", "bad/name", "--out", str(tmp_path)]) == 2
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(UserError, match="junk.key"):
        keys.load_private_key(tmp_path / "junk.key")
    with pytest.raises(UserError, match="not found"):
        keys.load_public_key(str(tmp_path / "missing.pub"))


def test_envelope_fields_points_and_chain(key):
    key_path, pub_path, kid = key
    evs = list(signer.sign_acts(_acts(), key_path, "s1", "cam1", clip_start=START))
    pub = keys.load_public_key(str(pub_path))
    assert [e["seq"] for e in evs] == [1, 2, 3, 4]
    assert evs[0]["prevhash"] == events.GENESIS_PREVHASH
    for prev, e in zip(evs, evs[1:]):
        assert e["prevhash"] == hashlib.sha256(rfc8785.dumps(prev)).hexdigest()
    for e in evs:
        events.check_envelope(e)
        events.check_signature(e, pub)
        assert e["specversion"] == "1.0" and e["keyid"] == kid
        assert e["source"] == "/sites/s1/cameras/cam1"
        assert e["datacontenttype"] == "application/json"
        u = uuid.UUID(e["id"])
        assert u.version == 7
        # the UUIDv7 timestamp is the event time
        assert (u.int >> 80) == int(datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp() * 1000)
    e0 = evs[0]
    assert e0["type"] == "org.cleanledger.littering.v1" and e0["subject"] == "z1"
    assert e0["time"] == "2026-03-01T12:00:00.250Z"
    assert e0["data"]["t_release_ms"] == 0 and e0["data"]["t_notify_ms"] == 250
    assert e0["data"]["evidence_sha256"] == hashlib.sha256(b"\xff\xd8jpeg").hexdigest()
    assert "evidence_sha256" not in evs[1]["data"]
    assert [e["data"]["points"] for e in evs] == [-30, -10, 30, 0]
    assert evs[2]["type"] == "org.cleanledger.cleanup.v1"
    # nothing about persons, only integers in data besides names
    assert set(e0["data"]) == {
        "act",
        "object_class",
        "box",
        "severity",
        "t_release_ms",
        "t_notify_ms",
        "frame_index",
        "litter",
        "points",
        "evidence_sha256",
    }
    assert all(isinstance(v, int) for v in e0["data"]["box"])


def test_one_cleanup_of_several_items_gives_back_each(key):
    key_path, pub_path, _ = key
    taken = dataclasses.replace(act(2, "cam1", "z1", "cleanup", "small", litter=5), also=((6, "small"), (7, "bulky")))
    acts = [
        act(0, "cam1", "z1", "littering", "bag", litter=5),
        act(1, "cam1", "z1", "littering", "small", litter=6),
        act(2, "cam1", "z1", "found", "bulky", litter=7),  # lying there when the camera started
        taken,
    ]
    evs = list(signer.sign_acts(acts, key_path, "s1", "cam1", clip_start=START))
    pub = keys.load_public_key(str(pub_path))
    for e in evs:
        events.check_envelope(e)
        events.check_signature(e, pub)
    # 30 and 10 back from the two littering acts, 100 for the bulky item found lying there
    assert [e["data"]["points"] for e in evs] == [-30, -10, -100, 140]
    assert evs[2]["type"] == "org.cleanledger.found.v1" and evs[2]["data"]["act"] == "found"
    assert evs[3]["data"]["also"] == [{"litter": 6, "severity": "small"}, {"litter": 7, "severity": "bulky"}]
    assert "also" not in evs[0]["data"]


@pytest.mark.parametrize(
    "also",
    [
        [{"litter": 5, "severity": "small"}],  # the main litter again
        [{"litter": 6, "severity": "small"}, {"litter": 6, "severity": "bag"}],
        [],
        [{"litter": 6, "severity": "huge"}],
        [{"litter": "6", "severity": "small"}],
    ],
)
def test_malformed_also_is_refused(key, also):
    key_path, _, _ = key
    e = next(signer.sign_acts([act(0, "cam1", "z1", "cleanup", "small", litter=5)], key_path, "s1", "cam1"))
    with pytest.raises(events.EventError):
        events.check_envelope({**e, "data": {**e["data"], "also": also}})
    litter = next(signer.sign_acts([act(0, "cam1", "z1", "littering", "small", litter=5)], key_path, "s1", "cam1"))
    with pytest.raises(events.EventError):  # a littering act takes nothing away
        events.check_envelope({**litter, "data": {**litter["data"], "also": [{"litter": 6, "severity": "small"}]}})


def test_audit_mode_is_byte_identical_and_live_mode_is_not(key, tmp_path):
    key_path, _, _ = key
    a = events.write_jsonl(signer.sign_acts(_acts(), key_path, "s1", "cam1", clip_start=START), tmp_path / "a.jsonl")
    b = events.write_jsonl(signer.sign_acts(_acts(), key_path, "s1", "cam1", clip_start=START), tmp_path / "b.jsonl")
    assert a == b == 4
    raw = (tmp_path / "a.jsonl").read_bytes()
    assert raw == (tmp_path / "b.jsonl").read_bytes()
    lines = raw.splitlines()
    assert lines[0] == rfc8785.dumps(json.loads(lines[0]))  # canonical JSON per line
    other = list(signer.sign_acts(_acts(), key_path, "s1", "cam1", clip_start=datetime(2026, 3, 2, tzinfo=UTC)))
    assert other[0]["id"] != json.loads(lines[0])["id"]
    live = signer.EventSigner(keys.load_private_key(key_path), "s1", "cam1")
    live1, _ = live.sign(_acts()[0], signer.ChainState())
    live2, _ = live.sign(_acts()[0], signer.ChainState())
    assert live1["id"] != live2["id"]
    # live ids carry the event time too (exact integer ms, no float rounding)
    live_ms = (datetime.fromisoformat(live1["time"]) - events.EPOCH) // timedelta(milliseconds=1)
    assert uuid.UUID(live1["id"]).int >> 80 == live_ms


def test_configurable_points(key):
    key_path, _, _ = key
    pts = scoring.PointsConfig(small=1, bag=2, bulky=3)
    evs = list(signer.sign_acts(_acts(), key_path, "s1", "cam1", points=pts))
    assert [e["data"]["points"] for e in evs] == [-2, -1, 2, 0]


def test_signature_covers_every_field(key):
    key_path, pub_path, _ = key
    pub = keys.load_public_key(str(pub_path))
    # a littering act with evidence, and a clean-up of two items (data.also)
    taken = dataclasses.replace(act(1, "cam1", "z1", "cleanup", "small", litter=5), also=((6, "small"),))
    e, cleanup = signer.sign_acts([_acts()[0], taken], key_path, "s1", "cam1")
    assert "data.evidence_sha256" in event_fields(e) and "data.also" in event_fields(cleanup)
    for ev in (e, cleanup):
        for field in event_fields(ev):
            if field == "sig":
                continue
            t = with_field(ev, field, tampered(get_field(ev, field)))
            with pytest.raises(events.EventError) as ex:
                events.check_signature(t, pub)
            assert ex.value.reason == "bad_signature", field
    # the same signature bytes spelled differently (unused bits of the last character)
    last = e["sig"][-1]
    alias = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alias[(alias.index(last) & ~0xF) | ((alias.index(last) + 1) & 0xF)]
    assert base64.urlsafe_b64decode(e["sig"][:-1] + twin + "==") == base64.urlsafe_b64decode(e["sig"] + "==")
    with pytest.raises(events.EventError):
        events.check_signature(dict(e, sig=e["sig"][:-1] + twin), pub)
    bad = dict(e, sig=base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=").decode())
    with pytest.raises(events.EventError):
        events.check_signature(bad, pub)


@pytest.mark.parametrize(
    "mutate, detail",
    [
        (lambda e: e.pop("keyid"), "keyid"),
        (lambda e: e.update(seq="1"), "seq"),
        (lambda e: e.update(seq=True), "seq"),
        (lambda e: e.update(extra=1), "unknown attribute"),
        (lambda e: e["data"].update(box=[1, 2, 3]), "box"),
        (lambda e: e["data"].update(box=[1.5, 2, 3, 4]), "box"),
        (lambda e: e["data"].update(points=5), "littering points"),
        (lambda e: e.update(type="org.cleanledger.cleanup.v1"), "type"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e.update(time=e["time"][:-5] + "Z"), "time"),  # no milliseconds
        (lambda e: e.update(time=e["time"][:-1] + "+00:00"), "time"),  # UTC, but not spelled Z
        (lambda e: e.update(time=e["time"][:-2] + "1Z"), "timestamp of the id"),
        (lambda e: e.update(time="9999-12-31T23:59:59.999Z"), "timestamp of the id"),
        (lambda e: e.update(type="org.cleanledger.found.v1"), "type"),
        (lambda e: e["data"].update(act="vanished", points=-1), "vanished points must be >= 0"),
        (lambda e: e.update(id="not-a-uuid"), "id"),
        (lambda e: e.update(seq=2**60), "seq"),
        (lambda e: e["data"].update(evidence_sha256=None), "evidence_sha256"),
    ],
)
def test_schema_refuses(key, mutate, detail):
    key_path, _, _ = key
    e = json.loads(json.dumps(next(signer.sign_acts(_acts(), key_path, "s1", "cam1"))))
    mutate(e)
    with pytest.raises(events.EventError) as ex:
        events.check_envelope(e)
    assert ex.value.reason == "schema" and detail in ex.value.detail


def test_strict_json_loading():
    for raw in [b'{"a":1,"a":2}', b'{"a":NaN}', b"[1,", b"\xff\xfe", b"[" * 100000, b'[{"id":"\\ud800"}]']:
        with pytest.raises(events.EventError) as ex:
            events.loads_strict(raw)
        assert ex.value.reason == "malformed"


def test_uuid7_layout():
    u = uuid.UUID(events.uuid7(0x0123456789AB, b"\xff" * 10))
    assert u.version == 7 and u.variant == uuid.RFC_4122 and u.int >> 80 == 0x0123456789AB


def test_signer_refuses_acts_that_cannot_become_valid_events(key):
    key_path, _, _ = key
    s = signer.EventSigner(keys.load_private_key(key_path), "s1", "cam1")
    bad = act(0, "cam1", zone="zone with spaces")
    with pytest.raises(ValueError, match="subject"):
        s.sign(bad, signer.ChainState())
    # a box reaching past the frame edge is clamped to 0, not refused
    ok, st = s.sign(dataclasses.replace(act(0, "cam1", zone="z"), box=(-5, 20, 30, 40)), signer.ChainState())
    assert st.seq == 1 and ok["data"]["box"] == [0, 20, 30, 40]


def test_times_never_go_back_within_a_chain(key):
    key_path, _, _ = key
    late, early = act(5, "cam1", "z1"), act(1, "cam1", "z1", litter=9)  # reported out of time order
    evs = list(signer.sign_acts([late, early], key_path, "s1", "cam1", clip_start=START))
    assert evs[0]["time"] == evs[1]["time"] == "2026-03-01T12:00:02.750Z"  # held, not moved back
    for e in evs:
        assert events.check_envelope(e).time_ms == events.id_ms(e["id"])
    first, second = (events.check_envelope(e) for e in evs)
    events.check_link(2, second.prevhash, 1, events.event_hash(evs[0]), second.time_ms, first.time_ms)
    with pytest.raises(events.EventError) as ex:
        events.check_link(2, second.prevhash, 1, events.event_hash(evs[0]), first.time_ms - 1, first.time_ms)
    assert ex.value.reason == "time_backwards"


def test_clock_rule_refuses_times_too_far_ahead_or_behind():
    now = 1_800_000_000_000
    events.check_clock(now + 299_000, now, 300, None)
    events.check_clock(now - 10**12, now, 300, None)  # no bound behind by default: an outage's backlog
    for when, reason in [(now + 301_000, "time_ahead"), (now - 3_601_000, "time_behind")]:
        with pytest.raises(events.EventError) as ex:
            events.check_clock(when, now, 300, 3600)
        assert ex.value.reason == reason


def test_litter_ids_are_unique_per_chain_across_runs(key):
    """A restarted camera numbers its litter from 1 again: its events must not name the previous
    run's litter, unless the recogniser adopts it as the same object."""
    key_path, _, _ = key
    priv = keys.load_private_key(key_path)
    run1 = signer.EventSigner(priv, "s1", "cam1", clip_start=START)
    st = signer.ChainState()
    run1.begin_run(st)
    e1, st = run1.sign(act(0, "cam1", "A", "littering", "bag", litter=1), st)
    e2, st = run1.sign(act(1, "cam1", "A", "littering", "small", litter=2), st)
    assert (e1["data"]["litter"], e2["data"]["litter"]) == (1, 2)  # the first run: ids as recognised
    st = signer.ChainState.from_json(st.to_json())  # what the outbox keeps
    assert st.max_litter == 2 and [(k, box, cls) for k, _, box, cls in st.outstanding()] == [
        (1, [10, 20, 30, 40], "bottle"),
        (2, [11, 20, 31, 40], "bottle"),
    ]
    run2 = signer.EventSigner(priv, "s1", "cam1", clip_start=START)
    run2.begin_run(st)
    e3, st = run2.sign(act(2, "cam1", "B", "littering", "small", litter=1), st)
    assert e3["data"]["litter"] == 3 and e3["data"]["points"] == -10  # a new object: debited
    e4, st = run2.sign(act(3, "cam1", "B", "cleanup", "small", litter=1), st)
    assert e4["data"]["litter"] == 3 and e4["data"]["points"] == 10  # its own debit back, not the bag's
    run2.adopt(7, 1)  # the recogniser found its litter 7 to be the first run's bag
    e5, st = run2.sign(dataclasses.replace(act(4, "cam1", "B", "cleanup", "small", litter=7), also=((2, "small"),)), st)
    assert e5["data"]["litter"] == 1 and e5["data"]["also"] == [{"litter": 4, "severity": "small"}]
    assert e5["data"]["points"] == 30  # the bag's 30; this run's litter 2 (chain id 4) was never counted
    assert st.max_litter == 4 and st.litter == {2: scoring.Litter("A", 10, "small")}


def test_litter_found_after_a_restart_where_outstanding_litter_lies_is_not_counted_twice(key):
    """A camera restarts while a bag it counted still lies there: the new run reports the bag as
    found. The signer maps it onto the old litter (no second debit), and its clean-up gives back
    the old debit once. Found litter elsewhere, or in another zone, is new litter."""
    key_path, _, _ = key
    priv = keys.load_private_key(key_path)
    run1 = signer.EventSigner(priv, "s1", "cam1", clip_start=START)
    st = signer.ChainState()
    run1.begin_run(st)
    _, st = run1.sign(act(0, "cam1", "A", "littering", "bag", litter=1), st)  # box (10, 20, 30, 40)
    st = signer.ChainState.from_json(st.to_json())
    run2 = signer.EventSigner(priv, "s1", "cam1", clip_start=START)
    run2.begin_run(st)
    bag_again = dataclasses.replace(act(1, "cam1", "A", "found", "bag", litter=1), box=(12, 22, 29, 41))
    e1, st = run2.sign(bag_again, st)
    assert e1["data"]["litter"] == 1 and e1["data"]["points"] == 0  # the same bag: one debit only
    elsewhere = dataclasses.replace(act(2, "cam1", "A", "found", "small", litter=2), box=(200, 20, 220, 40))
    e2, st = run2.sign(elsewhere, st)
    assert e2["data"]["litter"] == 3 and e2["data"]["points"] == -10  # new litter (run id 2 above the chain's 1)
    other_zone = dataclasses.replace(act(3, "cam1", "B", "found", "small", litter=3), box=(10, 20, 30, 40))
    e3, st = run2.sign(other_zone, st)
    assert e3["data"]["litter"] == 4 and e3["data"]["points"] == -10
    e4, st = run2.sign(act(4, "cam1", "A", "cleanup", "bag", litter=1), st)
    assert e4["data"]["litter"] == 1 and e4["data"]["points"] == 30  # the first run's debit, once
    assert sorted(st.litter) == [3, 4]
