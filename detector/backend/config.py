"""Backend settings (YAML, strict). Relative paths resolve against the config file's directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, field_validator, model_validator

from detector.protocol import keys as keys_mod
from detector.protocol.config import Section, load_config
from detector.protocol.events import SOURCE_RE
from detector.protocol.scoring import PointsConfig


class ListenConfig(Section):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port)")


class GradesConfig(Section):
    A: int = Field(900, description="lowest score graded A")
    B: int = Field(700, description="lowest score graded B")
    C: int = Field(500, description="lowest score graded C; below it: D")

    @model_validator(mode="after")
    def _ordered(self) -> GradesConfig:
        if not self.A > self.B > self.C:
            raise ValueError("grade thresholds must satisfy A > B > C")
        return self

    def grade(self, score: int) -> str:
        if score >= self.A:
            return "A"
        if score >= self.B:
            return "B"
        if score >= self.C:
            return "C"
        return "D"


class ScoringConfig(Section):
    """A zone's score = ceiling - points of the litter lying there now, kept within [floor, ceiling]."""

    ceiling: int = Field(1000, ge=1, le=1_000_000_000, description="score of a zone with no litter lying there")
    # 0: a score reads as "how much of the scale is still clean" and never goes negative; a
    # zone with more litter than the scale holds stays at the floor (its outstanding points
    # are still kept exactly, and shown, so cleaning it up is counted in full).
    floor: int = Field(0, ge=-1_000_000_000, le=1_000_000_000, description="lowest score a zone can show")
    grades: GradesConfig = Field(GradesConfig(), description="score thresholds of the grades")
    points: PointsConfig = Field(PointsConfig(), description="points per severity (the backend's own scoring)")

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> ScoringConfig:
        if self.floor >= self.ceiling:
            raise ValueError("floor must be below ceiling")
        return self


class ClockConfig(Section):
    """How far an event's `time` may be from the backend's clock (live intake only; audit logs
    checked with `detector verify` carry the recorded clip's times)."""

    # No legitimate event comes from the future: only clock error can put it there. Five
    # minutes is far above what NTP-synchronised clocks disagree by (milliseconds) and what an
    # unsynchronised RTC drifts in weeks, and far below a clock set a day, a time zone, or a
    # century wrong.
    max_ahead_s: float = Field(300.0, ge=0, description="refuse events whose time is this far ahead of the backend")
    # Off by default: an edge keeps undelivered events for as long as the backend is away, so
    # an old event is normal after an outage; a site that wants a bound sets one.
    max_behind_s: float | None = Field(
        None, gt=0, description="refuse events whose time is this far behind the backend (None: no bound)"
    )


class BackendConfig(Section):
    listen: ListenConfig = Field(ListenConfig(), description="HTTP listen address")
    db: Path = Field(Path("ledger.sqlite3"), description="SQLite file; relative to the config file")
    heads: Path | None = Field(
        None,
        description="file keeping each source's newest delivered seq, to refuse a lost ledger "
        "(default: the db path + '.heads'; best on another disk)",
    )
    clock: ClockConfig = Field(ClockConfig(), description="accepted distance of event times from the backend's clock")
    keys: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description='source ("/sites/<site>/cameras/<camera>") -> public key(s): PEM file path or inline base64',
    )
    revoked: list[str] = Field(default_factory=list, description="revoked key ids")
    scoring: ScoringConfig = Field(ScoringConfig(), description="zone scores and grades")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="larger request bodies are refused (413)")
    max_batch: int = Field(1000, ge=1, le=100_000, description="most events in one POST")
    recent_entries: int = Field(50, ge=1, le=10_000, description="default number of recent ledger entries per zone")

    @field_validator("keys")
    @classmethod
    def _sources(cls, keys: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for source in keys:
            if not SOURCE_RE.match(source):
                raise ValueError(f"{source!r} is not a source like /sites/<site>/cameras/<camera>")
        return keys

    @field_validator("revoked")
    @classmethod
    def _keyids(cls, revoked: list[str]) -> list[str]:
        for k in revoked:
            if not keys_mod.is_keyid(k):
                raise ValueError(f"{k!r} is not a key id (16 lowercase hex digits)")
        return revoked


@dataclass(frozen=True)
class Backend:
    """A loaded configuration: paths resolved, public keys parsed."""

    config: BackendConfig
    db_path: Path
    keys: dict[str, dict[str, Ed25519PublicKey]]  # source -> keyid -> key
    origin: str = "(defaults)"
    heads_path: Path | None = None  # None: db_path + ".heads"

    @property
    def heads_file(self) -> Path:
        return self.heads_path or self.db_path.with_name(self.db_path.name + ".heads")


def resolve(config: BackendConfig, base_dir: Path, origin: str) -> Backend:
    db = (config.db if config.db.is_absolute() else base_dir / config.db).resolve()
    keys: dict[str, dict[str, Ed25519PublicKey]] = {}
    for source, specs in config.keys.items():
        specs = [specs] if isinstance(specs, str) else specs
        keys[source] = {}
        for spec in specs:
            key = keys_mod.load_public_key(spec, base_dir, origin=f"{origin}: keys.{source}")
            keys[source][keys_mod.keyid(key)] = key
    heads = None
    if config.heads is not None:
        heads = (config.heads if config.heads.is_absolute() else base_dir / config.heads).resolve()
    return Backend(config, db, keys, origin, heads)


def load_backend_config(path: Path | None) -> Backend:
    config = load_config(BackendConfig, path)
    if path is None:
        return resolve(config, Path.cwd(), "(defaults)")
    return resolve(config, Path(path).resolve().parent, str(path))
