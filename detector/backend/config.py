"""Backend settings (YAML, strict). Relative paths resolve against the config file's directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, field_validator, model_validator

from detector.protocol import keys as keys_mod
from detector.protocol.config import Section, load_config
from detector.protocol.errors import UserError
from detector.protocol.events import SOURCE_RE
from detector.protocol.scoring import PointsConfig


class ListenConfig(Section):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port)")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) for HTTPS; relative to the config file")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert; relative to the config file")

    @model_validator(mode="after")
    def _both(self) -> ListenConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


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
    db: str = Field(
        "ledger.sqlite3",
        description="the ledger database: a SQLite file (relative to the config file) or a postgresql:// URL",
    )
    heads: Path | None = Field(
        None,
        description="file keeping each source's newest delivered seq, to refuse a lost ledger "
        "(default: the SQLite db path + '.heads', or ledger.heads beside the config for PostgreSQL;"
        " best on another disk)",
    )
    clock: ClockConfig = Field(ClockConfig(), description="accepted distance of event times from the backend's clock")
    keys: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description='source ("/sites/<site>/cameras/<camera>") -> public key(s): PEM file path or inline base64;'
        " added to the keys table at start (`detector backend keys add` adds more without a restart)",
    )
    revoked: list[str] = Field(
        default_factory=list, description="revoked key ids, recorded at start (also `detector backend keys revoke`)"
    )
    scoring: ScoringConfig = Field(ScoringConfig(), description="zone scores and grades")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="larger request bodies are refused (413)")
    max_batch: int = Field(1000, ge=1, le=100_000, description="most events in one POST")
    recent_entries: int = Field(50, ge=1, le=10_000, description="default number of recent ledger entries per zone")
    max_evidence_bytes: int = Field(
        4 << 20, ge=1024, le=256 << 20, description="largest evidence snapshot or reference frame accepted (413)"
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="how long a dashboard log-in lasts")
    # The same limit as the edge's (privacy.retention_days): a blurred snapshot is evidence for
    # reviewing an act, not an archive of the place. Each camera's latest reference frame is
    # kept whatever its age (the zone map is drawn on it).
    evidence_retention_days: float = Field(
        30.0, gt=0, le=3650, description="evidence snapshots and old camera frames are deleted after this many days"
    )
    evidence_purge_interval_s: float = Field(3600.0, gt=0, description="how often expired evidence is deleted")

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
    db: str  # a resolved SQLite path or a postgresql:// URL
    keys: dict[str, dict[str, Ed25519PublicKey]]  # source -> keyid -> key (the YAML seed)
    origin: str = "(defaults)"
    heads_file: Path = Path("ledger.heads")  # resolved: config heads, or the default beside the ledger
    tls: tuple[Path, Path] | None = None  # (certificate, key)

    @property
    def db_display(self) -> str:
        """The database for messages (a URL without its password)."""
        from detector.backend.store.base import redact

        return redact(self.db)


def _under(base_dir: Path, p: Path) -> Path:
    return (p if p.is_absolute() else base_dir / p).resolve()


def resolve(config: BackendConfig, base_dir: Path, origin: str) -> Backend:
    from detector.backend.store import is_postgres

    db = config.db if is_postgres(config.db) else str(_under(base_dir, Path(config.db)))
    tls = None
    if config.listen.tls_cert is not None:
        tls = (_under(base_dir, config.listen.tls_cert), _under(base_dir, config.listen.tls_key))
        for p in tls:
            if not p.is_file():
                raise UserError(f"{origin}: listen: {p} not found")
    keys: dict[str, dict[str, Ed25519PublicKey]] = {}
    for source, specs in config.keys.items():
        specs = [specs] if isinstance(specs, str) else specs
        keys[source] = {}
        for spec in specs:
            key = keys_mod.load_public_key(spec, base_dir, origin=f"{origin}: keys.{source}")
            keys[source][keys_mod.keyid(key)] = key
    if config.heads is not None:
        heads = _under(base_dir, config.heads)
    elif is_postgres(db):
        heads = _under(base_dir, Path("ledger.heads"))
    else:
        heads = Path(db + ".heads")
    return Backend(config, db, keys, origin, heads, tls)


def load_backend_config(path: Path | None) -> Backend:
    config = load_config(BackendConfig, path)
    if path is None:
        return resolve(config, Path.cwd(), "(defaults)")
    return resolve(config, Path(path).resolve().parent, str(path))
