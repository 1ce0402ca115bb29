"""HTTP sink: POST a batch (JSON array) to the backend's /v1/events, then upload the blurred
snapshot each delivered event names (`PUT /v1/evidence/{sha256}`; the backend keeps a blob
only once an accepted event names it, so the upload follows the acknowledgement)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from detector.protocol.events import RETRYABLE_REASONS, canonical
from detector.sinks import DeliveryResult

log = logging.getLogger(__name__)


def is_permanent(status: int, reason: str | None) -> bool:
    """A refusal retrying the same bytes cannot pass: a 4xx, except request timeouts, rate
    limits and the reasons the protocol marks retryable (a concurrent writer, a full disk)."""
    return 400 <= status < 500 and status not in (408, 429) and reason not in RETRYABLE_REASONS


class HttpSink:
    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        evidence_dir: Path | None = None,
    ):
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1/events"):
            self.url += "/v1/events"
        self.base = self.url[: -len("/v1/events")]
        self.client = client or httpx.Client(timeout=timeout_s)
        self.evidence_dir = Path(evidence_dir) if evidence_dir is not None else None
        self.evidence_uploaded = 0

    def send_view(self, view: dict, frame: bytes) -> bool:
        """The camera's signed view (reference frame and zones), then the frame itself, which the
        backend keeps because the accepted view names it. True when both went up."""
        try:
            r = self.client.post(
                f"{self.base}/v1/views", content=canonical(view), headers={"content-type": "application/json"}
            )
            if r.status_code != 200:
                log.warning("camera view refused: HTTP %s %s", r.status_code, r.text[:200])
                return False
            r = self.client.put(f"{self.base}/v1/evidence/{view['frame_sha256']}", content=frame)
        except httpx.HTTPError as e:
            log.warning("camera view not sent: %s", e)
            return False
        return r.status_code in (200, 201)

    def upload_evidence(self, events: list[dict]) -> None:
        """Best effort: the event is the record and is already delivered; a snapshot that does not
        go up (backend away, file purged) is logged, and the dashboard shows the act without it."""
        if self.evidence_dir is None:
            return
        for ev in events:
            sha = ev.get("data", {}).get("evidence_sha256")
            path = self.evidence_dir / f"{sha}.jpg" if sha else None
            if path is None or not path.is_file():
                continue
            try:
                r = self.client.put(f"{self.base}/v1/evidence/{sha}", content=path.read_bytes())
            except (httpx.HTTPError, OSError) as e:
                log.warning("evidence %s not uploaded: %s", sha, e)
                continue
            if r.status_code in (200, 201):
                self.evidence_uploaded += 1
            else:
                log.warning("evidence %s refused: HTTP %s %s", sha, r.status_code, r.text[:200])

    def deliver(self, events: list[dict]) -> DeliveryResult:
        if not events:
            return DeliveryResult(0)
        body = canonical(events)  # a JSON array of the events' canonical bytes
        try:
            r = self.client.post(self.url, content=body, headers={"content-type": "application/cloudevents-batch+json"})
        except httpx.HTTPError as e:
            return DeliveryResult(0, f"{type(e).__name__}: {e}")
        if 200 <= r.status_code < 300:
            self.upload_evidence(events)
            return DeliveryResult(len(events))
        try:
            payload = r.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        done = 0
        results = payload.get("results")
        if isinstance(results, list):
            for res in results:  # the backend processes a batch in order and stops at a refusal
                if isinstance(res, dict) and res.get("status") in ("accepted", "duplicate"):
                    done += 1
                else:
                    break
        self.upload_evidence(events[: min(done, len(events))])
        reason = payload.get("reason") if isinstance(payload.get("reason"), str) else None
        return DeliveryResult(
            min(done, len(events)),
            f"HTTP {r.status_code} {reason or ''}: {payload.get('detail', '')}".strip(),
            permanent=is_permanent(r.status_code, reason),
            reason=reason or f"http_{r.status_code}",
        )

    def close(self) -> None:
        self.client.close()
