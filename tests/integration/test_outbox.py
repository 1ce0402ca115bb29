"""Outbox and sender with real processes: backend down, sender killed, restarts."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
from helpers import (
    ENV,
    POINTS,
    SEVERITIES,
    BackendProcess,
    act,
    detector_cmd,
    make_keys,
    running_backend,
    wait_until,
    write_config,
)

from detector.outbox import Outbox, Sender
from detector.protocol import keys
from detector.protocol.errors import UserError
from detector.signer import EventSigner
from detector.sinks import DeliveryResult
from detector.sinks.http import HttpSink

N = 500


def workload(camera: str, n: int = N):
    """n acts over three zones: littering of every severity, some clean-ups of earlier litter,
    some clean-ups of litter never counted (nothing to give back). Returns acts and the
    expected total per zone."""
    acts, totals, debit = [], {}, {}
    for i in range(n):
        zone = f"{camera}-z{i % 3}"
        if i % 7 == 6:  # clean-up of the littering 3 acts earlier (same zone), any severity
            a = act(i, camera, f"{camera}-z{(i - 3) % 3}", "cleanup", "small", litter=i - 3)
            pts = debit.pop(i - 3, 0)
        elif i % 11 == 10:  # litter never counted
            a = act(i, camera, zone, "cleanup", "bulky", litter=100_000 + i)
            pts = 0
        else:
            sev = SEVERITIES[i % 3]
            a = act(i, camera, zone, "littering", sev, litter=i)
            debit[i] = POINTS[sev]
            pts = -POINTS[sev]
        acts.append(a)
        totals[a.zone] = totals.get(a.zone, 0) + pts
    return acts, totals


@pytest.fixture()
def setup(tmp_path):
    ks = make_keys(tmp_path, "edge1", "edge2")
    cfg = write_config(tmp_path / "backend.yaml", {c: ks[c][1] for c in ks})
    return tmp_path, ks, cfg


def fill(db, key_path, camera, acts) -> Outbox:
    ob = Outbox(db, EventSigner(keys.load_private_key(key_path), "s1", camera))
    for a in acts:
        ob.add(a)
    return ob


def sender_proc(db, url, *extra):
    return subprocess.Popen(
        detector_cmd("outbox", "send", "--db", str(db), "--url", url, "--max-backoff", "0.5", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )


def assert_totals(b: BackendProcess, totals: dict[str, int], n: int):
    zones = b.zones()
    for zone, total in totals.items():
        assert zones[zone]["total_points"] == total, zone
        assert zones[zone]["score"] == max(0, 1000 + total)
    assert sum(zones[z]["entries"] for z in totals) == n


def test_backend_down_then_started(setup):
    d, ks, cfg = setup
    b = BackendProcess(cfg)  # not started yet: its port refuses connections
    db = d / "outbox.sqlite3"
    acts, totals = workload("edge1")
    ob = Outbox(db, EventSigner(keys.load_private_key(ks["edge1"][0]), "s1", "edge1"))
    sender = sender_proc(db, b.url, "--batch", "50")
    try:
        for a in acts:
            ob.add(a)
        time.sleep(1.0)
        assert sender.poll() is None  # still retrying
        assert ob.counts() == (N, N)
        b.start()
        assert wait_until(lambda: b.ledger_count() == N, timeout=60)
        assert wait_until(lambda: ob.counts() == (N, 0), timeout=30)
        time.sleep(0.5)
        assert b.ledger_count() == N
        assert_totals(b, totals, N)
        assert b.metric("detector_backend_events_total", result="accepted") == N
    finally:
        sender.kill()
        sender.wait()
        b.stop()


def test_sender_sigkill_mid_delivery_and_restart(setup):
    d, ks, cfg = setup
    db = d / "outbox.sqlite3"
    acts, totals = workload("edge2")
    ob = fill(db, ks["edge2"][0], "edge2", acts)
    with_b = BackendProcess(cfg).start()
    try:
        first = sender_proc(db, with_b.url, "--batch", "3")
        assert wait_until(lambda: with_b.ledger_count() >= 60, timeout=60, interval=0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        applied = with_b.ledger_count()
        assert 0 < applied < N  # killed mid-way
        _, pending = ob.counts()
        assert pending >= N - applied  # marks never run ahead of the backend's acknowledgements
        second = sender_proc(db, with_b.url, "--batch", "25", "--once")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert ob.counts() == (N, 0)
        st = subprocess.run(detector_cmd("outbox", "status", "--db", str(db)), capture_output=True, text=True)
        assert st.returncode == 0 and f"{N} events kept, 0 pending" in st.stdout
        assert with_b.ledger_count() == N
        assert_totals(with_b, totals, N)
        accepted = with_b.metric("detector_backend_events_total", result="accepted")
        assert accepted == N  # nothing twice; re-sent events were duplicates
    finally:
        with_b.stop()


def test_restart_continues_the_chain(setup):
    d, ks, cfg = setup
    db = d / "outbox.sqlite3"
    acts, totals = workload("edge1", 20)
    fill(db, ks["edge1"][0], "edge1", acts[:10]).close()
    ob = fill(db, ks["edge1"][0], "edge1", acts[10:])  # a new process would do the same
    seqs = [p.event["seq"] for p in ob.pending(100)]
    assert seqs == list(range(1, 21))
    with running_backend(cfg) as b:
        sender = Sender(ob, HttpSink(b.url), batch_size=7)
        assert sender.run(until_empty=True) == 20
        assert_totals(b, totals, 20)


class FlakySink:
    """Acknowledges part of each batch, fails every other call."""

    def __init__(self):
        self.calls, self.seen = 0, []

    def deliver(self, events):
        self.calls += 1
        if self.calls % 2:
            return DeliveryResult(0, "down")
        take = events[:2]
        self.seen += [e["seq"] for e in take]
        return DeliveryResult(len(take), None if len(take) == len(events) else "partial")

    def close(self):
        pass


def test_sender_in_order_backoff_and_partial_acks(tmp_path):
    key_path, _, _ = keys.generate("c", tmp_path)
    ob = fill(tmp_path / "o.sqlite3", key_path, "c", [act(i, "c") for i in range(9)])
    waits = []
    s = Sender(
        ob, FlakySink(), batch_size=5, backoff_initial_s=1, backoff_max_s=8, sleep=waits.append, rng=random.Random(0)
    )
    s.run(until_empty=True)
    assert s.sink.seen == list(range(1, 10))
    assert ob.counts() == (9, 0)
    assert waits and all(0 <= w <= 8 for w in waits)
    # the bound grows exponentially with consecutive failures and is capped
    for failures, bound in [(0, 1), (1, 2), (2, 4), (3, 8), (10, 8)]:
        s.failures = failures
        draws = [s.backoff_s() for _ in range(200)]
        assert bound / 2 < max(draws) <= bound, failures


def test_unusable_outbox_path_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot open outbox database"):
        Outbox(tmp_path / "file" / "o.sqlite3")
    r = subprocess.run(
        detector_cmd(
            "outbox", "send", "--db", str(tmp_path / "file" / "o.sqlite3"), "--url", "http://127.0.0.1:9", "--once"
        ),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_failed_add_leaves_outbox_and_chain_unchanged(tmp_path):
    key_path, _, _ = keys.generate("c", tmp_path)
    ob = fill(tmp_path / "o.sqlite3", key_path, "c", [act(0, "c")])
    with pytest.raises(ValueError):
        ob.add(act(1, "c", zone="bad zone"))
    ob.add(act(2, "c"))
    assert [p.event["seq"] for p in ob.pending()] == [1, 2]
    assert ob.chain_state("/sites/s1/cameras/c").seq == 2


def test_a_restarted_camera_does_not_take_its_new_litter_for_the_old(setup):
    """The recogniser numbers litter from 1 again after a restart; the chain must not: the new
    litter 1 is debited on its own, and its clean-up gives back its own points in its own zone,
    not the bag still lying in the first run's zone."""
    d, ks, cfg = setup
    db = d / "outbox.sqlite3"
    fill(db, ks["edge1"][0], "edge1", [act(0, "edge1", "A", "littering", "bag", litter=1)]).close()
    ob = fill(
        db,
        ks["edge1"][0],
        "edge1",
        [act(1, "edge1", "B", "littering", "small", litter=1), act(2, "edge1", "B", "cleanup", "small", litter=1)],
    )
    with running_backend(cfg) as b:
        assert Sender(ob, HttpSink(b.url)).run(until_empty=True) == 3
        zones = b.zones()
        assert (zones["A"]["score"], zones["A"]["outstanding_litter"]) == (970, 1)
        assert (zones["B"]["score"], zones["B"]["outstanding_litter"]) == (1000, 0)
