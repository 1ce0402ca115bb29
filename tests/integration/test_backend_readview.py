"""The PostgreSQL read view (`detector.backend.readview`): a process answers a site's zones and
API keys from memory, and must never answer older than its bound, with other processes
writing to the same database. Real PostgreSQL on 127.0.0.1:5432 (a scratch database per test)
and real `detector backend serve` processes.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from helpers import SITE, BackendProcess, Chain, add_user, make_keys, scratch_database, wait_until, write_config

from detector.backend import auth
from detector.backend.readview import MAX_AGE_S, ReadView
from detector.backend.store import User, open_store


def test_a_process_reads_what_another_committed(tmp_path):
    ks = make_keys(tmp_path, "a", "b")
    with scratch_database("postgresql", tmp_path) as db:
        cfg = write_config(tmp_path / "backend.yaml", {c: ks[c][1] for c in ks}, db=db)
        key = add_user(cfg, "reader", "viewer")
        one, two = BackendProcess(cfg, api_key=key).start(), BackendProcess(cfg, api_key=key).start()
        try:
            a, b = Chain.of(ks["a"][0], "a"), Chain.of(ks["b"][0], "b")
            for round_ in range(5):
                # a process reads its own writes at once (no waiting for its notification)
                assert one.post(a.littering(2, "kerb", first_litter=2 * round_)).status_code == 200
                assert one.zones()["kerb"]["total_points"] == -20 * (round_ + 1)
                # what the other process committed shows within the bound (in practice at once)
                assert two.post(b.littering(1, "bench", "bag", first_litter=round_)).status_code == 200
                want = -30 * (round_ + 1)
                got = wait_until(lambda w=want: one.zones().get("bench", {}).get("total_points") == w, MAX_AGE_S + 1)
                assert got, one.zones()
                assert two.zones()["kerb"]["total_points"] == -20 * (round_ + 1)
            store = open_store(db)
            try:
                expected = {z.zone: z.total for z in store.zones(SITE)}
            finally:
                store.close()
            for p in (one, two):
                assert {z: v["total_points"] for z, v in p.zones().items()} == expected
            # the viewer's key is cached by now: its role still holds, and a wrong key is refused
            r = one.client.post("/v1/acts/nope/void", json={"reason": "test"})
            assert r.status_code == 403 and r.json()["reason"] == "forbidden"
            r = one.client.get(f"/v1/sites/{SITE}/zones", headers={"Authorization": "Bearer dk_wrong"})
            assert r.status_code == 401 and "zones" not in r.text
        finally:
            one.stop()
            two.stop()


@pytest.fixture
def pg(tmp_path):
    with scratch_database("postgresql", tmp_path) as db:
        store = open_store(db)
        try:
            with store._write() as cur:
                cur.execute(
                    "INSERT INTO zone_totals (site, zone, total, entries, outstanding, last_time)"
                    " VALUES ('s', 'kerb', -10, 1, 1, '2026-11-29T10:00:00.000Z'),"
                    " ('s', 'idle', 0, 0, 0, NULL), ('t', 'bench', -30, 1, 1, '2026-11-29T10:00:00.000Z')"
                )
            yield db, store
        finally:
            store.close()


def test_a_missed_notification_is_never_served_past_the_bound(pg):
    """A change to the totals that sends no notification (as if it were lost) is still in the
    view's answers once the bound has passed, and none of them is older."""
    db, store = pg
    view = ReadView(db, max_age_s=1.0).start()
    try:
        first = view.zones("s")
        assert [(z.zone, z.total) for z in first] == [("kerb", -10)]  # a zone without entries is not listed
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE zone_totals SET total = -40, entries = 2 WHERE site = 's' AND zone = 'kerb'")
        changed = time.monotonic()
        served_new = False
        while time.monotonic() - changed < 3.0:
            got = view.zones("s")
            now = time.monotonic()
            if got is not None:
                total = got[0].total
                assert total in (-10, -40)
                if now - changed > view.max_age_s:
                    assert total == -40, f"served a total {now - changed:.2f} s old"
                served_new = served_new or total == -40
            time.sleep(0.01)
        assert served_new  # and from memory, not only by falling back to the database
        still = view.zones("s")  # the view keeps answering: its rows are read again in time
        assert still is not None and still[0].total == -40
    finally:
        view.close()


def test_own_commits_are_read_at_once(pg):
    db, store = pg
    view = ReadView(db).start()
    try:
        assert view.zones("t")[0].total == -30
        with psycopg.connect(db, autocommit=True) as conn:
            # a commit of this process, its notification not delivered yet: its rows are
            # answered at once, and a later one that arrives first is not undone
            conn.execute("UPDATE zone_totals SET total = -90, entries = 3 WHERE site = 't'")
            view.committed([("t", "bench", -90, 3, 3, "2026-11-29T10:02:00.000Z")])
            view.committed([("t", "bench", -60, 2, 2, "2026-11-29T10:01:00.000Z")])
            assert view.zones("t")[0].total == -90
            # the listener reads the zone again: what the database holds stays
            assert not wait_until(lambda: view.zones("t")[0].total != -90, 1.0)
            conn.execute("UPDATE zone_totals SET total = -100, entries = 4 WHERE site = 't'")
            view.committed([("t", "bench", -100, 4, 4, "2026-11-29T10:03:00.000Z")])
            assert view.zones("t")[0].total == -100
        assert view.zones("s")[0].total == -10  # other sites untouched
    finally:
        view.close()


def test_a_disabled_user_leaves_the_cache(pg):
    db, store = pg
    key = auth.add_user(store, "ann", "viewer")
    h = auth.key_hash(key)
    view = ReadView(db).start()
    try:
        gen, read_at = view.users_gen(), time.monotonic()
        view.put_user(h, store.user_by_key_hash(h), gen, read_at)
        assert view.user(h).name == "ann"
        other = open_store(db)  # another process's store: the CLI's `users disable`
        try:
            assert other.disable_user("ann")
        finally:
            other.close()
        assert wait_until(lambda: view.user(h) is None, MAX_AGE_S)
        # a lookup that started before the change is not cached after it
        view.put_user(h, User("ann", "viewer", 0.0), gen, read_at)
        assert view.user(h) is None
    finally:
        view.close()


def test_a_closed_view_answers_nothing(pg):
    db, _ = pg
    view = ReadView(db).start()
    assert view.alive and view.zones("s") is not None
    view.close()
    assert not view.alive and view.zones("s") is None
