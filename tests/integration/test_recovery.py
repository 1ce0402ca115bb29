"""No silent loss and a way out of a blocked chain, end to end with real backend processes,
the real `detector outbox` and `detector backend` commands and real files (issue 15)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import pytest
import yaml
from helpers import (
    ENV,
    BackendProcess,
    act,
    detector_cmd,
    free_port,
    make_keys,
    running_backend,
    source_of,
    write_config,
)

from detector.outbox import ChainBehind, Outbox, Sender, head_file_for
from detector.protocol import keys
from detector.signer import EventSigner
from detector.sinks.http import HttpSink

CAM = "gate"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(detector_cmd(*args), capture_output=True, text=True, timeout=timeout, env=ENV)


def outbox_for(tmp_path, key_path, camera=CAM) -> Outbox:
    """An outbox as the live worker opens it: its signer and the chain head kept beside the key."""
    return Outbox(
        tmp_path / f"{camera}.db",
        EventSigner(keys.load_private_key(key_path), "s1", camera),
        head_file_for(key_path),
    )


def fill(ob: Outbox, start: int, n: int) -> None:
    for i in range(start, start + n):
        ob.add(act(i, CAM, "z1", "littering", "small", litter=i))


def send_once(db, url, *extra) -> subprocess.CompletedProcess:
    return run("outbox", "send", "--db", str(db), "--url", url, "--once", "--max-backoff", "0.2", *extra)


def sources(b: BackendProcess) -> dict:
    return {s["source"]: s for s in b.client.get("/v1/sources").json()["sources"]}


def test_unknown_key_blocks_then_register_and_retry(tmp_path):
    ks = make_keys(tmp_path, CAM, "other")
    cfg = write_config(tmp_path / "backend.yaml", {"other": ks["other"][1]})  # gate's key not registered
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 5)
    db = ob.path
    with running_backend(cfg) as b:
        r = send_once(db, b.url)
        # refused for good: the sender stops at once (no retry loop), exit 3, and says why
        assert r.returncode == 3, r.stdout + r.stderr
        assert "BLOCKED" in r.stdout and "unknown_key" in r.stdout and "register" in r.stdout
        st = run("outbox", "status", "--db", str(db))
        assert st.returncode == 3 and "5 pending" in st.stdout and "unknown_key" in st.stdout, st.stdout
        assert b.ledger_count() == 0
    # the operator registers the key (and restarts the backend): still blocked until told to retry
    write_config(cfg, {"other": ks["other"][1], CAM: ks[CAM][1]})
    with running_backend(cfg) as b:
        assert send_once(db, b.url).returncode == 3
        assert b.ledger_count() == 0
        r = run("outbox", "retry", "--db", str(db), "--note", "key registered")
        assert r.returncode == 0 and "unblocked" in r.stdout, r.stderr
        r = send_once(db, b.url)
        assert r.returncode == 0, r.stdout + r.stderr
        assert b.ledger_count() == 5 and ob.counts() == (5, 0)
    st = run("outbox", "status", "--db", str(db))
    assert st.returncode == 0 and "retry" in st.stdout and "key registered" in st.stdout  # the journal


def test_revoked_key_resign_under_a_new_key_with_an_audited_link(tmp_path):
    ks = make_keys(tmp_path, CAM)
    new_key, new_pub, new_kid = keys.generate("gate-2", tmp_path)
    cfg = write_config(tmp_path / "backend.yaml", {CAM: ks[CAM][1]})
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 3)
    with running_backend(cfg) as b:
        assert send_once(ob.path, b.url).returncode == 0
        assert run("backend", "revoke", ks[CAM][2], "--config", str(cfg), "--reason", "stolen").returncode == 0
        fill(ob, 3, 3)
        r = send_once(ob.path, b.url)
        assert r.returncode == 3 and "revoked_key" in r.stdout, r.stdout
    # the new key is registered for the camera; the pending events are re-signed under it
    yaml_cfg = yaml.safe_load(cfg.read_text())
    yaml_cfg["keys"][source_of(CAM)] = [str(ks[CAM][1]), str(new_pub)]
    cfg.write_text(yaml.safe_dump(yaml_cfg))
    r = run("outbox", "resign", "--db", str(ob.path), "--key", str(new_key), "--reason", "key stolen, rotated")
    assert r.returncode == 0 and "3 undelivered events re-signed" in r.stdout, r.stderr
    with running_backend(cfg) as b:
        r = send_once(ob.path, b.url)
        assert r.returncode == 0, r.stdout + r.stderr
        assert b.ledger_count() == 6
        # the backend keeps the link: seq 4 is the first under the new key, after the old one
        src = sources(b)[source_of(CAM)]
        assert src["seq"] == 6 and src["keyid"] == new_kid
        assert [(c["seq"], c["old_keyid"], c["new_keyid"]) for c in src["key_changes"]] == [(4, ks[CAM][2], new_kid)]
    # the edge keeps it too, and the re-signed events still chain onto the delivered ones
    st = run("outbox", "status", "--db", str(ob.path))
    assert "resign" in st.stdout and f"to {new_kid}" in st.stdout and "key stolen" in st.stdout
    bodies = [p for p in sqlite3.connect(ob.path).execute("SELECT body FROM events ORDER BY seq")]
    assert [json.loads(x[0])["keyid"] for x in bodies] == [ks[CAM][2]] * 3 + [new_kid] * 3
    # the worker signs the next act with the new key, continuing the re-signed chain
    ob2 = Outbox(ob.path, EventSigner(keys.load_private_key(new_key), "s1", CAM), head_file_for(ks[CAM][0]))
    fill(ob2, 6, 1)
    with running_backend(cfg) as b:
        assert send_once(ob.path, b.url).returncode == 0 and b.ledger_count() == 7


def test_lost_outbox_is_refused_then_adopt_head_and_backend_accepts_the_gap(tmp_path):
    ks = make_keys(tmp_path, CAM)
    cfg = write_config(tmp_path / "backend.yaml", {CAM: ks[CAM][1]})
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 10)
    db = ob.path
    with running_backend(cfg) as b:
        s = Sender(ob, HttpSink(b.url), batch_size=6)
        assert s.run_once() == 6  # 6 delivered, 4 pending, then the file is lost
        ob.close()
        os.truncate(db, 0)
        # the case: status said "0 pending" and send "delivered 0" with exit 0
        for cmd in (
            ["outbox", "status", "--db", str(db)],
            ["outbox", "send", "--db", str(db), "--url", b.url, "--once"],
        ):
            r = run(*cmd)
            assert r.returncode == 2 and "empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        # the worker opening it (with its signer) refuses to start a new chain
        with pytest.raises(ChainBehind, match="behind its chain head"):
            outbox_for(tmp_path, ks[CAM][0])
        db.unlink()  # vanished altogether: the same
        with pytest.raises(ChainBehind, match="seq 0 < 10"):
            outbox_for(tmp_path, ks[CAM][0])
        r = run("outbox", "status", "--db", str(db))
        assert r.returncode == 3 and "BEHIND" in r.stdout, r.stdout + r.stderr
        # way out on the edge: continue after the kept head (the 4 undelivered events are gone)
        r = run("outbox", "adopt-head", "--db", str(db), "--reason", "disk replaced")
        assert r.returncode == 0 and "after seq 10" in r.stdout, r.stderr
        ob = outbox_for(tmp_path, ks[CAM][0])
        fill(ob, 10, 2)  # seq 11, 12, linked to the kept head
        r = send_once(db, b.url)
        assert r.returncode == 3 and "seq_gap" in r.stdout and "accept-gap" in r.stdout, r.stdout
        # way out on the backend: an audited gap, effective at once on the running backend
        r = run("backend", "accept-gap", source_of(CAM), "--config", str(cfg), "--reason", "gate outbox lost 7..10")
        assert r.returncode == 0 and "gap accepted" in r.stdout, r.stderr
        assert run("outbox", "retry", "--db", str(db)).returncode == 0
        r = send_once(db, b.url)
        assert r.returncode == 0, r.stdout + r.stderr
        assert b.ledger_count() == 8
        gaps = sources(b)[source_of(CAM)]["gaps"]
        assert [(g["head_seq"], g["used_seq"], g["reason"]) for g in gaps] == [(6, 11, "gate outbox lost 7..10")]
        # a gap is used once: a later break is refused again
        from detector.signer import ChainState, sign_acts

        jump = next(sign_acts([act(50, CAM)], ks[CAM][0], "s1", CAM, state=ChainState(29, "0" * 64)))
        r = b.post(jump)
        assert (r.status_code, r.json()["reason"]) == (409, "seq_gap"), r.text


def test_a_chain_restarted_at_seq_1_adopts_the_backends_head(tmp_path):
    """Key kept, outbox and head file both lost: the edge starts at seq 1, the backend says where
    it is (replayed_seq), the edge continues after it and the backend accepts the broken link."""
    ks = make_keys(tmp_path, CAM)
    cfg = write_config(tmp_path / "backend.yaml", {CAM: ks[CAM][1]})
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 4)
    with running_backend(cfg) as b:
        assert send_once(ob.path, b.url).returncode == 0
        ob.close()
        ob.path.unlink()
        head_file_for(ks[CAM][0]).unlink()
        ob = outbox_for(tmp_path, ks[CAM][0])
        fill(ob, 4, 1)
        r = send_once(ob.path, b.url)
        assert r.returncode == 3 and "replayed_seq" in r.stdout and "head is 4" in r.stdout, r.stdout
        ob.close()
        # the event numbered 1 can never be accepted: abandon it (kept, marked, journalled)
        r = run("outbox", "skip", "--db", str(ob.path), "--through", "1", "--reason", "signed on a restarted chain")
        assert r.returncode == 0 and "1 undelivered events abandoned" in r.stdout, r.stderr
        r = run("outbox", "adopt-head", "--db", str(ob.path), "--after-seq", "4", "--reason", "all state lost")
        assert r.returncode == 0, r.stderr
        ob = outbox_for(tmp_path, ks[CAM][0])
        fill(ob, 5, 1)  # seq 5 with a prevhash the backend cannot match
        r = send_once(ob.path, b.url)
        assert r.returncode == 3 and "prevhash_mismatch" in r.stdout, r.stdout
        assert run("backend", "accept-gap", source_of(CAM), "--config", str(cfg), "--reason", "x").returncode == 0
        assert run("outbox", "retry", "--db", str(ob.path)).returncode == 0
        r = send_once(ob.path, b.url)
        assert r.returncode == 0 and b.ledger_count() == 5, r.stdout + r.stderr
        st = run("outbox", "status", "--db", str(ob.path)).stdout
        assert "skip" in st and "adopt-head" in st and "0 pending" in st


def test_send_once_exits_non_zero_when_the_backend_cannot_be_reached(tmp_path):
    ks = make_keys(tmp_path, CAM)
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 2)
    r = send_once(ob.path, f"http://127.0.0.1:{free_port()}", "--attempts", "3")
    assert r.returncode == 1 and "not reached" in r.stdout and "2 pending" in r.stdout, r.stdout + r.stderr
    missing = tmp_path / "nope" / "gate.db"
    r = send_once(missing, "http://127.0.0.1:9")
    assert r.returncode == 2 and "no such file" in r.stderr and not missing.exists()
    assert not missing.parent.exists()


def _serve_fails(cfg) -> str:
    r = run("backend", "serve", "--config", str(cfg), "--port", str(free_port()), timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_backend_refuses_a_lost_or_damaged_ledger(tmp_path):
    ks = make_keys(tmp_path, CAM)
    cfg = write_config(tmp_path / "backend.yaml", {CAM: ks[CAM][1]})
    ledger = tmp_path / "ledger.sqlite3"
    ob = outbox_for(tmp_path, ks[CAM][0])
    fill(ob, 0, 300)
    with running_backend(cfg) as b:
        assert send_once(ob.path, b.url).returncode == 0 and b.ledger_count() == 300
    good = ledger.read_bytes()
    # 8 KiB of random bytes in the middle: was served, /v1/zones gave 500
    damaged = bytearray(good)
    mid = len(damaged) // 2
    damaged[mid : mid + 8192] = os.urandom(8192)
    ledger.write_bytes(bytes(damaged))
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"ledger.sqlite3{suffix}").unlink(missing_ok=True)
    err = _serve_fails(cfg)
    assert "ledger database is damaged" in err or "cannot open ledger database" in err, err
    # truncated to 0 bytes: was served as an empty ledger with /healthz ok
    os.truncate(ledger, 0)
    err = _serve_fails(cfg)
    assert "behind what cameras already delivered" in err and f"{source_of(CAM)} reached seq 300" in err
    # a ledger of the old, unversioned schema
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as c:
        c.execute("CREATE TABLE ledger (entry INTEGER PRIMARY KEY, zone TEXT, points INTEGER)")
    cfg_old = write_config(tmp_path / "old.yaml", {CAM: ks[CAM][1]}, db="old.sqlite3")
    assert "schema 1" in _serve_fails(cfg_old)
    # the way out for the lost ledger: accept the gap (audited); the camera's next event continues
    r = run("backend", "accept-gap", "--all-behind", "--config", str(cfg), "--reason", "ledger disk died")
    assert r.returncode == 0 and source_of(CAM) in r.stdout, r.stderr
    with running_backend(cfg) as b:
        fill(ob, 300, 2)
        assert send_once(ob.path, b.url).returncode == 0
        assert b.ledger_count() == 2
        assert sources(b)[source_of(CAM)]["gaps"][0]["used_seq"] == 301


def test_refusals_of_times_and_unicode_are_4xx(tmp_path):
    from datetime import UTC, datetime, timedelta

    from detector.signer import ChainState, sign_acts

    ks = make_keys(tmp_path, CAM)
    cfg = write_config(tmp_path / "backend.yaml", {CAM: ks[CAM][1]}, clock={"max_ahead_s": 60})
    with running_backend(cfg) as b:
        r = b.post(content=b'[{"id":"\\ud800"}]')
        assert (r.status_code, r.json()["reason"]) == (400, "malformed"), r.text
        # year 9999, validly signed (its id carries the same time)
        far = next(sign_acts([act(0, CAM)], ks[CAM][0], "s1", CAM, clip_start=datetime(9999, 1, 1, tzinfo=UTC)))
        r = b.post(far)
        assert (r.status_code, r.json()["reason"]) == (422, "time_ahead"), r.text
        # an id whose timestamp differs from `time`
        now = datetime.now(UTC)
        e1 = next(sign_acts([act(0, CAM)], ks[CAM][0], "s1", CAM, clip_start=now - timedelta(hours=1)))
        forged = dict(e1, time="2020-01-01T00:00:00.000Z")
        assert b.post(forged).json()["reason"] == "schema"
        # times running backwards within a chain
        assert b.post(e1).status_code == 200
        from detector.protocol.events import event_hash

        back = next(
            sign_acts(
                [act(1, CAM)],
                ks[CAM][0],
                "s1",
                CAM,
                clip_start=now - timedelta(hours=2),
                state=ChainState(1, event_hash(e1)),
            )
        )
        r = b.post(back)
        assert (r.status_code, r.json()["reason"]) == (409, "time_backwards"), r.text
        assert b.client.get("/healthz").status_code == 200


def test_site_health_and_metrics_show_a_blocked_chain(tmp_path):
    """The live worker's sender meets a permanent refusal: it stops sending that chain, and the
    site's /healthz and /metrics (served by the supervisor from the worker's stats) say why."""
    import httpx
    import numpy as np
    from helpers import wait_until

    from detector.config.site import validate_site
    from detector.metrics import SiteMetrics, serve
    from detector.values import Frame
    from detector.worker import CameraWorker

    ks = make_keys(tmp_path, "other")
    cfg = write_config(tmp_path / "backend.yaml", {"other": ks["other"][1]})  # the camera's key is not registered
    with running_backend(cfg) as b:
        site = validate_site(
            {
                "site": "s1",
                "cameras": [{"name": CAM, "url": str(tmp_path / "unused.mp4")}],
                "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
                "delivery": {"url": b.url, "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
            },
            "test",
        )
        worker = CameraWorker(site, site.cameras[0])
        worker._open_outbox()  # makes the camera's key on first run, as a new site does
        frame = Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8))
        try:
            worker._emit(act(0, CAM, CAM), None, frame)
            worker._emit(act(1, CAM, CAM), None, frame)
            assert wait_until(lambda: worker.sender.blocked is not None, timeout=30)
            calls = b.metric("detector_backend_refused_total", reason="unknown_key")
            stats = worker.sync_stats()
            assert stats.delivery_blocked.startswith("unknown_key at seq 1") and stats.outbox_depth == 2
            metrics = SiteMetrics("s1", [CAM])
            metrics.update(stats)
            server = serve(metrics, "127.0.0.1", 0)
            try:
                url = f"http://127.0.0.1:{server.server_address[1]}"
                h = httpx.get(f"{url}/healthz")
                assert h.status_code == 503 and h.json()["blocked"] == [CAM], h.text
                assert "unknown_key" in h.json()["cameras"][CAM]["delivery_blocked"]
                assert f'detector_delivery_blocked{{camera="{CAM}",site="s1"}} 1.0' in httpx.get(f"{url}/metrics").text
            finally:
                server.shutdown()
            # stopped, not retried: the backend sees no more attempts
            import time

            time.sleep(1.0)
            assert b.metric("detector_backend_refused_total", reason="unknown_key") == calls
        finally:
            worker._close_outbox(flush_s=0.5)
