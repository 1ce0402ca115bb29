"""`detector run --check` finds what would fail at run time, one line each, without running."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from detector.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"


def test_example_site_passes(model_dir, footage_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # its var/ directories are made here
    data = yaml.safe_load(EXAMPLE.read_text())
    data["metrics"]["port"] = 0
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(tmp_path / "site.yaml"), "--check"]) == 0
    assert ": ok, site 'depot-north'" in capsys.readouterr().err


def test_what_would_fail_at_run_time_fails_the_check(model_dir, footage_dir, tmp_path, capsys):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "gate.key").write_text("not a key\n")
    (tmp_path / "blocked").write_text("a file where a directory should be\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        site = {
            "site": "s",
            "cameras": [
                {"name": "gate", "url": str(footage_dir / "porch_bottle_drop_bad2.mp4")},
                {"name": "yard", "url": str(tmp_path / "missing.mp4")},
                {"name": "lane", "url": str(footage_dir / "aboda_video4.avi"), "detector": {"model": "no-such-model"}},
            ],
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(keys)},
            "privacy": {"evidence_dir": str(tmp_path / "blocked" / "evidence")},
            "metrics": {"port": busy.getsockname()[1]},
        }
        (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
        assert main(["run", "--config", str(tmp_path / "site.yaml"), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    text = "\n".join(err)
    assert "camera 'yard': url: clip not found" in text
    assert "no-such-model" in text
    assert "camera 'gate': key:" in text
    assert "privacy.evidence_dir" in text
    assert "metrics: cannot listen" in text
    assert "camera 'gate': url" not in text and "ok, site" not in text
    assert len(err) == 5, err
