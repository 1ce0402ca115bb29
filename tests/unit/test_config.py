"""Strict YAML settings: unknown keys and wrong types name the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from detector.config import Settings, load_settings
from detector.protocol.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_need_no_file():
    s = load_settings(None)
    assert s.source.analysis_fps == 5.0 and s.detector.model == "yolox-nano"
    assert "person" in s.detector.classes and "bottle" in s.detector.classes


def test_example_configs_are_valid():
    for path in sorted((ROOT / "configs").glob("camera*.yaml")):
        assert isinstance(load_settings(path), Settings)


def test_empty_file_is_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == Settings()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("detector:\n  modle: yolox-nano\n", r"cfg.yaml: detector.modle: unknown key"),
        ("source:\n  analysis_fps: fast\n", r"cfg.yaml: source.analysis_fps: .*number"),
        ("source:\n  analysis_fps: -1\n", r"cfg.yaml: source.analysis_fps: .*greater than 0"),
        ("camera:\n  zones:\n    - {id: a, polygon: [[0, 0], [1, 1]]}\n", r"camera.zones.0.polygon"),
        ("nonsense: 1\n", r"cfg.yaml: nonsense: unknown key"),
        ("- just\n- a list\n", r"expected a mapping"),
        ("detector: [unclosed\n", r"invalid YAML at line"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path, text, expected):
    with pytest.raises(UserError, match=expected):
        load_settings(write(tmp_path, text))


def test_duplicate_zone_ids(tmp_path):
    text = (
        "camera:\n  zones:\n    - {id: a, polygon: [[0,0],[9,0],[9,9]]}\n    - {id: a, polygon: [[0,0],[5,0],[5,5]]}\n"
    )
    with pytest.raises(UserError, match="duplicate zone ids"):
        load_settings(write(tmp_path, text))


def test_cli_reports_config_errors_in_one_line(tmp_path):
    cfg = write(tmp_path, "tracker:\n  lost_track_buffer_s: soon\n")
    r = subprocess.run(
        [sys.executable, "-m", "detector", "replay", "x.mp4", "--config", str(cfg)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.startswith("detector: error:") and "tracker.lost_track_buffer_s" in r.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "detector", "replay", "x.mp4", "--config", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "config file not found" in missing.stderr
