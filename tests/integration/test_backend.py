"""The backend in its own process, on SQLite and on PostgreSQL (the same tests for both):
acceptance, duplicates, refusals, bad requests, scores per site, keys without restarts,
operator voids, blocked chains, evidence and camera views.

Events are built with `detector.protocol` only (helpers.Chain), as a camera would sign them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime

import pytest
from helpers import (
    DB_KINDS,
    BackendProcess,
    Chain,
    add_user,
    detector_cmd,
    event_fields,
    get_field,
    make_keys,
    resign,
    scratch_database,
    tampered,
    wait_until,
    with_field,
    write_config,
)

from detector.protocol import events, keys
from detector.protocol.views import make_view

CAMERAS = [f"cam{i}" for i in range(14)]
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # a JPEG's magic bytes; the backend checks no more


@pytest.fixture(scope="module", params=DB_KINDS)
def env(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"backend-{request.param}")
    ks = make_keys(d, *CAMERAS, "revoked", "stranger", "late", "other", "south")
    registered = {c: ks[c][1] for c in CAMERAS + ["revoked"]}
    with scratch_database(request.param, d) as db:
        cfg = write_config(
            d / "backend.yaml",
            registered,
            revoked=[ks["revoked"][2]],
            db=db,
            scoring={"grades": {"A": 990, "B": 970, "C": 950}},
            max_evidence_bytes=64 << 10,
        )
        b = BackendProcess(cfg).start()
        try:
            yield b, ks, d
        finally:
            b.stop()


def chain(ks, camera, site="s1") -> Chain:
    return Chain.of(ks[camera][0], camera, site)


def assert_refused(b, payload, status, reason):
    before = b.ledger_count()
    r = b.post(payload)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason, r.text
    assert b.ledger_count() == before
    return r


def assert_refused_any(b, payload):
    before = b.ledger_count()
    r = b.post(payload)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["status"] == "refused"
    assert b.ledger_count() == before
    return r


def cli(b, *args):
    return subprocess.run(
        detector_cmd("backend", *args, "--config", str(b.config)), capture_output=True, text=True, timeout=60
    )


def test_accept_duplicate_scores_and_grades(env):
    b, ks, _ = env
    c = chain(ks, "cam0")
    evs = [
        c.event("littering", "park", "bag", litter=1),
        c.event("littering", "park", "small", litter=2),
        c.event("cleanup", "park", "small", litter=1),  # gives back the bag's 30
        c.event("cleanup", "plaza", "bulky", litter=9),  # never counted: nothing to give back
    ]
    r = b.post(evs[0])
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted"
    z = b.zone("park").json()
    assert (z["score"], z["grade"], z["entries"]) == (970, "B", 1)
    r = b.post(evs[0])  # duplicate: acknowledged, nothing changes
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "duplicate"
    r = b.post(evs)  # batch with the duplicate first
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["duplicate"] + ["accepted"] * 3
    zones = b.zones()
    assert zones["park"]["total_points"] == -10 and zones["park"]["score"] == 990 and zones["park"]["grade"] == "A"
    assert zones["plaza"]["total_points"] == 0 and zones["plaza"]["score"] == 1000
    assert zones["park"]["outstanding_points"] == 10 and zones["park"]["outstanding_litter"] == 1
    detail = b.zone("park", limit=2).json()
    assert [e["points"] for e in detail["recent"]] == [30, -10]
    assert detail["recent"][0]["kind"] == "cleanup" and detail["entries"] == 3
    assert len(detail["history"]) == 30 and detail["history"][-1]["score"] == 990
    assert b.zone("nowhere").status_code == 404
    assert b.metric("detector_backend_events_total", result="duplicate") >= 2
    cams = {x["camera"]: x for x in b.client.get("/v1/sites/s1/cameras").json()["cameras"]}
    assert cams["cam0"]["last_seq"] == 4 and cams["cam0"]["chain"] == "ok" and cams["cam0"]["last_time"]


def test_cleanup_of_several_items_closes_each_littering(env):
    b, ks, _ = env
    c = chain(ks, "cam11")
    evs = [
        c.event("littering", "yard", "bag", litter=1),
        c.event("littering", "yard", "bag", litter=2),
        # One pick-up took both: the debits come back (30 + 30), whatever the severities say.
        c.event("cleanup", "yard", "small", litter=1, also=((2, "small"),)),
        # Litter 2 is closed: taking it again gives nothing (it is not lying there).
        c.event("cleanup", "yard", "small", litter=2),
    ]
    assert [x["status"] for x in b.post(evs).json()["results"]] == ["accepted"] * 4
    z = b.zone("yard").json()
    # one ledger entry per litter changed, newest first
    assert [(e["litter"], e["points"]) for e in z["recent"]] == [(2, 0), (2, 30), (1, 30), (2, -30), (1, -30)]
    assert (z["score"], z["outstanding_points"]) == (1000, 0)


def test_sites_are_never_merged(env):
    b, ks, _ = env
    # the same zone name at two sites: two ledgers, two scores
    cfg_keys = {"/sites/north/cameras/other": ks["other"][1], "/sites/south/cameras/south": ks["south"][1]}
    for source, pub in cfg_keys.items():
        r = cli(b, "keys", "add", source, str(pub))
        assert r.returncode == 0, r.stderr
    north = Chain.of(ks["other"][0], "other", "north")
    south = Chain.of(ks["south"][0], "south", "south")
    assert b.post(north.littering(2, "pavement", "bag")).status_code == 200
    assert b.post(south.littering(1, "pavement", "small")).status_code == 200
    n, s = b.zones("north")["pavement"], b.zones("south")["pavement"]
    assert (n["total_points"], s["total_points"]) == (-60, -10)
    assert {"north", "south"} <= set(b.client.get("/v1/sites").json()["sites"])
    both = [z for z in b.client.get("/v1/zones").json()["zones"] if z["zone"] == "pavement"]
    assert sorted((z["site"], z["total_points"]) for z in both) == [("north", -60), ("south", -10)]


def test_every_tampered_field_is_refused(env):
    b, ks, _ = env
    c = chain(ks, "cam1")
    first = c.event("littering", "t1", "bag")
    # the target is a clean-up of two items with evidence, so it carries every optional field
    target = c.event("cleanup", "t1", "bag", litter=0, also=((5, "small"),), evidence=b"jpeg")
    assert b.post(first).status_code == 200
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


def test_wrong_unknown_and_revoked_keys(env):
    b, ks, _ = env
    # signed by cam2's key but claiming to come from cam3
    forged = Chain(keys.load_private_key(ks["cam2"][0]), "s1", "cam3").event(zone="k")
    assert_refused(b, forged, 403, "key_mismatch")
    # a right keyid with a signature made by another key
    other = Chain(keys.load_private_key(ks["stranger"][0]), "s1", "cam3").event(zone="k")
    assert_refused(b, {**other, "keyid": ks["cam3"][2]}, 403, "bad_signature")
    assert_refused(b, chain(ks, "stranger").event(zone="k"), 403, "unknown_key")
    assert_refused(b, chain(ks, "revoked").event(zone="k"), 403, "revoked_key")
    assert b.metric("detector_backend_refused_total", reason="revoked_key") >= 1
    # the revoked camera's own signature: its chain shows as blocked, with what to do
    cams = {x["camera"]: x for x in b.client.get("/v1/sites/s1/cameras").json()["cameras"]}
    assert cams["revoked"]["chain"] == "blocked" and cams["revoked"]["blocked"]["reason"] == "revoked_key"
    assert any("keys add" in step for step in cams["revoked"]["blocked"]["recovery"])
    # nobody else can block a camera: cam3's chain was never touched by the forgeries
    assert "cam3" not in cams or cams["cam3"]["chain"] != "blocked"


def test_keys_without_restart(env):
    b, ks, _ = env
    c = chain(ks, "late")
    ev = c.event(zone="late")
    assert_refused(b, ev, 403, "unknown_key")
    r = cli(b, "keys", "add", c.source, str(ks["late"][1]))
    assert r.returncode == 0 and ks["late"][2] in r.stdout, r.stderr
    assert b.post(ev).status_code == 200  # the running backend sees the key at once
    listed = cli(b, "keys", "list")
    assert listed.returncode == 0 and ks["late"][2] in listed.stdout and ks["revoked"][2] in listed.stdout
    # the same key for another source is refused
    r = cli(b, "keys", "add", "/sites/s1/cameras/elsewhere", str(ks["late"][1]))
    assert r.returncode == 2 and "registered for" in r.stderr
    # over the API, by an admin
    new = keys.generate("api", b.config.parent / "apikeys")
    pub = keys.public_b64(keys.load_public_key(new[1]))
    r = b.client.post("/v1/keys", json={"source": "/sites/s1/cameras/api", "public_key": pub})
    assert r.status_code == 201 and r.json()["keyid"] == new[2]
    assert any(k["keyid"] == new[2] for k in b.client.get("/v1/keys").json()["keys"])


def test_revoke_takes_effect_at_once_and_blocks(env):
    b, ks, _ = env
    c = chain(ks, "cam4")
    evs = [c.event(zone="rv") for _ in range(2)]
    assert b.post(evs[0]).status_code == 200
    r = cli(b, "keys", "revoke", ks["cam4"][2], "--reason", "stolen")
    assert r.returncode == 0 and "revoked" in r.stdout, r.stderr
    assert_refused(b, evs[1], 403, "revoked_key")
    r = cli(b, "revoke", "nothex")
    assert r.returncode == 2 and "key id" in r.stderr
    assert "stolen" in cli(b, "keys", "list").stdout
    cam = {x["camera"]: x for x in b.client.get("/v1/sites/s1/cameras").json()["cameras"]}["cam4"]
    assert cam["chain"] == "blocked" and cam["last_seq"] == 1


def test_chain_rules_and_blocked_state(env):
    b, ks, _ = env
    c = chain(ks, "cam5")
    evs = [c.event(zone="ch") for _ in range(5)]
    assert_refused(b, evs[1], 409, "seq_gap")  # nothing accepted yet: seq 1 expected
    cam = {x["camera"]: x for x in b.client.get("/v1/sites/s1/cameras").json()["cameras"]}["cam5"]
    assert cam["chain"] == "blocked" and cam["blocked"]["reason"] == "seq_gap" and cam["blocked"]["recovery"]
    assert b.post(evs[0]).status_code == 200
    cam = {x["camera"]: x for x in b.client.get("/v1/sites/s1/cameras").json()["cameras"]}["cam5"]
    assert cam["chain"] == "ok" and cam["blocked"] is None  # the chain moved on
    assert_refused(b, evs[2], 409, "seq_gap")
    # reordered batch: refused at the first out-of-order event, the prefix stays applied
    r = b.post([evs[1], evs[3], evs[2]])
    assert r.status_code == 409 and r.json()["reason"] == "seq_gap"
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "refused", "not_processed"]
    assert r.json()["accepted"] == 1
    # a different event re-using an accepted seq (a fork of the chain)
    fork = Chain(c.key, "s1", "cam5", seq=2, prevhash=events.event_hash(evs[1])).event(zone="ch")
    assert fork["seq"] == 3 and fork["id"] != evs[2]["id"]
    assert b.post(evs[2]).status_code == 200
    assert_refused(b, fork, 409, "replayed_seq")
    # right seq, wrong prevhash (a chain forked from another history)
    fork4 = Chain(c.key, "s1", "cam5", seq=3, prevhash=events.event_hash(fork)).event(zone="ch")
    assert_refused(b, fork4, 409, "prevhash_mismatch")
    # same id as an accepted event, different content, validly signed by the right key
    other = resign(with_field(evs[2], "data.frame_index", 12345), c.key)
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
    ev = chain(ks, "cam6").event(zone="bt")
    for field, value in [("seq", "1"), ("data.box", "1,2,3,4"), ("data.points", -1.0), ("subject", 7), ("data", [])]:
        assert_refused(b, with_field(ev, field, value), 400, "schema")
    assert b.zone("x", limit="many").status_code == 422
    assert b.client.get("/healthz").status_code == 200
    assert b.post(ev).status_code == 200
    assert b.metric("detector_backend_refused_total", reason="too_large") >= 2


def test_operator_void(env):
    b, ks, d = env
    c = chain(ks, "cam7")
    evs = [c.event("littering", "vz", "bulky", litter=i) for i in range(2)]
    assert b.post(evs).status_code == 200
    assert b.zones()["vz"]["score"] == 800
    operator = add_user(b.config, "olga", "operator")
    viewer = add_user(b.config, "vic", "viewer")
    url = f"/v1/acts/{evs[0]['id']}/void"
    r = b.client.post(url, json={"reason": "a shadow"}, headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403 and b.zones()["vz"]["score"] == 800
    r = b.client.post(url, json={"reason": "a shadow, not a bag"}, headers={"Authorization": f"Bearer {operator}"})
    assert r.status_code == 200 and r.json()["status"] == "voided", r.text
    assert r.json()["void"]["by"] == "olga" and r.json()["void"]["points"] == 100
    z = b.zone("vz").json()
    assert z["score"] == 900 and z["entries"] == 3  # a compensating entry, nothing edited
    kinds = [(e["kind"], e["points"]) for e in z["recent"]]
    assert kinds == [("void", 100), ("littering", -100), ("littering", -100)]
    voided = next(e for e in z["recent"] if e["event_id"] == evs[0]["id"] and e["kind"] == "littering")
    assert voided["void"]["by"] == "olga" and voided["void"]["reason"] == "a shadow, not a bag"
    # idempotent: a second void changes nothing and returns the first
    r = b.client.post(url, json={"reason": "again"}, headers={"Authorization": f"Bearer {operator}"})
    assert r.json()["status"] == "already_voided" and r.json()["void"]["reason"] == "a shadow, not a bag"
    assert b.zones()["vz"]["score"] == 900
    # the voided litter is no longer outstanding: its clean-up gives nothing; the other's gives 100
    assert b.post(c.event("cleanup", "vz", "bulky", litter=0)).status_code == 200
    assert b.zones()["vz"]["score"] == 900
    assert b.post(c.event("cleanup", "vz", "bulky", litter=1)).status_code == 200
    assert b.zones()["vz"]["score"] == 1000
    # voiding that clean-up puts its litter back: it is still lying there
    last = b.zone("vz").json()["recent"][0]
    r = b.client.post(
        f"/v1/acts/{last['event_id']}/void",
        json={"reason": "passer-by"},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert r.json()["void"]["points"] == -100 and b.zones()["vz"]["score"] == 900
    assert b.client.post("/v1/acts/nope/void", json={"reason": "x"}).status_code == 404
    assert b.client.post(url, json={"reason": ""}).status_code == 422


def test_evidence_upload(env):
    b, ks, _ = env
    c = chain(ks, "cam8")
    sha = hashlib.sha256(JPEG).hexdigest()
    plain = {"content-type": "application/octet-stream"}
    # before any accepted event names it: not kept
    r = b.client.put(f"/v1/evidence/{sha}", content=JPEG, headers=plain)
    assert r.status_code == 404 and r.json()["reason"] == "not_named"
    assert b.post(c.event("littering", "ev", evidence=JPEG)).status_code == 200
    assert b.client.put(f"/v1/evidence/{sha}", content=JPEG[:-1], headers=plain).json()["reason"] == "hash_mismatch"
    big = b"\xff\xd8\xff" + b"\0" * (64 << 10)
    assert b.client.put(f"/v1/evidence/{hashlib.sha256(big).hexdigest()}", content=big).status_code == 413
    text = b"not an image"
    assert b.post(c.event("littering", "ev", evidence=text)).status_code == 200
    assert b.client.put(f"/v1/evidence/{hashlib.sha256(text).hexdigest()}", content=text).status_code == 415
    r = b.client.put(f"/v1/evidence/{sha}", content=JPEG, headers=plain)
    assert r.status_code == 201, r.text
    assert b.client.put(f"/v1/evidence/{sha}", content=JPEG, headers=plain).status_code == 200  # idempotent
    got = b.client.get(f"/v1/evidence/{sha}")
    assert got.status_code == 200 and got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    act = next(e for e in b.zone("ev").json()["recent"] if e["evidence_sha256"] == sha)
    assert act["kind"] == "littering"
    assert b.client.get(f"/v1/evidence/{sha}", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_camera_view(env):
    b, ks, _ = env
    priv = keys.load_private_key(ks["cam9"][0])
    frame = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    sha = hashlib.sha256(frame).hexdigest()
    view = make_view(
        priv, "s1", "cam9", sha, 640, 480, {"kerb": [(0, 300), (640, 300), (640, 480), (0, 480)]}, datetime.now(UTC)
    )
    bad = {**view, "width": 641}
    r = b.client.post("/v1/views", json=bad)
    assert r.status_code == 403 and r.json()["reason"] == "bad_signature"
    stranger = make_view(keys.load_private_key(ks["stranger"][0]), "s1", "cam9", sha, 640, 480, {}, datetime.now(UTC))
    assert b.client.post("/v1/views", json=stranger).json()["reason"] == "unknown_key"
    assert b.client.post("/v1/views", json=view).status_code == 200
    assert b.client.put(f"/v1/evidence/{sha}", content=frame).status_code == 201  # named by the view
    views = b.client.get("/v1/sites/s1/views").json()["views"]
    v = next(v for v in views if v["source"].endswith("/cam9"))
    assert v["frame_sha256"] == sha and v["zones"][0]["id"] == "kerb" and (v["width"], v["height"]) == (640, 480)


def test_users_add_prints_the_key_once(env):
    b, _, _ = env
    r = cli(b, "users", "add", "nina", "--role", "viewer")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("dk_") and len(key) > 40 and " " not in key
    assert b.client.get("/v1/sites", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert "nina" in cli(b, "users", "list").stdout and key not in cli(b, "users", "list").stdout
    assert cli(b, "users", "add", "nina", "--role", "viewer").returncode == 2
    assert cli(b, "users", "add", "bad name", "--role", "viewer").returncode == 2
    r = cli(b, "users", "disable", "nina")
    assert r.returncode == 0
    assert b.client.get("/v1/sites", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_config_errors_are_one_line(tmp_path):
    cfg = tmp_path / "b.yaml"
    for text, expect in [
        ("keys:\n  /sites/a/cameras/b: missing.pub\n", "missing.pub"),
        ("scoring:\n  grades: {A: 1, B: 2, C: 3}\n", "scoring.grades"),
        ("listen: {hots: x}\n", "listen.hots: unknown key"),
        ("listen: {tls_cert: c.pem}\n", "tls_cert and tls_key go together"),
        ("listen: {tls_cert: c.pem, tls_key: k.pem}\n", "c.pem not found"),
        ("db: postgresql://nobody@127.0.0.1:1/none\n", "cannot open ledger database"),
    ]:
        cfg.write_text(text)
        r = subprocess.run(
            detector_cmd("backend", "serve", "--config", str(cfg)), capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and expect in r.stderr, (text, r.stderr)


def test_serve_says_when_nothing_is_configured(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("db: ledger.sqlite3\n")
    b = BackendProcess(cfg, api_key="none")
    b.proc = subprocess.Popen(  # (no key: nothing to read)
        detector_cmd("backend", "serve", "--config", str(cfg), "--port", str(b.port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [b.proc.stdout.readline() for _ in range(3)]
    finally:
        b.stop()
    text = "".join(lines)
    assert "no camera keys registered" in text and "keys add" in text, text
    assert "no users" in text and "users add" in text, text


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


@pytest.mark.parametrize("kind", DB_KINDS)
def test_expired_evidence_is_deleted_and_not_taken_again(kind, tmp_path):
    """Snapshots are evidence for reviewing an act, kept as long as the edge keeps them
    (evidence_retention_days), not an archive; each camera's latest reference frame stays."""
    ks = make_keys(tmp_path, "cam")
    with scratch_database(kind, tmp_path) as db:
        cfg = write_config(
            tmp_path / "backend.yaml",
            {"cam": ks["cam"][1]},
            db=db,
            evidence_retention_days=3 / 86400,
            evidence_purge_interval_s=0.2,
        )
        b = BackendProcess(cfg).start()
        try:
            c = Chain.of(ks["cam"][0], "cam")
            old_frame, new_frame = (b"\x89PNG\r\n\x1a\n" + bytes([k]) * 100 for k in (1, 2))
            for frame in (old_frame, new_frame):
                sha = hashlib.sha256(frame).hexdigest()
                view = make_view(keys.load_private_key(ks["cam"][0]), "s1", "cam", sha, 64, 48, {}, datetime.now(UTC))
                assert b.client.post("/v1/views", json=view).status_code == 200
                assert b.client.put(f"/v1/evidence/{sha}", content=frame).status_code == 201
            snap = JPEG + b"act"
            snap_sha = hashlib.sha256(snap).hexdigest()
            assert b.post(c.event("littering", "kerb", evidence=snap)).status_code == 200
            assert b.client.put(f"/v1/evidence/{snap_sha}", content=snap).status_code == 201

            def status(blob: bytes) -> int:
                return b.client.get(f"/v1/evidence/{hashlib.sha256(blob).hexdigest()}").status_code

            assert status(snap) == 200
            assert wait_until(lambda: status(snap) == 404 and status(old_frame) == 404, timeout=15)
            assert status(new_frame) == 200  # the zone map is drawn on the latest frame
            # the act that named it is older than the retention now: its snapshot is not taken again
            r = b.client.put(f"/v1/evidence/{snap_sha}", content=snap)
            assert r.status_code == 404 and r.json()["reason"] == "not_named"
        finally:
            b.stop()
