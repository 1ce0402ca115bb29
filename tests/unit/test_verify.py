"""`detector verify`: signatures and chain of an audit log, one-line verdicts and exit codes."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import act, detector_cmd

from detector import signer
from detector.cli import main
from detector.protocol import events, keys


@pytest.fixture()
def log(tmp_path):
    key_path, pub_path, _ = keys.generate("cam1", tmp_path)
    acts = [act(i, "cam1", f"z{i % 2}", severity=("small", "bag")[i % 2]) for i in range(12)]
    path = tmp_path / "events.jsonl"
    events.write_jsonl(signer.sign_acts(acts, key_path, "s1", "cam1"), path)
    return path, pub_path


def _rewrite(path, fn):
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines = fn(lines)
    path.write_bytes(b"".join(events.canonical(e) + b"\n" for e in lines))


def test_ok_in_a_real_process(log):
    path, pub = log
    r = subprocess.run(detector_cmd("verify", str(path), "--pubkey", str(pub)), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 12 events, chain intact") and "/sites/s1/cameras/cam1" in r.stdout
    assert len(r.stdout.strip().splitlines()) == 1


def test_tampered_record_is_named(log, capsys):
    path, pub = log

    def tamper(ls):
        ls[4]["data"]["points"] = -1
        return ls

    _rewrite(path, tamper)
    assert main(["verify", str(path), "--pubkey", str(pub)]) == 1
    out = capsys.readouterr().out.strip()
    assert out.startswith("FAIL: record 5 (line 5): bad_signature"), out


@pytest.mark.parametrize(
    "fn, reason, index",
    [
        (lambda ls: ls[:3] + ls[4:], "seq_gap", 4),
        (lambda ls: ls[:3] + [ls[4], ls[3]] + ls[5:], "seq_gap", 4),
        (lambda ls: ls[:5] + [ls[2]] + ls[5:], "replayed_seq", 6),
        (lambda ls: ls[1:], "seq_gap", 1),
    ],
)
def test_broken_chain(log, capsys, fn, reason, index):
    path, pub = log
    _rewrite(path, fn)
    assert main(["verify", str(path), "--pubkey", str(pub)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL: record {index} ") and reason in out, out


def test_wrong_key_bad_json_and_unreadable(log, tmp_path, capsys):
    path, pub = log
    _, other_pub, _ = keys.generate("other", tmp_path / "o")
    assert main(["verify", str(path), "--pubkey", str(other_pub)]) == 1
    assert "key_mismatch" in capsys.readouterr().out
    with open(path, "a") as f:
        f.write("{not json\n")
    assert main(["verify", str(path), "--pubkey", str(pub)]) == 1
    assert "record 13 (line 13): malformed" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.jsonl"), "--pubkey", str(pub)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and len(err.strip().splitlines()) == 1
    assert main(["verify", str(path), "--pubkey", str(tmp_path / "nokey.pub")]) == 2


@pytest.mark.parametrize("site, reason", [("s1", "prevhash_mismatch"), ("s2", "source_changed")])
def test_validly_signed_record_from_another_chain(log, capsys, site, reason):
    """Right key, right seq, valid signature, but another history (or another source)."""
    path, pub = log
    other = list(
        signer.sign_acts([act(100 + i, "cam1", "z9") for i in range(4)], pub.with_suffix(".key"), site, "cam1")
    )
    _rewrite(path, lambda ls: ls[:3] + [other[3]] + ls[4:])
    assert main(["verify", str(path), "--pubkey", str(pub)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL: record 4 (line 4): {reason}"), out


def test_times_going_back_and_a_chain_resigned_under_a_new_key(tmp_path, capsys):
    from datetime import UTC, datetime

    from detector.protocol.events import event_hash

    key_path, pub_path, _ = keys.generate("cam1", tmp_path)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    first = list(signer.sign_acts([act(i, "cam1") for i in range(3)], key_path, "s1", "cam1", clip_start=start))
    # the rest of the chain re-signed under a new key, linked to the last event of the first key
    new_key, new_pub, _ = keys.generate("cam1-new", tmp_path)
    state = signer.ChainState(3, event_hash(first[-1]), {}, events.check_envelope(first[-1]).time_ms)
    rest = list(signer.sign_acts([act(3, "cam1")], new_key, "s1", "cam1", clip_start=start, state=state))
    path = tmp_path / "e.jsonl"
    events.write_jsonl(first + rest, path)
    assert main(["verify", str(path), "--pubkey", str(pub_path)]) == 1
    assert "record 4 (line 4): key_mismatch" in capsys.readouterr().out
    assert main(["verify", str(path), "--pubkey", str(pub_path), "--pubkey", str(new_pub)]) == 0
    assert capsys.readouterr().out.startswith("OK: 4 events")
    # a later event of the chain dated before the one it follows
    back = list(
        signer.sign_acts(
            [act(9, "cam1")],
            key_path,
            "s1",
            "cam1",
            clip_start=datetime(2026, 2, 1, tzinfo=UTC),
            state=signer.ChainState(3, event_hash(first[-1])),
        )
    )
    events.write_jsonl(first + back, path)
    assert main(["verify", str(path), "--pubkey", str(pub_path)]) == 1
    assert "record 4 (line 4): time_backwards" in capsys.readouterr().out
