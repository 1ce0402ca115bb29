"""`detector audit`: from options to files on disk.

1. Probe every recording (sha256, duration, container start time) on the engine's workers.
2. Plan each recording's segments (`segments.SegmentRule`), skip what an earlier run with the
   same file and configuration finished, and hand the segments to the engine.
3. As segments come back, keep them on disk (so a crash loses at most the segments in
   flight); when a recording's segments are all in, merge them and write its outputs.
4. Sign, in recording order per camera, so each camera's log is one hash chain; then the
   summary.

Everything written is decided here, from values, in a fixed order: the outputs do not depend
on the engine, the number of jobs, the order in which workers finish, or on whether the run
was resumed. Each file is written to a temporary name and renamed, so an interrupted run
leaves finished results valid and nothing half-written under a final name.

Output folder:

    summary.md  summary.html  summary.json       the run (deterministic)
    run.json                                     engine, jobs, timings of the last run (not deterministic)
    recordings/NAME/acts.jsonl                   acts of one recording
    recordings/NAME/events.jsonl                 its signed events (with --key)
    recordings/NAME/annotated.mp4                (with --video)
    recordings/NAME/timeline.png
    events/CAMERA.jsonl                          each camera's whole signed log: one hash chain
    evidence/SHA256.jpg                          blurred snapshots, named by content
    .audit-state/                                what a rerun resumes from
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector import __version__
from detector.audit import inputs as inputs_mod
from detector.audit.engines import Engine, Failed, make_engine
from detector.audit.segments import Segment, SegmentRule, merge
from detector.audit.work import Probe, ProbeTask, SegmentOutput, SegmentTask
from detector.config import Settings, load_settings
from detector.protocol.errors import UserError

STATE_DIR = ".audit-state"


@dataclass(frozen=True)
class AuditOptions:
    """What `detector audit` was asked to do (the CLI fills it in)."""

    paths: list[str]
    out: Path
    config: Path | None = None
    engine: str = "local"
    jobs: int | None = None
    address: str | None = None
    video: bool = False
    key: Path | None = None
    camera: str | None = None
    start_time: datetime | None = None
    segment_minutes: float = 15.0
    progress: bool = False
    notice: Callable[[str], None] = lambda line: print(line, file=sys.stderr)


@dataclass
class Recording:
    path: Path
    name: str  # its folder under recordings/
    probe: Probe | None = None
    segments: list[Segment] = field(default_factory=list)
    outputs: dict[int, dict] = field(default_factory=dict)  # segment index -> stored segment result
    status: str = "not done"  # "ok", "error", "not done"
    error: str | None = None
    record: dict | None = None  # the finished recording (acts and counts), as stored
    done_before: bool = False

    @property
    def key(self) -> str:
        return self.probe.sha256 if self.probe else ""


@dataclass
class AuditOutcome:
    recordings: list[Recording]
    out: Path
    engine: str
    jobs: int
    wall_s: float
    video_s_this_run: float
    interrupted: bool

    @property
    def failed(self) -> int:
        return sum(r.status == "error" for r in self.recordings)

    @property
    def done_before(self) -> int:
        return sum(r.done_before for r in self.recordings)


def run(opts: AuditOptions) -> AuditOutcome:
    settings = _settings(opts)
    rule = SegmentRule.from_settings(settings, opts.segment_minutes * 60.0)
    found = inputs_mod.collect(opts.paths)
    for line in found.skipped:
        opts.notice(line)
    if opts.key:
        from detector.protocol.keys import load_private_key

        load_private_key(opts.key)  # fail before hours of work, not after
    if opts.start_time is not None and opts.start_time.tzinfo is None:
        raise UserError("--start-time: give a time zone (e.g. 2026-11-26T08:00:00Z)")
    if opts.engine == "local":
        _check_models(settings)
    out = Path(opts.out)
    state = out / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot write: {e.strerror}") from None
    lock = _lock(state)
    recordings = [Recording(p, n) for p, n in zip(found.recordings, _names(found.recordings))]
    config_digest = _config_digest(settings, rule)
    settings_json = settings.model_dump_json()
    t0 = time.perf_counter()
    engine = make_engine(opts.engine, opts.jobs, opts.address)
    progress = _Progress(len(recordings), opts.progress)
    interrupted = False
    video_s = 0.0
    try:
        for r, probe in zip(recordings, _probe(engine, recordings)):
            r.probe = probe
            if probe.error:
                r.status, r.error = "error", probe.error
                progress.file_done()
        _check_start_times(opts, recordings)
        progress.set_hours(sum(r.probe.duration_s for r in recordings if r.probe and not r.probe.error) / 3600)
        by_key = _plan(engine, recordings, rule, config_digest, settings_json, state, opts.video, progress)
        while engine.pending():
            result = engine.next_result(timeout=0.5)
            if result is None:
                continue
            if isinstance(result, Failed):
                rec = by_key[result.task.key]
                if rec.status != "error":
                    rec.status, rec.error = "error", f"{rec.path}: {result.message}"
                    progress.file_done()
                continue
            rec = by_key[result.key]
            if rec.status == "error":
                continue  # another segment of it failed already
            if result.error:
                rec.status, rec.error = "error", result.error
                progress.file_done()
                continue
            seg = rec.segments[result.index]
            video_s += _owned_s(seg, result)
            rec.outputs[result.index] = _keep_segment(result, state, rec, config_digest, out)
            progress.video(_owned_s(seg, result))
            if len(rec.outputs) == len(rec.segments):
                _finish(rec, rule, state, config_digest, out, opts.video)
                progress.file_done()
    except KeyboardInterrupt:
        interrupted = True
        engine.close(cancel=True)
    else:
        engine.close()
    finally:
        progress.close()
    _share_duplicates(recordings)
    wall = time.perf_counter() - t0
    try:
        events = _sign(opts, settings, recordings, out) if opts.key else {}
        from detector.audit.summary import write_summary

        write_summary(out, recordings, settings, rule, opts, found.skipped, events, config_digest)
        _write_run_info(out, engine, wall, video_s, recordings, interrupted)
    finally:
        lock.close()
    if interrupted:
        raise KeyboardInterrupt
    return AuditOutcome(recordings, out, engine.name, engine.jobs, wall, video_s, interrupted)


# -- setup -------------------------------------------------------------------------------------------


def _settings(opts: AuditOptions) -> Settings:
    settings = load_settings(opts.config)
    if opts.camera:
        from pydantic import ValidationError

        data = settings.model_dump(mode="json")
        data["camera"]["name"] = opts.camera
        try:
            settings = Settings.model_validate(data)
        except ValidationError:
            raise UserError(f"--camera: {opts.camera!r} is not a valid camera name (letters, digits, _ . -)") from None
    if opts.segment_minutes <= 0:
        raise UserError("--segment-minutes must be positive")
    return settings


def _check_models(settings: Settings) -> None:
    """Fail at once on a missing model rather than once per recording in the workers."""
    from detector.config import PrivacyConfig
    from detector.models import resolve_model

    resolve_model(settings.detector.model, settings.detector.model_path)
    privacy = PrivacyConfig()
    resolve_model(privacy.face_model, privacy.face_model_path)


def _lock(state: Path):
    """One audit per output folder at a time: two would interleave their files."""
    f = open(state / "lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UserError(f"{state.parent}: another audit is writing to this folder") from None
    return f


def _names(paths: list[Path]) -> list[str]:
    """Folder names under recordings/: the file's stem, made unique with a hash of its path."""
    stems = [p.stem for p in paths]
    return [
        s if stems.count(s) == 1 else f"{s}-{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"
        for s, p in zip(stems, paths)
    ]


def _config_digest(settings: Settings, rule: SegmentRule) -> str:
    """What, besides the file, decides a recording's results: a rerun with another value
    analyses again."""
    blob = json.dumps(
        {"detector": __version__, "settings": settings.model_dump(mode="json"), "segments": rule.to_json()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_start_times(opts: AuditOptions, recordings: list[Recording]) -> None:
    if not opts.key or opts.start_time is not None:
        return
    lacking = [r for r in recordings if r.probe and not r.probe.error and not r.probe.start_time]
    if lacking:
        raise UserError(
            f"signed events need the recordings' start times: {lacking[0].path} has none in its container; "
            "give --start-time"
        )


# -- probing and planning ----------------------------------------------------------------------------


def _probe(engine: Engine, recordings: list[Recording]) -> list[Probe]:
    for r in recordings:
        engine.submit(ProbeTask(str(r.path)))
    probes: dict[str, Probe] = {}
    while engine.pending():
        result = engine.next_result(timeout=0.5)
        if isinstance(result, Failed):
            probes[result.task.path] = Probe(result.task.path, error=f"{result.task.path}: {result.message}")
        elif result is not None:
            probes[result.path] = result
    return [probes[str(r.path)] for r in recordings]


def _plan(engine, recordings, rule, config_digest, settings_json, state, video, progress) -> dict[str, Recording]:
    """Segments of every readable recording; what an earlier run finished is taken as it is,
    the rest goes to the engine. Returns the recordings being worked on, by key."""
    primary: dict[str, Recording] = {}
    by_key: dict[str, Recording] = {}
    for r in recordings:
        if r.status == "error":
            continue
        r.segments = rule.plan(r.probe.duration_s)
        if r.key in primary:  # the same bytes under two names: analysed once
            continue
        primary[r.key] = r
        record = _read_json(_record_path(state, r.key, config_digest))
        if record is not None and (record.get("video") or not video):
            r.record, r.status, r.done_before = record, "ok", True
            progress.file_done()
            progress.video(r.probe.duration_s)
            continue
        by_key[r.key] = r
        for seg in r.segments:
            stored = _read_json(_segment_path(state, r.key, config_digest, seg.index))
            if stored is not None and (stored.get("video") is not None or not video):
                r.outputs[seg.index] = stored
                progress.video(_owned_from_record(seg, stored))
                continue
            engine.submit(SegmentTask(r.key, str(r.path), settings_json, seg, rule.margin_s, video))
        if len(r.outputs) == len(r.segments):  # every segment stored by an interrupted run
            _finish(r, rule, state, config_digest, Path(state).parent, video)
            progress.file_done()
    return by_key


def _share_duplicates(recordings: list[Recording]) -> None:
    """A file given twice (same sha256) shares the first copy's results."""
    first: dict[str, Recording] = {}
    for r in recordings:
        if r.probe is None or r.probe.error:
            continue
        p = first.setdefault(r.key, r)
        if p is not r:
            r.status, r.error, r.record = p.status, p.error, p.record


def _owned_s(seg: Segment, result: SegmentOutput) -> float:
    end = result.last_t if seg.own_to is None else seg.own_to
    return max(0.0, end - seg.own_from) if result.frames else 0.0


def _owned_from_record(seg: Segment, stored: dict) -> float:
    end = stored["last_t"] if seg.own_to is None else seg.own_to
    return max(0.0, end - seg.own_from) if stored["frames"] else 0.0


# -- keeping results ---------------------------------------------------------------------------------


def _record_path(state: Path, sha: str, digest: str) -> Path:
    return state / f"{sha}-{digest[:16]}.json"


def _segment_path(state: Path, sha: str, digest: str, index: int) -> Path:
    return state / f"{sha}-{digest[:16]}" / f"segment-{index:04d}.json"


def _keep_segment(result: SegmentOutput, state: Path, rec: Recording, digest: str, out: Path) -> dict:
    """Store one segment's result (evidence first, the record that names it last)."""
    for sha, jpeg in sorted(result.evidence.items()):
        write_atomic(out / "evidence" / f"{sha}.jpg", jpeg)
    path = _segment_path(state, rec.key, digest, result.index)
    video = None
    if result.video is not None:
        video = path.with_suffix(".mp4").name
        write_atomic(path.with_suffix(".mp4"), result.video)
    stored = {
        "acts": result.acts,
        "frames": result.frames,
        "analysed_s": round(result.analysed_s, 6),
        "last_t": result.last_t,
        "video": video,
    }
    write_atomic(path, _json_bytes(stored))
    return stored


def _finish(rec: Recording, rule: SegmentRule, state: Path, digest: str, out: Path, video: bool) -> None:
    """All segments are in: merge, write the recording's files, then mark it done."""
    outs = [rec.outputs[s.index] for s in rec.segments]
    acts = merge(rec.segments, [o["acts"] for o in outs], rule.margin_s)
    last_t = outs[-1]["last_t"] if outs[-1]["frames"] else max((o["last_t"] for o in outs), default=0.0)
    record = {
        "sha256": rec.key,
        "acts": acts,
        "segments": [s.to_json() for s in rec.segments],
        "frames_analysed": sum(o["frames"] for o in outs),
        "video_s": round(last_t, 3),
        "video": bool(video),
    }
    folder = out / "recordings" / rec.name
    write_atomic(folder / "acts.jsonl", b"".join(_json_bytes(a, line=True) for a in acts))
    if video:
        parts = [_segment_path(state, rec.key, digest, s.index).with_suffix(".mp4") for s in rec.segments]
        concat_videos([p for p in parts if p.exists()], folder / "annotated.mp4")
    write_atomic(_record_path(state, rec.key, digest), _json_bytes(record))
    rec.record, rec.status = record, "ok"


def concat_videos(parts: list[Path], dest: Path) -> None:
    """Join segments' annotated videos by copying their packets (no re-encoding): each part
    starts with a keyframe and all share the codec and frame size."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _remux(parts, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remux(parts: list[Path], tmp: Path) -> None:
    import av

    with av.open(str(tmp), "w", format="mp4") as dst:
        ostream = None
        offset = 0.0  # seconds of the parts before
        for part in parts:
            with av.open(str(part)) as src:
                s = src.streams.video[0]
                if ostream is None:
                    ostream = dst.add_stream_from_template(s)
                end = offset
                for pkt in src.demux(s):
                    if pkt.dts is None:
                        continue  # the demuxer's flush packet
                    shift = round(offset / s.time_base)
                    pkt.pts += shift
                    pkt.dts += shift
                    end = max(end, float((pkt.pts + pkt.duration) * s.time_base))
                    pkt.stream = ostream
                    dst.mux(pkt)
                offset = end


# -- signing -------------------------------------------------------------------------------------------


def _sign(opts: AuditOptions, settings: Settings, recordings: list[Recording], out: Path) -> dict:
    """Each camera's events in recording order, as one hash chain (events/CAMERA.jsonl), and each
    recording's share of it (recordings/NAME/events.jsonl). Litter ids are numbered per camera
    (recording k's litter n is the number of litter ids before it plus n), so a clean-up is
    credited against its own recording's littering only.

    An interrupted run signs the recordings up to the first one not done: the next run then
    extends the same chain, byte for byte."""
    from detector.protocol.events import rfc3339
    from detector.protocol.keys import load_private_key
    from detector.signer import ChainState, EventSigner
    from detector.values import Act

    cam = settings.camera
    signer_key = load_private_key(opts.key)
    order = _chain_order(opts, recordings)
    state = ChainState()
    chain: list[bytes] = []
    offset = 0
    for rec, start in order:
        if rec.status == "error":
            continue
        if rec.status != "ok":
            break
        signer = EventSigner(signer_key, cam.site, cam.name, clip_start=start)
        lines = []
        for a in rec.record["acts"]:
            evidence = a.get("evidence_sha256")
            act = Act(
                kind=a["kind"],
                camera=a["camera"],
                zone=a["zone"],
                object_class=a["object_class"],
                box=tuple(a["box"]),
                severity=a["severity"],
                t_release=a["t_release"],
                t_notify=a["t_notify"],
                litter_id=offset + a["litter_id"],
                frame_index=a["frame_index"],
                snapshot=(out / "evidence" / f"{evidence}.jpg").read_bytes() if evidence else None,
                also=tuple((offset + x["litter_id"], x["severity"]) for x in a.get("also", [])),
            )
            event, state = signer.sign(act, state)
            lines.append(_json_bytes(event, line=True, sort=False))
        offset += max((a["litter_id"] for a in _all_items(rec.record["acts"])), default=0)
        write_atomic(out / "recordings" / rec.name / "events.jsonl", b"".join(lines))
        rec.record = {**rec.record, "start_time": rfc3339(start), "events": len(lines)}
        chain.extend(lines)
    path = out / "events" / f"{cam.name}.jsonl"
    write_atomic(path, b"".join(chain))
    return {cam.name: {"file": f"events/{cam.name}.jsonl", "events": len(chain), "last_seq": state.seq}}


def _all_items(acts: list[dict]) -> list[dict]:
    return [*acts, *(x for a in acts for x in a.get("also", []))]


def _chain_order(opts: AuditOptions, recordings: list[Recording]) -> list[tuple[Recording, datetime]]:
    """Recordings of the camera in chain order with their start times: with --start-time,
    path order, back to back from that time; else each container's own start time."""
    usable = [r for r in recordings if r.probe and not r.probe.error]
    if opts.start_time is not None:
        out, t = [], opts.start_time
        for r in usable:
            out.append((r, t))
            t = t + timedelta(seconds=r.probe.duration_s)
        return out
    timed = [(datetime.fromisoformat(r.probe.start_time.replace("Z", "+00:00")), str(r.path), r) for r in usable]
    return [(r, t.astimezone(UTC)) for t, _, r in sorted(timed, key=lambda x: (x[0], x[1]))]


# -- files -----------------------------------------------------------------------------------------------


def _json_bytes(obj, line: bool = False, sort: bool = True) -> bytes:
    if line:
        return (json.dumps(obj, separators=(",", ":"), sort_keys=sort) + "\n").encode()
    return (json.dumps(obj, indent=1, sort_keys=sort) + "\n").encode()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or cut short by a crash before the rename: do it again


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers (and a rerun after a
    crash) see the old file or the whole new one, never part of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C or a full disk halfway: leave no partial file behind
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror}") from None


def _write_run_info(out: Path, engine: Engine, wall: float, video_s: float, recordings, interrupted: bool) -> None:
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = {
        "engine": engine.name,
        "jobs": engine.jobs,
        "wall_s": round(wall, 3),
        "video_s_analysed": round(video_s, 3),
        "video_hours_per_wall_hour": round(video_s / wall, 2) if wall > 0 else None,
        "recordings": len(recordings),
        "done_before": sum(r.done_before for r in recordings),
        "failed": sum(r.status == "error" for r in recordings),
        "interrupted": interrupted,
        "peak_rss_mb": {"driver": round(rss_self, 1), "largest_local_worker": round(rss_children, 1)},
    }
    write_atomic(out / "run.json", _json_bytes(info))


class _Progress:
    """Two bars on stderr: recordings finished, and hours of video analysed."""

    def __init__(self, files: int, show: bool) -> None:
        from tqdm import tqdm

        self.files = tqdm(total=files, unit="file", desc="recordings", disable=not show, position=0, file=sys.stderr)
        self.hours = tqdm(
            total=0.0,
            unit="h",
            desc="video",
            disable=not show,
            position=1,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} h [{elapsed}<{remaining}]",
        )

    def set_hours(self, total: float) -> None:
        self.hours.total = total
        self.hours.refresh()

    def file_done(self) -> None:
        self.files.update(1)

    def video(self, seconds: float) -> None:
        self.hours.update(seconds / 3600)

    def close(self) -> None:
        self.hours.close()
        self.files.close()
