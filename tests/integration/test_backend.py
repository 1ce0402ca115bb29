"""The backend in its own process: acceptance, duplicates, refusals, bad requests, scores."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
from helpers import (
    BackendProcess,
    act,
    detector_cmd,
    event_fields,
    get_field,
    make_keys,
    tampered,
    with_field,
    write_config,
)

from detector import signer
from detector.protocol import events, keys

CAMERAS = [f"cam{i}" for i in range(12)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("backend")
    ks = make_keys(d, *CAMERAS, "revoked", "stranger")
    registered = {c: ks[c][1] for c in CAMERAS + ["revoked"]}
    cfg = write_config(
        d / "backend.yaml", registered, revoked=[ks["revoked"][2]], scoring={"grades": {"A": 990, "B": 970, "C": 950}}
    )
    b = BackendProcess(cfg).start()
    yield b, ks, d
    b.stop()


def chain(ks, camera, acts):
    return list(signer.sign_acts(acts, ks[camera][0], "s1", camera))


def assert_refused(b, payload, status, reason):
    before = b.ledger_count()
    r = b.post(payload)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason, r.text
    assert b.ledger_count() == before
    return r


def test_accept_duplicate_scores_and_grades(env):
    b, ks, _ = env
    evs = chain(
        ks,
        "cam0",
        [
            act(0, "cam0", "park", "littering", "bag", litter=1),
            act(1, "cam0", "park", "littering", "small", litter=2),
            act(2, "cam0", "park", "cleanup", "small", litter=1),  # gives back the bag's 30
            act(3, "cam0", "plaza", "cleanup", "bulky", litter=9),  # never counted: nothing to give back
        ],
    )
    r = b.post(evs[0])
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted"
    z = b.client.get("/v1/zones/park").json()
    assert (z["score"], z["grade"], z["entries"]) == (970, "B", 1)
    r = b.post(evs[0])  # duplicate: acknowledged, nothing changes
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "duplicate"
    r = b.post(evs)  # batch with the duplicate first
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["duplicate"] + ["accepted"] * 3
    zones = b.zones()
    assert zones["park"]["total_points"] == -10 and zones["park"]["score"] == 990 and zones["park"]["grade"] == "A"
    assert zones["plaza"]["total_points"] == 0 and zones["plaza"]["score"] == 1000
    assert zones["park"]["outstanding_points"] == 10 and zones["park"]["outstanding_litter"] == 1
    detail = b.client.get("/v1/zones/park", params={"limit": 2}).json()
    assert [e["points"] for e in detail["recent"]] == [30, -10]
    assert detail["recent"][0]["kind"] == "cleanup" and detail["entries"] == 3
    assert b.client.get("/v1/zones/nowhere").status_code == 404
    assert b.metric("detector_backend_events_total", result="duplicate") >= 2


def test_cleanup_of_several_items_closes_each_littering(env):
    b, ks, _ = env
    evs = chain(
        ks,
        "cam11",
        [
            act(0, "cam11", "yard", "littering", "bag", litter=1),
            act(1, "cam11", "yard", "littering", "bag", litter=2),
            # One pick-up took both: the debits come back (30 + 30), whatever the severities say.
            replace(act(2, "cam11", "yard", "cleanup", "small", litter=1), also=((2, "small"),)),
            # Litter 2 is closed: taking it again gives nothing (it is not lying there).
            act(3, "cam11", "yard", "cleanup", "small", litter=2),
        ],
    )
    assert [x["status"] for x in b.post(evs).json()["results"]] == ["accepted"] * 4
    z = b.client.get("/v1/zones/yard").json()
    # one ledger entry per litter changed, newest first
    assert [(e["litter"], e["points"]) for e in z["recent"]] == [(2, 0), (2, 30), (1, 30), (2, -30), (1, -30)]
    assert (z["score"], z["outstanding_points"]) == (1000, 0)


def test_every_tampered_field_is_refused(env):
    b, ks, _ = env
    # the target is a clean-up of two items with evidence, so it carries every optional field
    taken = replace(act(1, "cam1", "t1", "cleanup", "bag", litter=0, snapshot=b"jpeg"), also=((5, "small"),))
    evs = chain(ks, "cam1", [act(0, "cam1", "t1", severity="bag"), taken])
    assert b.post(evs[0]).status_code == 200
    target = evs[1]
    fields = event_fields(target)
    assert len(fields) >= 20 and {"data.also", "data.evidence_sha256"} <= set(fields)
    for field in fields:
        r = assert_refused_any(b, with_field(target, field, tampered(get_field(target, field))))
        assert r.json()["reason"] in {"schema", "bad_signature", "unknown_key", "key_mismatch"}, (field, r.text)
    # removed attributes and an added one
    for field in ("sig", "keyid", "data.points"):
        top = dict(target) if not field.startswith("data.") else {**target, "data": dict(target["data"])}
        (top["data"] if field.startswith("data.") else top).pop(field.split(".")[-1])
        assert_refused(b, top, 400, "schema")
    assert_refused(b, {**target, "note": "x"}, 400, "schema")
    assert b.post(target).status_code == 200  # the genuine event still goes in afterwards


def assert_refused_any(b, payload):
    before = b.ledger_count()
    r = b.post(payload)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["status"] == "refused"
    assert b.ledger_count() == before
    return r


def test_wrong_unknown_and_revoked_keys(env, tmp_path):
    b, ks, _ = env
    # signed by cam2's key but claiming to come from cam3
    forged = next(signer.sign_acts([act(0, "cam3", "k")], ks["cam2"][0], "s1", "cam3"))
    assert_refused(b, forged, 403, "key_mismatch")
    # a right keyid with a signature made by another key
    other = next(signer.sign_acts([act(0, "cam3", "k")], ks["stranger"][0], "s1", "cam3"))
    assert_refused(b, {**other, "keyid": ks["cam3"][2]}, 403, "bad_signature")
    assert_refused(
        b, next(signer.sign_acts([act(0, "x", "k")], ks["stranger"][0], "s1", "stranger")), 403, "unknown_key"
    )
    assert_refused(b, next(signer.sign_acts([act(0, "r", "k")], ks["revoked"][0], "s1", "revoked")), 403, "revoked_key")
    assert b.metric("detector_backend_refused_total", reason="revoked_key") >= 1


def test_revoke_command_takes_effect_at_once(env):
    b, ks, d = env
    evs = chain(ks, "cam4", [act(i, "cam4", "rv") for i in range(2)])
    assert b.post(evs[0]).status_code == 200
    r = subprocess.run(
        detector_cmd("backend", "revoke", ks["cam4"][2], "--config", str(b.config), "--reason", "stolen"),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "revoked" in r.stdout, r.stderr
    assert_refused(b, evs[1], 403, "revoked_key")
    r = subprocess.run(
        detector_cmd("backend", "revoke", "nothex", "--config", str(b.config)), capture_output=True, text=True
    )
    assert r.returncode == 2 and "key id" in r.stderr


def test_chain_rules(env):
    b, ks, _ = env
    evs = chain(ks, "cam5", [act(i, "cam5", "ch") for i in range(5)])
    assert_refused(b, evs[1], 409, "seq_gap")  # nothing accepted yet: seq 1 expected
    assert b.post(evs[0]).status_code == 200
    assert_refused(b, evs[2], 409, "seq_gap")
    # reordered batch: refused at the first out-of-order event, the prefix stays applied
    r = b.post([evs[1], evs[3], evs[2]])
    assert r.status_code == 409 and r.json()["reason"] == "seq_gap"
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "refused", "not_processed"]
    assert r.json()["accepted"] == 1
    # a different event re-using an accepted seq (a replay of old seq with another id)
    fork = chain(ks, "cam5", [act(100 + i, "cam5", "ch") for i in range(3)])
    assert fork[2]["seq"] == 3 and fork[2]["id"] != evs[2]["id"]
    assert b.post(evs[2]).status_code == 200
    assert_refused(b, fork[1], 409, "replayed_seq")
    # right seq, wrong prevhash (a chain forked from another history)
    fork4 = chain(ks, "cam5", [act(200 + i, "cam5", "ch") for i in range(4)])[3]
    assert_refused(b, fork4, 409, "prevhash_mismatch")
    # same id as an accepted event, different content, validly signed by the right key
    priv = keys.load_private_key(ks["cam5"][0])
    other = with_field(evs[2], "data.frame_index", 12345)
    other["sig"] = events._b64url(priv.sign(events.signing_bytes(other)))
    assert_refused(b, other, 409, "id_conflict")
    assert b.post(evs[3:]).status_code == 200
    assert b.zones()["ch"]["entries"] == 5
    assert b.metric("detector_backend_refused_total", reason="seq_gap") >= 2


def test_bad_requests_and_server_keeps_serving(env):
    b, ks, _ = env
    cases = [
        (b"{", 400, "malformed"),
        (b"", 400, "malformed"),
        (b"\xff\xfe\x00", 400, "malformed"),
        (b'{"a":1,"a":2}', 400, "malformed"),
        (b"[]", 400, "empty_batch"),
        (b"42", 400, "schema"),
        (b'"event"', 400, "schema"),
        (b"[1, 2]", 400, "schema"),
        (b"null", 400, "schema"),
        (b'{"specversion": 1}', 400, "schema"),
        (b"[" * 50000 + b"]" * 50000, 400, "malformed"),
        (b" " * (1 << 20) + b"{}", 413, "too_large"),
        (json.dumps([{}] * 1001).encode(), 413, "batch_too_large"),
    ]
    for body, status, reason in cases:
        r = b.post(content=body)
        assert (r.status_code, r.json()["reason"]) == (status, reason), body[:40]
    # chunked upload without Content-Length is cut off too
    r = b.client.post("/v1/events", content=iter([b" " * 65536] * 20), headers={"content-type": "application/json"})
    assert r.status_code == 413
    # wrong types inside an otherwise genuine event
    ev = chain(ks, "cam6", [act(0, "cam6", "bt")])[0]
    for field, value in [("seq", "1"), ("data.box", "1,2,3,4"), ("data.points", -1.0), ("subject", 7), ("data", [])]:
        assert_refused(b, with_field(ev, field, value), 400, "schema")
    assert b.client.get("/v1/zones/x", params={"limit": "many"}).status_code == 422
    assert b.client.get("/healthz").status_code == 200
    assert b.post(ev).status_code == 200
    assert b.metric("detector_backend_refused_total", reason="too_large") >= 2


def test_config_errors_are_one_line(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("keys:\n  /sites/a/cameras/b: missing.pub\n")
    r = subprocess.run(
        detector_cmd("backend", "serve", "--config", str(cfg)), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "missing.pub" in r.stderr
    cfg.write_text("scoring:\n  grades: {A: 1, B: 2, C: 3}\n")
    r = subprocess.run(
        detector_cmd("backend", "serve", "--config", str(cfg)), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "scoring.grades" in r.stderr
    cfg.write_text("listen: {hots: x}\n")
    r = subprocess.run(
        detector_cmd("backend", "serve", "--config", str(cfg)), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "listen.hots: unknown key" in r.stderr


def test_example_config_starts(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "configs" / "backend.example.yaml"
    text = example.read_text().replace("../out/backend-ledger.sqlite3", str(tmp_path / "ledger.sqlite3"))
    cfg = tmp_path / "backend.yaml"
    cfg.write_text(text)
    b = BackendProcess(cfg).start()
    try:
        assert b.client.get("/v1/zones").json() == {"ceiling": 1000, "floor": 0, "zones": []}
        assert "detector_backend_refused_total" in b.client.get("/metrics").text
    finally:
        b.stop()
