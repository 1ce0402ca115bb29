"""A camera's view: its reference frame and zone polygons, signed by the camera's key.

The backend draws each camera's zones, coloured by grade, over a reference frame of that
camera. The edge sends a signed view document (`POST /v1/views`) naming the frame's sha256,
its size and the zone polygons in frame pixels; once the backend has accepted the view, the
frame itself goes up like act evidence (`PUT /v1/evidence/{sha256}`), which the backend keeps
only because an accepted view (or event) names it. The frame must be a blurred snapshot (the
edge's redactor blurs every face before anything is stored or sent).

The document is signed like an event: Ed25519 over the RFC 8785 canonical JSON of the
document without `sig`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.protocol import keys as keys_mod
from detector.protocol.events import SOURCE_RE, EventError, make_source, rfc3339, sign_event

VIEW_TYPE = "org.cleanledger.view.v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ZonePolygon(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    polygon: list[list[int]] = Field(min_length=3, max_length=256)


class View(_Strict):
    type: Literal["org.cleanledger.view.v1"]
    source: str = Field(pattern=SOURCE_RE.pattern)
    keyid: str = Field(pattern=keys_mod.KEYID_RE.pattern)
    time: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
    frame_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(ge=1, le=100_000)
    height: int = Field(ge=1, le=100_000)
    zones: list[ZonePolygon] = Field(max_length=256)
    sig: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")


def make_view(
    private_key: Ed25519PrivateKey,
    site: str,
    camera: str,
    frame_sha256: str,
    width: int,
    height: int,
    zones: dict[str, list[tuple[float, float]]],
    when: datetime,
) -> dict:
    """A signed view document (zones: id -> polygon in frame pixels)."""
    doc: dict[str, Any] = {
        "type": VIEW_TYPE,
        "source": make_source(site, camera),
        "keyid": keys_mod.keyid(private_key),
        "time": rfc3339(when),
        "frame_sha256": frame_sha256,
        "width": int(width),
        "height": int(height),
        "zones": [{"id": z, "polygon": [[int(round(x)), int(round(y))] for x, y in poly]} for z, poly in zones.items()],
    }
    return sign_event(doc, private_key)


def check_view(doc: Any) -> View:
    """The structure of a view document; EventError('schema', detail) if it is not one."""
    if not isinstance(doc, dict):
        raise EventError("schema", "a view must be a JSON object")
    try:
        view = View.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(view)"
        msg = "unknown attribute" if first["type"] == "extra_forbidden" else first["msg"]
        raise EventError("schema", f"{key}: {msg}") from None
    for z in view.zones:
        if any(len(p) != 2 or not (0 <= p[0] <= view.width and 0 <= p[1] <= view.height) for p in z.polygon):
            raise EventError("schema", f"zones.{z.id}: points must be [x, y] inside the frame")
    return view
