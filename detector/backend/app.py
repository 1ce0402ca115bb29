"""FastAPI app: event intake, zone scores per site, operator voids, evidence, camera views,
auth, health and Prometheus metrics; the dashboard's pages come from `dashboard.py`.

POST /v1/events takes one event object or a JSON array (batch). A batch is processed in
order and stops at the first refusal: earlier events stay applied (accepted or duplicate),
later ones are not processed. The response lists a result per event; its HTTP status is 200
when nothing was refused, else the refusal's 4xx status, with `reason` and `detail`.

At start the ledger is checked (integrity, schema version, not behind the chain heads kept
beside it: `detector.backend.heads`); a ledger that fails is refused with a one-line error.
`/healthz` writes to the database (at most once a second) and fails when it cannot; a write
that fails answers 503 with the reason (the sender retries).

Writes from cameras (events, evidence, views) are authenticated by the cameras' signatures;
everything else except /healthz needs an API key (`Authorization: Bearer KEY`) or a
dashboard session, with the role each route names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, Field

from detector.backend import heads as heads_mod
from detector.backend.auth import Authenticator, AuthError, Principal
from detector.backend.config import Backend
from detector.backend.ingest import RECOVERY, STATUS, Ingestor
from detector.backend.store import (
    CameraView,
    LedgerStore,
    SourceState,
    StorageError,
    ZoneTotal,
    open_store,
    storage_error,
)
from detector.protocol import keys as keys_mod
from detector.protocol import scoring
from detector.protocol.errors import UserError
from detector.protocol.events import SOURCE_RE, EventError, check_signature, loads_strict
from detector.protocol.views import check_view

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
SPARK_DAYS = 30


def _refusal(reason: str, detail: str, status: int | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"status": "refused", "reason": reason, "detail": detail, **extra}, status_code=status or STATUS[reason]
    )


class VoidRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why the act is void (kept and shown)")


class KeyRequest(BaseModel):
    source: str = Field(pattern=SOURCE_RE.pattern, description="/sites/<site>/cameras/<camera>")
    public_key: str = Field(description="base64 of the 32 raw Ed25519 public key bytes")


class RevokeRequest(BaseModel):
    reason: str = Field("", max_length=500)


class Scores:
    """A zone's score, grade and the last 30 days, from its ledger total (one place for the rule)."""

    def __init__(self, backend: Backend):
        self.cfg = backend.config.scoring

    def score(self, total: int) -> int:
        return scoring.score(self.cfg.ceiling, self.cfg.floor, -total)

    def grade(self, score: int) -> str:
        return self.cfg.grades.grade(score)

    def zone(self, z: ZoneTotal) -> dict:
        s = self.score(z.total)
        return {
            "site": z.site,
            "zone": z.zone,
            "score": s,
            "grade": self.grade(s),
            "outstanding_points": z.outstanding_points,
            "outstanding_litter": z.outstanding,
            "total_points": z.total,
            "entries": z.entries,
            "last_time": z.last_time,
        }

    def history(self, total: int, daily: list[tuple[str, int]], days: int = SPARK_DAYS) -> list[dict]:
        """Score at the end of each of the last `days` UTC days (today last)."""
        today = datetime.now(UTC).date()
        per_day = dict(daily)
        out, running = [], total
        for k in range(days):
            d = (today - timedelta(days=k)).isoformat()
            out.append({"day": d, "score": self.score(running)})
            running -= per_day.get(d, 0)
        return out[::-1]


def source_state(s: SourceState) -> dict:
    return {
        "source": s.source,
        "site": s.site,
        "camera": s.camera,
        "last_seq": s.last_seq,
        "last_time": s.last_time,
        "last_received_at": s.last_received_at,
        "chain": "blocked" if s.blocked_reason else ("ok" if s.last_seq else "empty"),
        "blocked": None
        if not s.blocked_reason
        else {
            "reason": s.blocked_reason,
            "detail": s.blocked_detail,
            "at": s.blocked_at,
            "recovery": RECOVERY.get(s.blocked_reason, ["check the camera's outbox and key"]),
        },
    }


def check_ledger(store: LedgerStore, kept: heads_mod.ChainHeads, where) -> None:
    """Refuse (UserError) a ledger whose chain of some source is behind the kept heads."""
    missing = heads_mod.behind(
        kept.all(),
        lambda s: h.seq if (h := store.chain_head(s)) else 0,
        lambda s: store.open_gap(s) is not None,
    )
    if missing:
        raise UserError(heads_mod.refusal(where, missing))


def create_app(backend: Backend, store: LedgerStore | None = None) -> FastAPI:
    cfg = backend.config
    own_store = store is None
    store = store or open_store(backend.db)
    kept = heads_mod.ChainHeads(backend.heads_file)
    try:
        check_ledger(store, kept, backend.db_display)
        ingestor = Ingestor(backend, store)
    except (UserError, StorageError):
        kept.close()
        if own_store:
            store.close()
        raise
    view = None
    if store.dialect == "postgresql":
        # zone totals and API-key users from memory, kept current by LISTEN/NOTIFY (readview.py)
        from detector.backend.readview import ReadView

        view = ReadView(store.url).start()
        store.on_zones_committed = view.committed
    auth = Authenticator(store, cfg.session_hours, secure_cookie=backend.tls is not None, view=view)
    scores = Scores(backend)

    registry = CollectorRegistry()
    events_total = Counter(
        "detector_backend_events", "Events acknowledged, by result (accepted, duplicate)", ["result"], registry=registry
    )
    refused_total = Counter(
        "detector_backend_refused", "Events or requests refused, by reason", ["reason"], registry=registry
    )
    voids_total = Counter("detector_backend_voids", "Acts voided by operators", registry=registry)
    evidence_total = Counter("detector_backend_evidence", "Evidence blobs stored", registry=registry)
    zone_reads = Counter(
        "detector_backend_zone_reads",
        "Reads of a site's zones, by where they were answered (memory: the read view; database)",
        ["answer"],
        registry=registry,
    )
    for r in ("memory", "database"):
        zone_reads.labels(r)
    for r in ("accepted", "duplicate"):
        events_total.labels(r)
    for r in STATUS:
        refused_total.labels(r)

    def evidence_cutoff() -> float:
        return time.time() - cfg.evidence_retention_days * 86400

    async def purge_expired_evidence() -> None:
        # Retention, not archive: the edge keeps snapshots as long (privacy.retention_days).
        while True:
            try:
                gone = await run_in_threadpool(store.purge_evidence, evidence_cutoff())
                if gone:
                    log.info("deleted %d evidence blobs older than %g days", gone, cfg.evidence_retention_days)
            except StorageError as e:  # the disk is full or failing: /healthz says so; try later
                log.warning("evidence purge failed: %s", e.detail)
            await anyio.sleep(cfg.evidence_purge_interval_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        async with anyio.create_task_group() as tg:
            tg.start_soon(purge_expired_evidence)
            yield
            tg.cancel_scope.cancel()
        ingest_pool.shutdown(wait=True)
        if view is not None:
            view.close()
        kept.close()
        if own_store:
            store.close()

    health: dict[str, Any] = {"probed_at": float("-inf"), "probe_error": None, "write_error": None}
    # Ingest is CPU work in Python (schema, canonical bytes, signatures) and holds the GIL; with
    # a thread per waiting batch, a read waits behind all of them at every GIL hand-over. Two
    # at a time keep one verifying while the other waits on the database; more batches queue.
    # Their own two threads, run at a lower OS priority (nice +INGEST_NICE): when the event loop
    # wakes for a read (or takes the GIL back from them), the scheduler runs it first instead of
    # letting it wait out an ingest thread's time slice; with the CPU otherwise idle, ingest
    # runs as fast as before (a priority only orders who waits).
    ingest_pool = ThreadPoolExecutor(2, thread_name_prefix="ingest", initializer=_lower_priority)

    app = FastAPI(
        title="detector backend", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.store = store
    app.state.registry = registry
    app.state.auth = auth
    app.state.scores = scores
    app.state.backend = backend
    app.state.ingestor = ingestor

    def need(role: str):
        async def dep(request: Request) -> Principal:
            # on the event loop when the key is cached (no thread hand-over, no database)
            p = auth.cached(request, role)
            if p is not None:
                return p
            # a cookie session reads; changes through the JSON API need the key in a header
            return await run_in_threadpool(auth.require, request, role, allow_cookie=request.method in ("GET", "HEAD"))

        return dep

    viewer, operator, admin = Depends(need("viewer")), Depends(need("operator")), Depends(need("admin"))

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        refused_total.labels(exc.reason).inc()
        if exc.page:
            from detector.backend.dashboard import login_page

            return login_page(request, exc.detail, exc.status)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return JSONResponse(
            {"status": "refused", "reason": exc.reason, "detail": exc.detail}, status_code=exc.status, headers=headers
        )

    def refuse(reason: str, detail: str, status: int | None = None, **extra: Any) -> JSONResponse:
        refused_total.labels(reason).inc()
        return _refusal(reason, detail, status, **extra)

    # A read that meets a damaged or unwritable database is the server's trouble, not the
    # client's, and not a bug: 503 with the reason, never a bare 500.
    @app.exception_handler(sqlite3.DatabaseError)
    async def _database_error(_request: Request, e: sqlite3.DatabaseError) -> JSONResponse:
        err = storage_error(e, backend.db_display)
        return refuse(err.reason, err.detail)

    @app.exception_handler(StorageError)
    async def _storage_error(_request: Request, e: StorageError) -> JSONResponse:
        health["write_error"] = {"reason": e.reason, "detail": e.detail}
        return refuse(e.reason, e.detail)

    async def read_body(request: Request, limit: int) -> bytes | JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return refuse("malformed", "invalid Content-Length")
            if int(declared) > limit:
                return refuse("too_large", f"body larger than {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return refuse("too_large", f"body larger than {limit} bytes")
        return bytes(body)

    # -- camera writes (authenticated by signatures) ---------------------------------------------
    @app.post("/v1/events")
    async def post_events(request: Request) -> Response:
        body = await read_body(request, cfg.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            payload = loads_strict(body)
        except EventError as e:
            return refuse(e.reason, e.detail)
        if isinstance(payload, list):
            if not payload:
                return refuse("empty_batch", "a batch must hold at least one event")
            if len(payload) > cfg.max_batch:
                return refuse("batch_too_large", f"a batch holds at most {cfg.max_batch} events")
            batch = payload
        elif isinstance(payload, dict):
            batch = [payload]
        else:
            return refuse("schema", "expected an event object or an array of events")
        # database work off the event loop: /healthz and reads stay responsive during ingest
        try:
            out = await asyncio.get_running_loop().run_in_executor(ingest_pool, ingestor.ingest_batch, batch)
        except StorageError as e:
            health["write_error"] = {"reason": e.reason, "detail": e.detail}
            return refuse(e.reason, e.detail, accepted=0, duplicates=0, results=[])
        if out.appended:
            health["write_error"] = None
            moved: dict[str, int] = {}
            for acc in out.appended:
                moved[acc.source] = acc.seq
            try:
                await run_in_threadpool(kept.record, moved.items())
            except sqlite3.Error:  # behind the ledger is harmless; the next request records again
                pass
        events_total.labels("accepted").inc(out.accepted)
        events_total.labels("duplicate").inc(out.duplicates)
        summary = {"accepted": out.accepted, "duplicates": out.duplicates, "results": out.results}
        if out.refusal is not None:
            return refuse(out.refusal.reason, out.refusal.detail, **summary)
        return JSONResponse({"status": "ok", **summary})

    @app.put("/v1/evidence/{sha256}")
    async def put_evidence(sha256: str, request: Request) -> Response:
        if not _SHA256.match(sha256):
            return refuse("schema", "the path must be the blob's sha256 (64 lowercase hex digits)", 400)
        body = await read_body(request, cfg.max_evidence_bytes)
        if isinstance(body, Response):
            return body
        if hashlib.sha256(body).hexdigest() != sha256:
            return refuse("hash_mismatch", "the body's sha256 is not the one in the path", 400)
        ctype = next((t for magic, t in _IMAGE_TYPES if body.startswith(magic)), None)
        if ctype is None:
            return refuse("unsupported_type", "evidence must be a JPEG or PNG image", 415)
        if not await run_in_threadpool(store.evidence_named, sha256, evidence_cutoff()):
            # only what an accepted event or view names is kept: nobody can fill the store
            return refuse("not_named", "no accepted event or camera view names this sha256", 404)
        new = await run_in_threadpool(store.put_evidence, sha256, ctype, body)
        if new:
            evidence_total.inc()
        return JSONResponse(
            {"status": "stored" if new else "present", "sha256": sha256}, status_code=201 if new else 200
        )

    @app.post("/v1/views")
    async def post_view(request: Request) -> Response:
        body = await read_body(request, 256 << 10)
        if isinstance(body, Response):
            return body
        try:
            doc = loads_strict(body)
            view = check_view(doc)
            recs = await run_in_threadpool(store.keys, [view.keyid])
            if not recs or recs[0].source != view.source:
                raise EventError("unknown_key", f"key {view.keyid} is not registered for {view.source}")
            if recs[0].revoked:
                raise EventError("revoked_key", f"key {view.keyid} is revoked")
            check_signature(doc, ingestor._key(recs[0]))
        except EventError as e:
            return refuse(e.reason, e.detail)
        zones = [{"id": z.id, "polygon": z.polygon} for z in view.zones]
        cv = CameraView(view.source, view.frame_sha256, view.width, view.height, zones, view.time, time.time())
        await run_in_threadpool(store.put_view, cv)
        return JSONResponse({"status": "ok", "frame_sha256": view.frame_sha256})

    # -- reads -----------------------------------------------------------------------------------
    @app.get("/v1/sites")
    def list_sites(p: Principal = viewer) -> dict:
        return {"sites": store.sites()}

    @app.get("/v1/zones")
    def list_zones(p: Principal = viewer) -> dict:
        return {
            "ceiling": cfg.scoring.ceiling,
            "floor": cfg.scoring.floor,
            "zones": [scores.zone(z) for z in store.zones()],
        }

    @app.get("/v1/sites/{site}/zones")
    async def site_zones(site: str, p: Principal = viewer) -> Response:
        # from the read view on the event loop when it can answer (PostgreSQL), else one thread
        # hand-over for the query; rendered by json.dumps (FastAPI's encoder walks every value)
        zones = view.zones(site) if view is not None else None
        if zones is None:
            zones = await run_in_threadpool(store.zones, site)
            zone_reads.labels("database").inc()
        else:
            zone_reads.labels("memory").inc()
        return JSONResponse({"site": site, "ceiling": cfg.scoring.ceiling, "zones": [scores.zone(z) for z in zones]})

    @app.get("/v1/sites/{site}/zones/{zone}")
    def get_zone(
        site: str, zone: str, limit: int = Query(cfg.recent_entries, ge=1, le=1000), p: Principal = viewer
    ) -> Response:
        z = store.zone(site, zone)
        if z is None:
            return JSONResponse(
                {"status": "not_found", "reason": "unknown_zone", "detail": "no ledger entries for this zone"},
                status_code=404,
            )
        return JSONResponse(
            {
                **scores.zone(z),
                "ceiling": cfg.scoring.ceiling,
                "recent": store.recent(site, zone, limit),
                "history": scores.history(z.total, store.daily(site, zone, SPARK_DAYS)),
            }
        )

    @app.get("/v1/sites/{site}/cameras")
    def site_cameras(site: str, p: Principal = viewer) -> dict:
        return {"site": site, "cameras": [source_state(s) for s in store.source_states(site)]}

    @app.get("/v1/sources")
    def list_sources(p: Principal = viewer) -> dict:
        """Every camera chain: head, accepted gaps, key changes (the audit of recoveries)."""
        return {"sources": store.sources()}

    @app.get("/v1/sites/{site}/views")
    def site_views(site: str, p: Principal = viewer) -> dict:
        return {"site": site, "views": [v.__dict__ for v in store.views(site)]}

    @app.get("/v1/evidence/{sha256}")
    def get_evidence(sha256: str, p: Principal = viewer) -> Response:
        ev = store.evidence(sha256) if _SHA256.match(sha256) else None
        if ev is None:
            return JSONResponse({"status": "not_found", "reason": "unknown_evidence"}, status_code=404)
        # content-addressed: the bytes behind a hash never change
        return Response(ev.body, media_type=ev.content_type, headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/v1/stats")
    def stats(p: Principal = viewer) -> dict:
        return {
            "ledger_entries": store.ledger_count(),
            "schema_version": store.schema_version(),
            "database": store.dialect,
        }

    # -- operator and admin ----------------------------------------------------------------------
    @app.post("/v1/acts/{event_id}/void")
    def void_act(event_id: str, req: VoidRequest, p: Principal = operator) -> Response:
        return JSONResponse(void(event_id, req.reason, p))

    def void(event_id: str, reason: str, p: Principal) -> dict:
        try:
            v, new = store.void(event_id[:64], p.user.name, reason.strip(), ingestor.compensate)
        except KeyError:
            raise RouteRefusal(404, "unknown_act", "no accepted act has this id") from None
        if new:
            voids_total.inc()
        return {
            "status": "voided" if new else "already_voided",
            "void": {
                "event_id": v.event_id,
                "by": v.voided_by,
                "at": v.voided_at,
                "reason": v.reason,
                "points": v.points,
            },
        }

    app.state.void = void

    @app.exception_handler(RouteRefusal)
    async def _not_found(request: Request, exc: RouteRefusal) -> Response:
        return JSONResponse({"status": "refused", "reason": exc.reason, "detail": exc.detail}, status_code=exc.status)

    @app.get("/v1/keys")
    def list_keys(p: Principal = admin) -> dict:
        return {"keys": [k.__dict__ for k in store.keys()]}

    @app.post("/v1/keys")
    def add_key(req: KeyRequest, p: Principal = admin) -> Response:
        try:
            raw = base64.b64decode(req.public_key, validate=True)
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
        except (binascii.Error, ValueError):
            return refuse("schema", "public_key: base64 of the 32 raw Ed25519 public key bytes", 400)
        key = keys_mod.load_public_key(req.public_key)
        kid = keys_mod.keyid(key)
        try:
            new = store.add_key(kid, req.source, keys_mod.public_b64(key), by=p.user.name)
        except ValueError as e:
            return refuse("key_mismatch", str(e), 409)
        return JSONResponse({"status": "added" if new else "present", "keyid": kid}, status_code=201 if new else 200)

    @app.post("/v1/keys/{keyid}/revoke")
    def revoke_key(keyid: str, req: RevokeRequest, p: Principal = admin) -> Response:
        if not keys_mod.is_keyid(keyid):
            return refuse("schema", "a key id is 16 lowercase hex digits", 400)
        new = store.revoke(keyid, req.reason, by=p.user.name)
        return JSONResponse({"status": "revoked" if new else "already_revoked", "keyid": keyid})

    # -- operations ------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> Response:
        # Open to probes, so it says only whether the ledger answers and can be written. Two
        # signs it cannot: the last append failed (cleared by the next that succeeds; a small
        # probe may still fit where an event no longer does), or a probe write fails (made at
        # most once a second, so polling stays cheap).
        now = time.monotonic()
        if now - health["probed_at"] >= 1.0:
            try:
                store.probe_write()
                health["probe_error"] = None
            except StorageError as e:
                health["probe_error"] = {"reason": e.reason, "detail": e.detail}
            health["probed_at"] = now
        error = health["probe_error"] or health["write_error"]
        if error is not None:
            return JSONResponse({"status": "error", **error}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    def metrics(p: Principal = viewer) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(p: Principal = viewer) -> dict:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(p: Principal = viewer) -> HTMLResponse:
        return HTMLResponse(api_reference(app.openapi()))

    from detector.backend.dashboard import router

    app.include_router(router)
    return app


INGEST_NICE = 5


def _lower_priority() -> None:
    """Lower the calling thread's scheduling priority (Linux: niceness is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INGEST_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at the process's priority
        pass


class RouteRefusal(Exception):
    """A JSON refusal raised from inside a route (not an auth failure)."""

    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def serve(backend: Backend, host: str, port: int) -> None:
    """Run the app with uvicorn until interrupted (HTTPS when listen.tls_cert/tls_key are set)."""
    import sys

    import uvicorn

    # A thread that wants the GIL waits up to the switch interval (5 ms) behind a CPU-bound
    # one; reads wait behind ingest several times per request. 1 ms keeps them short.
    sys.setswitchinterval(0.001)
    tls = {}
    if backend.tls is not None:
        tls = {"ssl_certfile": str(backend.tls[0]), "ssl_keyfile": str(backend.tls[1])}
    uvicorn.run(create_app(backend), host=host, port=port, log_level="warning", access_log=False, **tls)


def open_backend_store(backend: Backend) -> LedgerStore:
    """The store of a backend config, for the CLI (keys, users)."""
    return open_store(backend.db)


def check_keyid(keyid: str) -> None:
    if not keys_mod.is_keyid(keyid):
        raise UserError(f"{keyid!r} is not a key id (16 lowercase hex digits)")


def accept_gap(backend: Backend, sources: list[str], next_seq: int | None, reason: str, all_behind: bool) -> list:
    """The operator's way past a chain that cannot continue (audited in the store, effective at
    once): the next event of each source may skip to a later seq or carry a prevhash that does
    not match. `all_behind`: every source the ledger is behind the kept heads for (a ledger
    restored from an older backup, or lost). Returns the Gap records."""
    from detector.protocol.events import SOURCE_RE

    if not reason.strip():
        raise UserError("--reason: say why the gap is accepted (it is kept with the gap)")
    for s in sources:
        if not SOURCE_RE.match(s):
            raise UserError(f"{s!r} is not a source like /sites/<site>/cameras/<camera>")
    if next_seq is not None and next_seq < 1:
        raise UserError("--next-seq must be >= 1")
    store = open_store(backend.db)
    try:
        if all_behind:
            kept = heads_mod.ChainHeads(backend.heads_file)
            try:
                missing = heads_mod.behind(
                    kept.all(), lambda s: h.seq if (h := store.chain_head(s)) else 0, lambda s: False
                )
            finally:
                kept.close()
            sources = sources + [s for s, _, _ in missing if s not in sources]
        if not sources:
            raise UserError("no source given (and --all-behind found none behind)")
        return [store.accept_gap(s, next_seq, reason) for s in sources]
    finally:
        store.close()


def api_reference(spec: dict) -> str:
    """The OpenAPI document as one server-rendered page. Written here rather than FastAPI's
    Swagger UI page, which loads its scripts from a CDN: sites run the backend on closed
    networks, where that page stays blank. The machine-readable spec is /openapi.json."""
    from html import escape

    rows = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            params = ", ".join(f"{escape(q['name'])} ({escape(q.get('in', ''))})" for q in op.get("parameters", []))
            body = "JSON body" if "requestBody" in op else ""
            codes = ", ".join(sorted(op.get("responses", {})))
            summary = escape(op.get("summary") or op.get("operationId") or "")
            rows.append(
                f"<tr><td><b>{escape(method.upper())}</b></td><td><code>{escape(path)}</code></td>"
                f"<td>{summary}</td><td>{params}{'; ' if params and body else ''}{body}</td><td>{codes}</td></tr>"
            )
    title = escape(spec.get("info", {}).get("title", "API"))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em .8em;border-bottom:1px solid #ddd}"
        "code{font-size:1.05em}</style></head>"
        f"<body><h1>{title}</h1><p>Every route but <code>/healthz</code> needs "
        "<code>Authorization: Bearer KEY</code>; cameras write with signed events. "
        "Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>input</th><th>responses</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
