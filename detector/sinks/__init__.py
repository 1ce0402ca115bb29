"""Where the outbox delivers events. A sink is anything with `deliver(events) -> DeliveryResult`.

Contract: `events` is a batch in chain order. The sink reports how many events *from the
start of the batch* the receiver has durably acknowledged (accepted or duplicate); the
sender marks exactly those delivered and retries the rest later, unless the refusal is
`permanent`: then the sender blocks the chain until an operator acts. It must never report an
event delivered that the receiver has not acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DeliveryResult:
    delivered: int  # leading events of the batch acknowledged by the receiver
    error: str | None = None  # why the rest was not delivered (None: all delivered)
    permanent: bool = False  # the receiver refused an event for good; retrying the same bytes cannot pass
    reason: str | None = None  # the receiver's reason code for the refusal (e.g. revoked_key)

    @property
    def ok(self) -> bool:
        return self.error is None


class Sink(Protocol):
    def deliver(self, events: list[dict]) -> DeliveryResult: ...

    def close(self) -> None: ...
