"""Event envelope: CloudEvents 1.0 JSON, RFC 8785 canonical bytes, Ed25519 signature, hash chain.

See docs/EVENTS.md for the wire format. Pure except `write_jsonl` and `read_jsonl`. The
edge's signer (`detector.signer`) builds events with these rules; the backend and
`detector verify` check them with the same rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.protocol import keys as keys_mod
from detector.protocol.errors import UserError
from detector.protocol.scoring import CLOSING, KINDS, OPENING

SPECVERSION = "1.0"
TYPE_PREFIX = "org.cleanledger"
TYPES = {kind: f"{TYPE_PREFIX}.{kind}.v1" for kind in KINDS}
DATACONTENTTYPE = "application/json"
GENESIS_PREVHASH = "0" * 64  # prevhash of the first event (seq 1) of every source
SIG_ATTR = "sig"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INT = 2**53 - 1  # I-JSON / RFC 8785 safe integer range


# Refusal reasons that may pass on a later try of the same bytes (a concurrent writer, a full
# disk): a sender retries them. Every other refusal is permanent: the chain is blocked until
# an operator acts (docs/EVENTS.md, "A blocked chain").
RETRYABLE_REASONS = frozenset({"head_moved", "storage_full", "storage_error"})


class EventError(Exception):
    """An event that must be refused: `reason` is a short machine code, the message a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


# -- schema (used by the backend and `detector verify`; strict: no coercion) ---------------

_HEX64 = r"^[0-9a-f]{64}$"
_NAME = r"[A-Za-z0-9_.-]{1,64}"
SOURCE_RE = re.compile(rf"^/sites/({_NAME})/cameras/({_NAME})$")
# UTC, milliseconds, `Z`: one spelling per instant, so `time` and the id's timestamp compare exactly
_TIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
_UUID7_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TakenWith(_Strict):
    """Other litter a clean-up took in the same pick-up."""

    litter: int = Field(ge=0, le=MAX_INT)
    severity: Literal["small", "bag", "bulky"]


class EventData(_Strict):
    act: Literal["littering", "cleanup", "found", "vanished"]
    object_class: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,64}$")
    box: list[int] = Field(min_length=4, max_length=4)
    severity: Literal["small", "bag", "bulky"]
    t_release_ms: int = Field(ge=0, le=MAX_INT)
    t_notify_ms: int = Field(ge=0, le=MAX_INT)
    frame_index: int = Field(ge=0, le=MAX_INT)
    litter: int = Field(ge=0, le=MAX_INT)
    points: int = Field(ge=-1_000_000, le=1_000_000)
    evidence_sha256: str = Field(None, pattern=_HEX64)  # absent when there is no snapshot
    also: list[TakenWith] = Field(None, min_length=1, max_length=64)  # clean-up only; absent when one item

    @model_validator(mode="after")
    def _check(self) -> EventData:
        if self.also is not None:
            ids = [self.litter] + [a.litter for a in self.also]
            if self.act != "cleanup" or len(set(ids)) != len(ids):
                raise ValueError("also: only on a clean-up, each litter once")
        if any(not (0 <= v <= 1_000_000) for v in self.box):
            raise ValueError("box values must be integers in 0..1000000")
        if self.act in OPENING and self.points > 0:
            raise ValueError(f"{self.act} points must be <= 0")
        if self.act in CLOSING and self.points < 0:
            raise ValueError(f"{self.act} points must be >= 0")
        return self


class Envelope(_Strict):
    specversion: Literal["1.0"]
    id: str = Field(pattern=_UUID7_RE)
    source: str = Field(pattern=SOURCE_RE.pattern)
    type: Literal[
        "org.cleanledger.littering.v1",
        "org.cleanledger.cleanup.v1",
        "org.cleanledger.found.v1",
        "org.cleanledger.vanished.v1",
    ]
    subject: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    time: str = Field(pattern=_TIME_RE)
    datacontenttype: Literal["application/json"]
    seq: int = Field(ge=1, le=MAX_INT)
    prevhash: str = Field(pattern=_HEX64)
    keyid: str = Field(pattern=keys_mod.KEYID_RE.pattern)
    sig: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")  # 64 bytes, base64url without padding
    data: EventData

    @model_validator(mode="after")
    def _check(self) -> Envelope:
        if TYPES[self.data.act] != self.type:
            raise ValueError("type does not match data.act")
        try:
            ms = time_ms(self.time)
        except ValueError:
            raise ValueError("time is not a valid RFC 3339 timestamp") from None
        if ms != id_ms(self.id):
            raise ValueError("time does not equal the timestamp of the id (UUIDv7, milliseconds)")
        return self

    @property
    def time_ms(self) -> int:
        return time_ms(self.time)


def check_envelope(event: Any) -> Envelope:
    """Validate the structure of one decoded event; raises EventError('schema', detail)."""
    if not isinstance(event, dict):
        raise EventError("schema", f"an event must be a JSON object, got {type(event).__name__}")
    try:
        return Envelope.model_validate(event)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(event)"
        msg = "unknown attribute" if first["type"] == "extra_forbidden" else first["msg"]
        raise EventError("schema", f"{key}: {msg}") from None


# -- canonical bytes, hashes, signatures ----------------------------------------------------


def _plain(obj: Any) -> bool:
    """True when the standard library's sorted, compact JSON of `obj` is byte for byte its
    RFC 8785 form: no floats (JCS prints numbers the ECMAScript way), integers within the
    I-JSON range (JCS refuses larger ones) and ASCII object keys (JCS sorts keys by UTF-16
    code units, Python by code points; for ASCII the orders agree). Strings need no check:
    both escape exactly `"`, `\\` and the control characters, in the same spelling."""
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is int:
        return -MAX_INT <= obj <= MAX_INT
    if t is dict:
        for k, v in obj.items():
            if type(k) is not str or not k.isascii() or not _plain(v):
                return False
        return True
    if t is list:
        for v in obj:
            if not _plain(v):
                return False
        return True
    return False  # floats, and subclasses whose JSON may differ: the reference decides


def canonical(obj: Any, plain: bool = False) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes.

    Events hold only integers, ASCII keys and strings, for which `json.dumps` with sorted keys
    and no spaces already is the canonical form, about five times faster than the pure-Python
    `rfc8785` (the backend canonicalizes every event twice); anything else goes to `rfc8785`.
    tests/unit/test_canonical.py checks the two agree. `plain=True`: the caller vouches for
    it (an event `check_envelope` accepted holds only such values), so the walk is skipped."""
    if plain or _plain(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return rfc8785.dumps(obj)


def event_hash(event: dict) -> str:
    """sha256 hex of the canonical bytes of a whole event, signature included (the next prevhash)."""
    return hashlib.sha256(canonical(event)).hexdigest()


def signing_bytes(event: dict, plain: bool = False) -> bytes:
    return canonical({k: v for k, v in event.items() if k != SIG_ATTR}, plain)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def check_signature(event: dict, public_key: Ed25519PublicKey, plain: bool = False) -> None:
    """Raise EventError('bad_signature') unless `sig` is a valid signature by public_key.
    `plain`: the event passed `check_envelope` (see `canonical`)."""
    sig = event.get(SIG_ATTR)
    try:
        raw = base64.urlsafe_b64decode(str(sig) + "=" * (-len(str(sig)) % 4))
        # base64 ignores the unused low bits of the last character: insist on the one
        # canonical spelling, so a signature has exactly one textual form (and event hash)
        if _b64url(raw) != sig:
            raise ValueError("non-canonical base64url")
        public_key.verify(raw, signing_bytes(event, plain))
    except (InvalidSignature, ValueError, TypeError):
        raise EventError("bad_signature", "signature does not verify with the key of this source") from None
    except (rfc8785.CanonicalizationError, UnicodeError, OverflowError) as e:  # pragma: no cover - schema first
        raise EventError("schema", f"cannot canonicalize: {e}") from None


def check_link(
    seq: int, prevhash: str, head_seq: int, head_hash: str, when_ms: int | None = None, head_ms: int | None = None
) -> None:
    """Raise EventError unless an event with seq/prevhash (and time `when_ms`) extends a chain
    whose last event is head_seq with hash head_hash and time head_ms (0, GENESIS_PREVHASH and
    None for an empty chain). Times within a chain never go backwards."""
    if seq <= head_seq:
        raise EventError("replayed_seq", f"seq {seq} already used (head is {head_seq})")
    if seq > head_seq + 1:
        raise EventError("seq_gap", f"seq {seq}, expected {head_seq + 1}")
    if prevhash != head_hash:
        raise EventError("prevhash_mismatch", f"prevhash does not match event {head_seq} of this source")
    check_time_order(when_ms, head_ms, head_seq)


def check_time_order(when_ms: int | None, head_ms: int | None, head_seq: int) -> None:
    if when_ms is not None and head_ms is not None and when_ms < head_ms:
        raise EventError(
            "time_backwards", f"time {rfc3339_ms(when_ms)} is before event {head_seq}'s {rfc3339_ms(head_ms)}"
        )


def check_clock(when_ms: int, now_ms: int, max_ahead_s: float, max_behind_s: float | None) -> None:
    """Live intake: raise EventError unless `when_ms` is at most max_ahead_s after the receiver's
    clock and (when max_behind_s is set) at most max_behind_s before it."""
    if when_ms - now_ms > max_ahead_s * 1000:
        raise EventError(
            "time_ahead",
            f"time {rfc3339_ms(when_ms)} is {(when_ms - now_ms) / 1000:.0f} s ahead of the backend's clock "
            f"(at most {max_ahead_s:g} s): the camera's clock is wrong",
        )
    if max_behind_s is not None and now_ms - when_ms > max_behind_s * 1000:
        raise EventError(
            "time_behind",
            f"time {rfc3339_ms(when_ms)} is {(now_ms - when_ms) / 1000:.0f} s behind the backend's clock "
            f"(at most {max_behind_s:g} s)",
        )


# -- ids and times ---------------------------------------------------------------------------


def uuid7(unix_ms: int, rand: bytes) -> str:
    """A UUIDv7 (RFC 9562 section 5.7) from a millisecond timestamp and >= 10 random bytes.

    Hand-written: Python 3.11's `uuid` has no uuid7 (3.14 adds one) and audit mode must
    choose the random bits itself, which the uuid7 packages do not allow; the layout is a
    few shifts.
    """
    r = int.from_bytes(rand[:10], "big")  # 80 bits: 12 for rand_a, 62 for rand_b
    value = ((unix_ms & (2**48 - 1)) << 80) | (0x7 << 76) | ((r >> 68) << 64) | (0b10 << 62) | (r & (2**62 - 1))
    return str(uuid.UUID(int=value))


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_ms(ms: int) -> str:
    return rfc3339(EPOCH + timedelta(milliseconds=ms))


def time_ms(text: str) -> int:
    """Milliseconds since the Unix epoch of an RFC 3339 time (ValueError if it is not one)."""
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // timedelta(milliseconds=1)


def id_ms(event_id: str) -> int:
    """The 48-bit millisecond timestamp of a UUIDv7."""
    return int(event_id.replace("-", "")[:12], 16)


def make_source(site: str, camera: str) -> str:
    source = f"/sites/{site}/cameras/{camera}"
    if not SOURCE_RE.match(source):
        raise UserError(f"site {site!r} / camera {camera!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return source


def sign_event(event: dict, private_key: Ed25519PrivateKey) -> dict:
    """`event` (without `sig`) with its Ed25519 signature added under `sig`."""
    return {**event, SIG_ATTR: _b64url(private_key.sign(signing_bytes(event)))}


def write_jsonl(events: Iterable[dict], path: Path) -> int:
    """Write events as canonical JSON, one per line; returns how many were written."""
    n = 0
    try:
        with open(path, "wb") as f:
            for event in events:
                f.write(canonical(event) + b"\n")
                n += 1
    except OSError as e:
        raise UserError(f"{path}: cannot write events: {e.strerror}") from None
    return n


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded JSON or the EventError for that line) for each non-empty line."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, loads_strict(line)
            except EventError as e:
                yield lineno, e


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise EventError("malformed", "duplicate keys in a JSON object")
    return d


def _no_constants(name: str) -> Any:
    raise EventError("malformed", f"{name} is not JSON")


def loads_strict(raw: bytes | str) -> Any:
    """json.loads that refuses duplicate keys, NaN/Infinity (they make signatures ambiguous) and
    lone UTF-16 surrogates (`"\\ud800"`: not Unicode, so not encodable as UTF-8 or RFC 8785)."""
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except EventError:
        raise
    except (ValueError, RecursionError) as e:
        raise EventError("malformed", f"invalid JSON: {str(e)[:200]}") from None
    # A surrogate can only come from a \u escape (strict UTF-8 decoding refuses encoded ones),
    # so the full check runs only on bodies that have an escape.
    if isinstance(raw, str) or b"\\u" in raw:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise EventError("malformed", "invalid Unicode: a lone surrogate (\\ud800-\\udfff)") from None
        except RecursionError:
            raise EventError("malformed", "invalid JSON: nested too deeply") from None
    return value
