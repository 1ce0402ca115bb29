"""FastAPI app: event intake, zone scores, health and Prometheus metrics.

POST /v1/events takes one event object or a JSON array (batch). A batch is processed in
order and stops at the first refusal: earlier events stay applied (accepted or duplicate),
later ones are not processed. The response lists a result per event; its HTTP status is 200
when nothing was refused, else the refusal's 4xx status, with `reason` and `detail` (503
when the ledger cannot be written: the sender retries).

At start the ledger is checked (integrity, schema version, not behind the chain heads kept
beside it: `detector.backend.heads`); a ledger that fails is refused with a one-line error.
`/healthz` writes to the database (at most once a second) and fails when it cannot.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from detector.backend import heads as heads_mod
from detector.backend.config import Backend
from detector.backend.ingest import STATUS, Ingestor
from detector.backend.store import LedgerStore, SqliteLedgerStore, StorageError, storage_error
from detector.protocol import keys as keys_mod
from detector.protocol import scoring
from detector.protocol.errors import UserError
from detector.protocol.events import EventError, loads_strict


def _refusal(reason: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "refused", "reason": reason, "detail": detail, **extra}, status_code=STATUS[reason])


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
    store = store or SqliteLedgerStore(backend.db_path)
    kept = heads_mod.ChainHeads(backend.heads_file)
    try:
        check_ledger(store, kept, backend.db_path)
    except UserError:
        kept.close()
        if own_store:
            store.close()
        raise
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
        kept.close()
        if own_store:
            store.close()

    health: dict[str, Any] = {"probed_at": float("-inf"), "probe_error": None, "write_error": None}

    app = FastAPI(title="detector backend", version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.store = store
    app.state.registry = registry

    def refuse(reason: str, detail: str, **extra: Any) -> JSONResponse:
        refused_total.labels(reason).inc()
        return _refusal(reason, detail, **extra)

    # A read that meets a damaged or unwritable database is the server's trouble, not the
    # client's, and not a bug: 503 with the reason, never a bare 500.
    @app.exception_handler(sqlite3.DatabaseError)
    async def _database_error(_request: Request, e: sqlite3.DatabaseError) -> JSONResponse:
        err = storage_error(e, backend.db_path)
        return refuse(err.reason, err.detail)

    @app.exception_handler(StorageError)
    async def _storage_error(_request: Request, e: StorageError) -> JSONResponse:
        return refuse(e.reason, e.detail)

    def score(total: int) -> tuple[int, str]:
        s = scoring.score(cfg.scoring.ceiling, cfg.scoring.floor, -total)
        return s, cfg.scoring.grades.grade(s)

    def zone_json(z) -> dict:
        s, g = score(z.total)
        return {
            "zone": z.zone,
            "score": s,
            "grade": g,
            "outstanding_points": z.outstanding_points,
            "outstanding_litter": z.outstanding,
            "total_points": z.total,
            "entries": z.entries,
        }

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
        moved: dict[str, int] = {}
        with lock:
            for i, event in enumerate(batch):
                eid = event.get("id") if isinstance(event, dict) else None
                eid = eid[:64] if isinstance(eid, str) else None
                if refusal is not None:
                    results.append({"index": i, "id": eid, "status": "not_processed"})
                    continue
                try:
                    status, acc = ingestor.ingest(event)
                except (EventError, StorageError) as e:
                    if isinstance(e, StorageError):
                        health["write_error"] = {"reason": e.reason, "detail": e.detail}
                    refusal = e if isinstance(e, EventError) else EventError(e.reason, e.detail)
                    results.append({"index": i, "id": eid, "status": "refused", "reason": e.reason, "detail": e.detail})
                    continue
                if acc is not None:
                    moved[acc.source] = acc.seq
                    health["write_error"] = None
                counts[status] += 1
                events_total.labels(status).inc()
                results.append({"index": i, "id": eid, "status": status})
            try:
                kept.record(moved.items())
            except sqlite3.Error:  # behind the ledger is harmless; the next request records again
                pass
        summary = {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "results": results}
        if refusal is not None:
            return refuse(refusal.reason, refusal.detail, **summary)
        return JSONResponse({"status": "ok", **summary})

    @app.get("/v1/zones")
    def list_zones() -> dict:
        zones = [zone_json(z) for z in store.zones()]
        return {"ceiling": cfg.scoring.ceiling, "floor": cfg.scoring.floor, "zones": zones}

    @app.get("/v1/sources")
    def list_sources() -> dict:
        """Every camera chain: head, accepted gaps, key changes (the audit of recoveries)."""
        return {"sources": store.sources()}

    @app.get("/v1/zones/{zone_id}")
    def get_zone(zone_id: str, limit: int = Query(cfg.recent_entries, ge=1, le=1000)) -> Response:
        z = store.zone(zone_id)
        if z is None:
            return JSONResponse(
                {"status": "not_found", "reason": "unknown_zone", "detail": "no ledger entries for this zone"},
                status_code=404,
            )
        return JSONResponse(
            {
                **zone_json(z),
                "ceiling": cfg.scoring.ceiling,
                "floor": cfg.scoring.floor,
                "recent": store.recent(zone_id, limit),
            }
        )

    @app.get("/healthz")
    def healthz() -> Response:
        # Two signs the ledger cannot be written: the last event append failed (cleared by the
        # next that succeeds; a small probe may still fit where an event no longer does), or a
        # probe write fails (made at most once a second, so polling stays cheap).
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
        return JSONResponse({"status": "ok", "ledger_entries": store.ledger_count()})

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
    store = SqliteLedgerStore(backend.db_path)
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
