"""FastAPI app: event intake, zone scores, health and Prometheus metrics.

POST /v1/events takes one event object or a JSON array (batch). A batch is processed in
order and stops at the first refusal: earlier events stay applied (accepted or duplicate),
later ones are not processed. The response lists a result per event; its HTTP status is 200
when nothing was refused, else the refusal's 4xx status, with `reason` and `detail`.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from detector.backend.config import Backend
from detector.backend.ingest import STATUS, Ingestor
from detector.backend.store import LedgerStore, SqliteLedgerStore
from detector.protocol import keys as keys_mod
from detector.protocol.errors import UserError
from detector.protocol.events import EventError, loads_strict


def _refusal(reason: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "refused", "reason": reason, "detail": detail, **extra}, status_code=STATUS[reason])


def create_app(backend: Backend, store: LedgerStore | None = None) -> FastAPI:
    cfg = backend.config
    own_store = store is None
    store = store or SqliteLedgerStore(backend.db_path)
    ingestor = Ingestor(backend, store)
    lock = threading.Lock()  # one writer: verification and append of a source's chain are serial

    registry = CollectorRegistry()
    events_total = Counter(
        "detector_backend_events", "Events acknowledged, by result (accepted, duplicate)", ["result"], registry=registry
    )
    refused_total = Counter(
        "detector_backend_refused", "Events or requests refused, by reason", ["reason"], registry=registry
    )
    for r in ("accepted", "duplicate"):
        events_total.labels(r)
    for r in STATUS:
        refused_total.labels(r)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if own_store:
            store.close()

    app = FastAPI(title="detector backend", version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.store = store
    app.state.registry = registry

    def refuse(reason: str, detail: str, **extra: Any) -> JSONResponse:
        refused_total.labels(reason).inc()
        return _refusal(reason, detail, **extra)

    def score(total: int) -> tuple[int, str]:
        s = min(cfg.scoring.ceiling, cfg.scoring.ceiling + total)
        return s, cfg.scoring.grades.grade(s)

    @app.post("/v1/events")
    async def post_events(request: Request) -> Response:
        limit = cfg.max_body_bytes
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
        try:
            payload = loads_strict(bytes(body))
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

        results: list[dict] = []
        counts = {"accepted": 0, "duplicate": 0}
        refusal: EventError | None = None
        with lock:
            for i, event in enumerate(batch):
                eid = event.get("id") if isinstance(event, dict) else None
                eid = eid[:64] if isinstance(eid, str) else None
                if refusal is not None:
                    results.append({"index": i, "id": eid, "status": "not_processed"})
                    continue
                try:
                    status = ingestor.ingest(event)
                except EventError as e:
                    refusal = e
                    results.append({"index": i, "id": eid, "status": "refused", "reason": e.reason, "detail": e.detail})
                    continue
                counts[status] += 1
                events_total.labels(status).inc()
                results.append({"index": i, "id": eid, "status": status})
        summary = {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "results": results}
        if refusal is not None:
            return refuse(refusal.reason, refusal.detail, **summary)
        return JSONResponse({"status": "ok", **summary})

    @app.get("/v1/zones")
    def list_zones() -> dict:
        zones = []
        for z in store.zones():
            s, g = score(z.total)
            zones.append({"zone": z.zone, "score": s, "grade": g, "total_points": z.total, "entries": z.entries})
        return {"ceiling": cfg.scoring.ceiling, "zones": zones}

    @app.get("/v1/zones/{zone_id}")
    def get_zone(zone_id: str, limit: int = Query(cfg.recent_entries, ge=1, le=1000)) -> Response:
        z = store.zone(zone_id)
        if z is None:
            return JSONResponse(
                {"status": "not_found", "reason": "unknown_zone", "detail": "no ledger entries for this zone"},
                status_code=404,
            )
        s, g = score(z.total)
        return JSONResponse(
            {
                "zone": z.zone,
                "score": s,
                "grade": g,
                "total_points": z.total,
                "entries": z.entries,
                "ceiling": cfg.scoring.ceiling,
                "recent": store.recent(zone_id, limit),
            }
        )

    @app.get("/healthz")
    def healthz() -> dict:
        store.ping()
        return {"status": "ok", "ledger_entries": store.ledger_count()}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(backend: Backend, host: str, port: int) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(backend), host=host, port=port, log_level="warning", access_log=False)


def revoke(backend: Backend, keyid: str, reason: str = "") -> bool:
    """Record a key revocation in the store (effective at once); True if it is new."""
    if not keys_mod.is_keyid(keyid):
        raise UserError(f"{keyid!r} is not a key id (16 lowercase hex digits)")
    store = SqliteLedgerStore(backend.db_path)
    try:
        return store.revoke(keyid, reason)
    finally:
        store.close()
