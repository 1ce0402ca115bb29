"""HTTP sink: POST a batch (JSON array) to the backend's /v1/events."""

from __future__ import annotations

import httpx

from detector.protocol.events import canonical
from detector.sinks import DeliveryResult


class HttpSink:
    def __init__(self, url: str, timeout_s: float = 10.0, client: httpx.Client | None = None):
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1/events"):
            self.url += "/v1/events"
        self.client = client or httpx.Client(timeout=timeout_s)

    def deliver(self, events: list[dict]) -> DeliveryResult:
        if not events:
            return DeliveryResult(0)
        body = canonical(events)  # a JSON array of the events' canonical bytes
        try:
            r = self.client.post(self.url, content=body, headers={"content-type": "application/cloudevents-batch+json"})
        except httpx.HTTPError as e:
            return DeliveryResult(0, f"{type(e).__name__}: {e}")
        if 200 <= r.status_code < 300:
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
        return DeliveryResult(
            min(done, len(events)),
            f"HTTP {r.status_code} {payload.get('reason', '')}: {payload.get('detail', '')}".strip(),
            permanent=400 <= r.status_code < 500 and r.status_code not in (408, 429),
        )

    def close(self) -> None:
        self.client.close()
