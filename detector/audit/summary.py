"""The run's summary: `summary.json` (for machines), `summary.md`, and `summary.html` (one
self-contained page: acts per recording and per zone, thumbnails of the blurred evidence, a
timeline per recording).

Only what the recordings and the configuration decide goes in (no wall times, no engine, no
job count), so the summary is byte-identical however the run was executed or resumed;
`run.json` has those.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from detector import __version__
from detector.audit.segments import SegmentRule
from detector.config import Settings
from detector.protocol.scoring import PointsConfig, SourceLitter

KINDS = ("littering", "cleanup")
COLOURS = {"littering": "#d62728", "cleanup": "#2ca02c"}
THUMB_WIDTH = 240


def write_summary(out: Path, recordings, settings: Settings, rule: SegmentRule, opts, skipped, events, digest) -> None:
    from detector.audit.run import _json_bytes, write_atomic

    data = build(recordings, settings, rule, opts, skipped, events, digest)
    for rec in recordings:
        if rec.status == "ok" and rec.record is not None and rec.name in data["_own_folder"]:
            write_atomic(out / "recordings" / rec.name / "timeline.png", timeline_png(rec, settings))
    del data["_own_folder"]
    write_atomic(out / "summary.json", _json_bytes(data))
    write_atomic(out / "summary.md", render_markdown(data).encode())
    write_atomic(out / "summary.html", render_html(data, out).encode())


def build(recordings, settings: Settings, rule: SegmentRule, opts, skipped, events, digest) -> dict[str, Any]:
    points = PointsConfig()
    zones: dict[str, Counter] = defaultdict(Counter)
    rows = []
    own_folder = set()
    first_of: dict[str, str] = {}
    for rec in recordings:
        row: dict[str, Any] = {"path": str(rec.path), "name": rec.name, "status": rec.status}
        if rec.probe and not rec.probe.error:
            row |= {
                "sha256": rec.probe.sha256,
                "bytes": rec.probe.size,
                "duration_s": round(rec.probe.duration_s, 3),
                "container_start_time": rec.probe.start_time,
            }
        if rec.error:
            row["error"] = rec.error
        if rec.status == "ok" and rec.record is not None:
            r = rec.record
            dup = first_of.setdefault(r["sha256"], rec.name)
            row |= {
                "video_s": r["video_s"],
                "segments": len(r["segments"]),
                "frames_analysed": r["frames_analysed"],
                "acts": _count(r["acts"]),
                "zones": {z: _count(acts) for z, acts in sorted(_by_zone(r["acts"]).items())},
            }
            if dup != rec.name:
                row["same_file_as"] = dup  # counted once
            else:
                own_folder.add(rec.name)
                row["files"] = {
                    "acts": f"recordings/{rec.name}/acts.jsonl",
                    "timeline": f"recordings/{rec.name}/timeline.png",
                } | ({"video": f"recordings/{rec.name}/annotated.mp4"} if r.get("video") else {})
                if "events" in r:
                    row["files"]["events"] = f"recordings/{rec.name}/events.jsonl"
                    row["start_time"] = r["start_time"]
                    row["events"] = r["events"]
                for zone, delta in _points(r["acts"], points).items():
                    zones[zone]["points"] += delta
                for a in r["acts"]:
                    zones[a["zone"]][a["kind"]] += 1
                row["act_list"] = [
                    {k: a[k] for k in ("kind", "t_notify", "zone", "object_class", "severity", "litter_id", "box")}
                    | ({"evidence": f"evidence/{a['evidence_sha256']}.jpg"} if a.get("evidence_sha256") else {})
                    for a in r["acts"]
                ]
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok" and "same_file_as" not in r]
    totals = {
        "recordings": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "unreadable": sum(r["status"] == "error" for r in rows),
        "not_done": sum(r["status"] == "not done" for r in rows),
        "video_hours": round(sum(r["video_s"] for r in ok) / 3600, 4),
        "littering": sum(r["acts"]["littering"] for r in ok),
        "cleanup": sum(r["acts"]["cleanup"] for r in ok),
    }
    return {
        "detector": __version__,
        "complete": totals["not_done"] == 0,
        "camera": {"site": settings.camera.site, "name": settings.camera.name},
        "config": {"path": str(opts.config) if opts.config else None, "digest": digest},
        "segmentation": rule.to_json(),
        "totals": totals,
        "zones": {
            z: {"littering": c["littering"], "cleanup": c["cleanup"], "points": c["points"]}
            for z, c in sorted(zones.items())
        },
        "recordings": rows,
        "skipped": list(skipped),
        "events": events,
        "_own_folder": own_folder,
    }


def _count(acts: list[dict]) -> dict[str, int]:
    return {k: sum(a["kind"] == k for a in acts) for k in KINDS}


def _by_zone(acts: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for a in acts:
        out[a["zone"]].append(a)
    return out


def _points(acts: list[dict], points: PointsConfig) -> dict[str, int]:
    """Each zone's points change, by the rule the signer and the backend use."""
    litter = SourceLitter()
    out: Counter = Counter()
    for a in acts:
        items = [(a["litter_id"], a["severity"])] + [(x["litter_id"], x["severity"]) for x in a.get("also", [])]
        for zone, delta in litter.apply(points, a["kind"], a["zone"], items).zone_deltas().items():
            out[zone] += delta
    return dict(out)


# -- plots and thumbnails ---------------------------------------------------------------------------------


def timeline_png(rec, settings: Settings) -> bytes:
    """One row per zone: when each act was notified (littering red, clean-up green)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acts = rec.record["acts"]
    duration = max(rec.record["video_s"], max((a["t_notify"] for a in acts), default=0.0), 1.0)
    unit, scale = ("h", 3600.0) if duration > 7200 else ("min", 60.0) if duration > 120 else ("s", 1.0)
    from detector.zones import ZoneMap

    zones = sorted({a["zone"] for a in acts} | set(ZoneMap(settings.camera).ids))
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * len(zones)), dpi=90, layout="constrained")
    for y, zone in enumerate(zones):
        ax.plot([0, duration / scale], [y, y], color="0.85", lw=1, zorder=0)
        for kind, marker in (("littering", "v"), ("cleanup", "^")):
            ts = [a["t_notify"] / scale for a in acts if a["zone"] == zone and a["kind"] == kind]
            ax.plot(ts, [y] * len(ts), ls="", marker=marker, ms=8, color=COLOURS[kind], mec="black", mew=0.5)
    ax.set_yticks(range(len(zones)), zones, fontsize=8)
    ax.set_ylim(-0.6, len(zones) - 0.4)
    ax.set_xlim(0, duration / scale)
    ax.set_xlabel(f"video time ({unit})", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(f"{rec.name}: {len(acts)} acts", fontsize=9, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def thumbnail(jpeg: bytes, box: list[int], kind: str) -> bytes:
    """A small copy of the (already blurred) evidence with the act's box drawn on it."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    colour = (40, 40, 214) if kind == "littering" else (44, 160, 44)
    cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), colour, max(2, w // 200))
    small = cv2.resize(image, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes()


# -- Markdown and HTML -------------------------------------------------------------------------------------


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _status(row: dict) -> str:
    if row["status"] == "error":
        return f"unreadable: {row['error']}"
    if row["status"] == "not done":
        return "not done (interrupted)"
    return f"same file as {row['same_file_as']}" if "same_file_as" in row else "ok"


def render_markdown(data: dict) -> str:
    t = data["totals"]
    lines = [
        "# Audit summary",
        "",
        f"{t['recordings']} recordings ({t['ok']} analysed, {t['unreadable']} unreadable, {t['not_done']} not done), "
        f"{t['video_hours']:.2f} h of video: **{t['littering']} littering**, **{t['cleanup']} clean-up** acts.  ",
        f"Camera `{data['camera']['site']}/{data['camera']['name']}`, config `{data['config']['path'] or 'defaults'}` "
        f"(digest {data['config']['digest'][:12]}), detector {data['detector']}.",
        "",
    ]
    if not data["complete"]:
        lines += ["**Incomplete run**: rerun the same command to finish it.", ""]
    lines += ["## Zones", "", "| zone | littering | clean-up | points |", "|---|---:|---:|---:|"]
    for z, c in data["zones"].items():
        lines.append(f"| {z} | {c['littering']} | {c['cleanup']} | {c['points']:+d} |")
    lines += [
        "",
        "## Recordings",
        "",
        "| recording | length | littering | clean-up | status |",
        "|---|---:|---:|---:|---|",
    ]
    for r in data["recordings"]:
        acts = r.get("acts", {})
        length = _hms(r["video_s"]) if "video_s" in r else "-"
        lines.append(
            f"| `{r['path']}` | {length} | {acts.get('littering', '-')} | {acts.get('cleanup', '-')} | "
            f"{_status(r).replace('|', '/')} |"
        )
    for r in data["recordings"]:
        if not r.get("act_list"):
            continue
        lines += ["", f"### {r['name']}", "", f"![timeline]({r['files']['timeline']})", ""]
        lines += ["| time | act | zone | object | severity | evidence |", "|---:|---|---|---|---|---|"]
        for a in r["act_list"]:
            ev = f"[jpg]({a['evidence']})" if "evidence" in a else "-"
            lines.append(
                f"| {_hms(a['t_notify'])} | {a['kind']} | {a['zone']} | {a['object_class']} | {a['severity']} | {ev} |"
            )
    if data["skipped"]:
        lines += ["", "## Skipped (not video files)", ""] + [f"- {s}" for s in data["skipped"]]
    if data["events"]:
        lines += ["", "## Signed events", ""]
        for cam, e in data["events"].items():
            lines.append(
                f"- `{e['file']}`: {e['events']} events of camera {cam}, one hash chain (seq 1..{e['last_seq']})"
            )
    seg = data["segmentation"]
    lines += [
        "",
        f"Segments of {seg['segment_s']:g} s, each warmed up on the {seg['overlap_s']:g} s before it "
        f"(acts near a boundary merged within {seg['margin_s']:g} s).",
    ]
    return "\n".join(lines) + "\n"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right}.err{color:#b00}.warn{background:#fff3cd;padding:.5em 1em}
.acts{display:flex;flex-wrap:wrap;gap:.8em}.act{width:240px;font-size:12px}.act img{display:block;width:240px}
.littering{color:#d62728}.cleanup{color:#2ca02c}h3{margin-top:2em}
"""


def render_html(data: dict, out: Path) -> str:
    e = html.escape
    t = data["totals"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Audit summary</title>",
        f"<style>{_CSS}</style></head><body><h1>Audit summary</h1>",
        f"<p>{t['recordings']} recordings ({t['ok']} analysed, {t['unreadable']} unreadable, {t['not_done']} "
        f"not done), {t['video_hours']:.2f} h of video: <b class='littering'>{t['littering']} littering</b>, "
        f"<b class='cleanup'>{t['cleanup']} clean-up</b> acts. Camera {e(data['camera']['site'])}/"
        f"{e(data['camera']['name'])}, detector {e(data['detector'])}.</p>",
    ]
    if not data["complete"]:
        parts.append("<p class='warn'>Incomplete run: rerun the same command to finish it.</p>")
    parts.append("<h2>Zones</h2><table><tr><th>zone</th><th class=n>littering</th><th class=n>clean-up</th>")
    parts.append("<th class=n>points</th></tr>")
    for z, c in data["zones"].items():
        parts.append(
            f"<tr><td>{e(z)}</td><td class=n>{c['littering']}</td><td class=n>{c['cleanup']}</td>"
            f"<td class=n>{c['points']:+d}</td></tr>"
        )
    parts.append("</table><h2>Recordings</h2><table><tr><th>recording</th><th class=n>length</th>")
    parts.append("<th class=n>littering</th><th class=n>clean-up</th><th>status</th></tr>")
    for r in data["recordings"]:
        acts = r.get("acts", {})
        cls = " class=err" if r["status"] != "ok" else ""
        length = _hms(r["video_s"]) if "video_s" in r else "-"
        parts.append(
            f"<tr><td>{e(r['path'])}</td><td class=n>{length}</td><td class=n>{acts.get('littering', '-')}</td>"
            f"<td class=n>{acts.get('cleanup', '-')}</td><td{cls}>{e(_status(r))}</td></tr>"
        )
    parts.append("</table>")
    for r in data["recordings"]:
        if "files" not in r:
            continue
        parts.append(f"<h3>{e(r['name'])}</h3>")
        png = (out / r["files"]["timeline"]).read_bytes()
        parts.append(f"<img alt='timeline' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        if r["act_list"]:
            parts.append("<div class='acts'>")
            for a in r["act_list"]:
                img = ""
                if "evidence" in a:
                    thumb = thumbnail((out / a["evidence"]).read_bytes(), a["box"], a["kind"])
                    img = f"<img alt='evidence' src='data:image/jpeg;base64,{base64.b64encode(thumb).decode()}'>"
                parts.append(
                    f"<div class='act'>{img}<b class='{a['kind']}'>{a['kind']}</b> at {_hms(a['t_notify'])}, "
                    f"zone {e(a['zone'])}: {e(a['object_class'])} ({a['severity']})</div>"
                )
            parts.append("</div>")
    if data["skipped"]:
        parts.append("<h2>Skipped (not video files)</h2><ul>")
        parts += [f"<li>{e(s)}</li>" for s in data["skipped"]]
        parts.append("</ul>")
    if data["events"]:
        parts.append("<h2>Signed events</h2><ul>")
        for cam, ev in data["events"].items():
            parts.append(
                f"<li>{e(ev['file'])}: {ev['events']} events of camera {e(cam)}, one hash chain "
                f"(seq 1..{ev['last_seq']})</li>"
            )
        parts.append("</ul>")
    seg = data["segmentation"]
    parts.append(
        f"<p>Segments of {seg['segment_s']:g} s, each warmed up on the {seg['overlap_s']:g} s before it "
        f"(acts near a boundary merged within {seg['margin_s']:g} s).</p></body></html>"
    )
    return "\n".join(parts) + "\n"
