"""`detector replay` end to end on real clips: annotated video, track log, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import cv2


def replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector", "replay", *args], capture_output=True, text=True)


def test_help_lists_command_groups():
    r = subprocess.run([sys.executable, "-m", "detector", "--help"], capture_output=True, text=True, check=True)
    for group in ("replay", "models", "samples"):
        assert group in r.stdout


def test_replay_writes_tracks_and_video_deterministically(tmp_path, footage_dir, model_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("source:\n  max_seconds: 22\n")
    outs = []
    for run in ("a", "b"):
        video, tracks = tmp_path / f"{run}.mp4", tmp_path / f"{run}.jsonl"
        r = replay(
            str(footage_dir / "aboda_video4.avi"), "--config", str(cfg), "--video", str(video), "--tracks", str(tracks)
        )
        assert r.returncode == 0, r.stderr
        assert "real time" in r.stdout
        assert r.stderr == ""  # no progress bar when not on a terminal
        outs.append((video.read_bytes(), tracks.read_bytes()))
    assert outs[0] == outs[1]

    records = [json.loads(ln) for ln in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert abs(len(records) - 22 * 5) <= 1
    assert [r["t"] for r in records] == sorted(r["t"] for r in records)
    # The man walks in at ~9 s, sets the bag down at ~13 s and walks off: one person, followed.
    with_person = [r for r in records if any(t["class"] == "person" for t in r["tracks"])]
    assert 8.5 < with_person[0]["t"] < 11.0
    assert len([r for r in records if 10 <= r["t"] <= 21 and any(t["class"] == "person" for t in r["tracks"])]) > 45
    ids = {t["id"] for r in records if 14 <= r["t"] <= 21 for t in r["tracks"] if t["class"] == "person"}
    assert len(ids) <= 2, ids  # one track while he walks off (allow one switch when he stands by the bag)
    early = [r for r in records if r["t"] < 8]
    assert all(not r["tracks"] for r in early)  # nobody there: no false tracks on the empty street

    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == len(records)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (720, 480)


def test_replay_gif_and_portrait(tmp_path, footage_dir, model_dir):
    for clip in ("indoor_bottle_throw_trash_0001.gif", "porch_bottle_drop_bad2.mp4"):
        r = replay(str(footage_dir / clip), "--tracks", str(tmp_path / "t.jsonl"))
        assert r.returncode == 0, r.stderr
        lines = (tmp_path / "t.jsonl").read_text().splitlines()
        assert len(lines) > 30
        assert any(t["class"] == "person" for ln in lines for t in json.loads(ln)["tracks"])


def test_unwritable_output_is_one_line(tmp_path, footage_dir, model_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = replay(str(footage_dir / "indoor_bottle_throw_trash_0001.gif"), "--tracks", str(blocker / "x.jsonl"))
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_replay_signed_audit_events_are_byte_identical_and_verify(tmp_path, footage_dir, model_dir):
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "detector", "keys", "generate", "--camera", "cam", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    outs = []
    for run in ("a", "b"):
        events = tmp_path / f"{run}.events.jsonl"
        r = replay(
            str(footage_dir / "aboda_video4.avi"),
            "--events",
            str(events),
            "--key",
            str(keys / "cam.key"),
            "--acts",
            str(tmp_path / f"{run}.acts.jsonl"),
            "--start-time",
            "2026-11-26T08:00:00Z",
        )
        assert r.returncode == 0, r.stderr
        outs.append(events.read_bytes())
    assert outs[0] == outs[1] and outs[0]
    acts = [json.loads(ln) for ln in (tmp_path / "a.acts.jsonl").read_text().splitlines()]
    events = [json.loads(ln) for ln in outs[0].decode().splitlines()]
    assert [e["data"]["act"] for e in events] == [a["kind"] for a in acts]
    assert events[0]["time"].startswith("2026-11-26T08:00:")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "verify",
            str(tmp_path / "a.events.jsonl"),
            "--pubkey",
            str(keys / "cam.pub"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    forged = tmp_path / "forged.jsonl"
    forged.write_text(outs[0].decode().replace('"points":-', '"points":-1', 1))
    bad = subprocess.run(
        [sys.executable, "-m", "detector", "verify", str(forged), "--pubkey", str(keys / "cam.pub")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stdout.startswith("FAIL: record 1") and "signature" in bad.stdout


def test_replay_events_needs_a_usable_key(tmp_path, footage_dir):
    r = replay(str(footage_dir / "aboda_video4.avi"), "--events", str(tmp_path / "e.jsonl"))
    assert r.returncode == 2 and "--key" in r.stderr
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    r = replay(str(footage_dir / "aboda_video4.avi"), "--events", str(tmp_path / "e.jsonl"), "--key", str(junk))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_annotated_video_shows_no_face(tmp_path, footage_dir, model_dir):
    """The annotated video is stored evidence: YuNet finds faces in the source, none in the output."""
    from detector.privacy import FaceDetector

    faces = FaceDetector("yunet-dynamic", score_threshold=0.6)
    out = tmp_path / "hall.mp4"
    r = replay(str(footage_dir / "hall_bottle_drop_vid.mp4"), "--video", str(out))
    assert r.returncode == 0, r.stderr
    cap = cv2.VideoCapture(str(footage_dir / "hall_bottle_drop_vid.mp4"))
    ok, first = cap.read()
    assert len(faces.detect(first)[0]) >= 1  # the clip does show faces
    cap = cv2.VideoCapture(str(out))
    seen = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        seen += 1
        assert len(faces.detect(img)[0]) == 0, f"face visible in output frame {seen}"
    assert seen > 15


def test_replay_takes_event_times_from_the_clip_creation_time(tmp_path, footage_dir, model_dir):
    """A clip that carries its recording time needs no --start-time: the porch clip, remuxed
    (same packets) with a creation_time, signs its littering act at that time plus video time."""
    import av

    stamped = tmp_path / "porch_stamped.mp4"
    with av.open(str(footage_dir / "porch_bottle_drop_bad2.mp4")) as src, av.open(str(stamped), "w") as out:
        out.metadata["creation_time"] = "2026-11-26T08:00:00.000000Z"
        video = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "detector", "keys", "generate", "--camera", "cam", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    events = tmp_path / "e.jsonl"
    r = replay(
        str(stamped), "--events", str(events), "--key", str(keys / "cam.key"), "--acts", str(tmp_path / "a.jsonl")
    )
    assert r.returncode == 0, r.stderr
    assert "creation_time, 2026-11-26T08:00:00+00:00" in r.stdout
    acts = [json.loads(ln) for ln in (tmp_path / "a.jsonl").read_text().splitlines()]
    signed = [json.loads(ln) for ln in events.read_text().splitlines()]
    assert [e["data"]["act"] for e in signed] == [a["kind"] for a in acts] and "littering" in [a["kind"] for a in acts]
    for event, act in zip(signed, acts):
        when = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        assert abs((when - datetime(2026, 11, 26, 8, 0, tzinfo=UTC)).total_seconds() - act["t_notify"]) < 0.01
    ok = subprocess.run(
        [sys.executable, "-m", "detector", "verify", str(events), "--pubkey", str(keys / "cam.pub")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
