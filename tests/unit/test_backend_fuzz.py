"""Property-based fuzz of the API (hypothesis): whatever arrives, never a 5xx, ledger consistent.

In-process (Starlette's TestClient drives the real ASGI app and SQLite store) so a few hundred
examples run in seconds; the process-level behaviour is covered by test_backend.py.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from helpers import Chain, event_fields, get_field, with_field
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.backend import auth
from detector.backend.app import create_app
from detector.backend.config import BackendConfig, resolve
from detector.protocol import keys

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
json_value = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=20
)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    key_path, pub_path, _ = keys.generate("cam", d)
    cfg = BackendConfig.model_validate({"db": str(d / "l.sqlite3"), "keys": {"/sites/s1/cameras/cam": str(pub_path)}})
    app = create_app(resolve(cfg, d, "fuzz"))
    chain = Chain.of(key_path, "cam")
    evs = [chain.event(zone=f"z{i % 2}", litter=i) for i in range(400)]
    key = auth.add_user(app.state.store, "fuzz", "admin")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield _Api(client, evs)


class _Api(tuple):
    def __new__(cls, client, evs):
        return super().__new__(cls, (client, evs))

    def __repr__(self) -> str:  # keeps hypothesis' failure reports short
        return "<api>"


def _check(r):
    assert r.status_code < 500, r.text
    body = r.json()
    assert isinstance(body, dict)
    if r.status_code >= 400:
        assert body.get("reason") or body.get("detail")


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(payload=json_value)
def test_arbitrary_json(api, payload):
    client, _ = api
    _check(client.post("/v1/events", content=json.dumps(payload)))


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(api, raw):
    client, _ = api
    _check(client.post("/v1/events", content=raw))


@SETTINGS
@given(data=st.data())
def test_mutated_genuine_events(api, data):
    client, evs = api
    ev = evs[data.draw(st.integers(0, len(evs) - 1))]
    fields = data.draw(st.lists(st.sampled_from(event_fields(ev)), min_size=1, max_size=3, unique=True))
    mutated = ev
    for f in fields:
        mutated = with_field(mutated, f, data.draw(json_value | st.just(get_field(ev, f))))
    before = client.get("/v1/stats").json()["ledger_entries"]
    r = client.post("/v1/events", content=json.dumps(mutated))
    _check(r)
    if r.status_code >= 400:
        assert client.get("/v1/stats").json()["ledger_entries"] == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(zone=st.text(max_size=40), limit=st.text(max_size=8))
def test_zone_queries(api, zone, limit):
    client, _ = api
    r = client.get(f"/v1/sites/s1/zones/{quote(zone, safe='')}", params={"limit": limit})
    assert r.status_code < 500


def test_in_order_stream_after_fuzz(api):
    """The genuine chain still goes in after all the noise: the fuzz changed nothing it should not."""
    client, evs = api
    for i in range(0, len(evs), 100):
        r = client.post("/v1/events", content=json.dumps(evs[i : i + 100]))
        assert r.status_code == 200, r.text
    zones = client.get("/v1/zones").json()["zones"]
    assert sum(z["entries"] for z in zones) == len(evs)
    assert sum(z["total_points"] for z in zones) == -10 * len(evs)
