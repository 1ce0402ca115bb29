"""Read auth and TLS on a real backend process: every route but /healthz and the log-in page
refuses a missing or wrong key (401) or a role too low (403) without showing any data, and
the backend serves HTTPS with a self-signed pair."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import BackendProcess, Chain, add_user, make_keys, write_config

from detector.backend.app import create_app
from detector.backend.config import BackendConfig, resolve

SECRET_ZONE = "secretzone"
JPEG = b"\xff\xd8\xff\xe0" + b"evidence" * 20
OPEN = {"/healthz", "/login"}


def get_routes(tmp_path) -> list[str]:
    """Every GET route of the app (built in-process only to list them)."""
    cfg = BackendConfig.model_validate({"db": str(tmp_path / "routes.sqlite3")})
    app = create_app(resolve(cfg, tmp_path, "routes"))
    routes = []
    for r in app.routes:  # an included router (the dashboard's) holds its own routes
        routes += getattr(getattr(r, "original_router", None), "routes", [r])
    paths = sorted({r.path for r in routes if "GET" in (getattr(r, "methods", None) or ())})
    app.state.store.close()
    return paths


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    ks = make_keys(d, "cam")
    cfg = write_config(d / "backend.yaml", {"cam": ks["cam"][1]}, db=str(d / "ledger.sqlite3"))
    b = BackendProcess(cfg).start()
    c = Chain.of(ks["cam"][0], "cam")
    ev = c.event("littering", SECRET_ZONE, "bag", evidence=JPEG)
    assert b.post(ev).status_code == 200
    sha = hashlib.sha256(JPEG).hexdigest()
    assert b.client.put(f"/v1/evidence/{sha}", content=JPEG).status_code == 201
    keys = {role: add_user(cfg, f"u-{role}", role) for role in ("viewer", "operator")}
    yield b, d, ev, sha, keys
    b.stop()


def fill(path: str, ev: dict, sha: str) -> str:
    values = {"site": "s1", "zone": SECRET_ZONE, "sha256": sha, "event_id": ev["id"], "keyid": ev["keyid"]}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_every_read_needs_a_key(backend, tmp_path):
    b, _, ev, sha, keys = backend
    routes = get_routes(tmp_path)
    assert {"/", "/metrics", "/openapi.json", "/docs", "/v1/sites/{site}/zones", "/v1/evidence/{sha256}"} <= set(routes)
    anon = httpx.Client(base_url=b.url, timeout=10)
    checked = 0
    for route in routes:
        if route in OPEN:
            continue
        url = fill(route, ev, sha)
        for headers in ({}, {"Authorization": "Bearer dk_wrong"}, {"Authorization": "Basic abc"}):
            r = anon.get(url, headers=headers)
            assert r.status_code == 401, (url, headers, r.status_code)
            assert SECRET_ZONE not in r.text and sha not in r.text.replace(url, ""), url
            assert ev["id"] not in r.text, url
        with httpx.Client(base_url=b.url, timeout=10, cookies={"detector_session": "forged"}) as forged:
            assert forged.get(url).status_code == 401, url
        ok = anon.get(url, headers={"Authorization": f"Bearer {b.api_key}"})
        assert ok.status_code == 200, (url, ok.status_code, ok.text[:200])
        checked += 1
    assert checked >= 12
    assert anon.get("/healthz").json() == {"status": "ok"}  # open, and says nothing of the ledger
    assert "Log in" in anon.get("/login").text


def test_roles(backend):
    b, _, ev, _, keys = backend
    anon = httpx.Client(base_url=b.url, timeout=10)
    void = f"/v1/acts/{ev['id']}/void"
    assert anon.post(void, json={"reason": "x"}).status_code == 401
    assert (
        anon.post(void, json={"reason": "x"}, headers={"Authorization": f"Bearer {keys['viewer']}"}).status_code == 403
    )
    for role in ("viewer", "operator"):
        h = {"Authorization": f"Bearer {keys[role]}"}
        assert anon.get("/v1/keys", headers=h).status_code == 403
        assert (
            anon.post("/v1/keys", json={"source": "/sites/s1/cameras/x", "public_key": "A" * 44}, headers=h).status_code
            == 403
        )
        assert anon.post(f"/v1/keys/{ev['keyid']}/revoke", json={}, headers=h).status_code == 403
    # a dashboard session cannot change anything through the JSON API (no CSRF route there)
    r = anon.post("/login", data={"key": keys["operator"]}, follow_redirects=False)
    assert r.status_code == 303 and "detector_session" in r.cookies
    with httpx.Client(base_url=b.url, timeout=10, cookies={"detector_session": r.cookies["detector_session"]}) as s:
        assert s.get("/v1/sites").status_code == 200
        assert s.post(void, json={"reason": "x"}).status_code == 401
        # the dashboard's void form needs the session's CSRF token
        form = {"event_id": ev["id"], "reason": "x", "csrf": "wrong"}
        r = s.post(f"/sites/s1/zones/{SECRET_ZONE}/void", data=form)
        assert r.status_code == 403 and SECRET_ZONE not in r.text
    assert anon.post("/login", data={"key": "dk_wrong"}).status_code == 401


def _self_signed(dirpath):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (dirpath / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dirpath / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return dirpath / "cert.pem"


def test_tls_with_a_self_signed_pair(tmp_path):
    ks = make_keys(tmp_path, "cam")
    cert = _self_signed(tmp_path)
    cfg = write_config(
        tmp_path / "backend.yaml",
        {"cam": ks["cam"][1]},
        listen={"tls_cert": "cert.pem", "tls_key": "key.pem"},
    )
    b = BackendProcess(cfg, verify=str(cert)).start()
    try:
        assert b.url.startswith("https://")
        assert b.post(Chain.of(ks["cam"][0], "cam").event(zone="tls")).status_code == 200
        assert b.zones()["tls"]["score"] == 990
        with pytest.raises(httpx.HTTPError):  # an untrusted certificate is refused by the client
            httpx.get(f"{b.url}/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{b.port}/healthz", timeout=5)
        r = httpx.post(f"{b.url}/login", data={"key": b.api_key}, verify=str(cert), follow_redirects=False)
        assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    finally:
        b.stop()


def test_api_reference_page_works_offline(backend):
    """/docs lists every route from the app's own OpenAPI document and loads nothing from
    elsewhere (a CDN page stays blank on a site's closed network)."""
    b, *_ = backend
    r = httpx.get(f"{b.url}/docs", headers={"Authorization": f"Bearer {b.api_key}"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<code>/v1/events</code>" in r.text and "<b>POST</b>" in r.text
    assert "<code>/v1/sites/{site}/zones</code>" in r.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text)  # no script or style from another host
