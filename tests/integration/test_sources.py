"""File sources on real clips: stream timestamps, decimation, GIF, portrait, bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.protocol.errors import UserError
from detector.sources import FileSource


def times(path: Path, fps: float | None) -> list[float]:
    return [f.time_s for f in FileSource(path, fps)]


def test_crowd_clip_uses_stream_timestamps(footage_dir):
    """OpenCV reports 50 fps for 25 fps content; frame/fps would give 6.8 s instead of ~13.8 s."""
    t = times(footage_dir / "crowd_overhead_vtest.avi", None)
    assert len(t) == 341
    assert 13.0 < t[-1] < 14.0
    assert all(b > a for a, b in zip(t, t[1:]))
    assert np.median(np.diff(t)) == pytest.approx(0.04, abs=0.002)


def test_decimation_to_analysis_rate(footage_dir):
    all_t = times(footage_dir / "aboda_video4.avi", None)
    five = times(footage_dir / "aboda_video4.avi", 5.0)
    assert len(all_t) == 1169
    assert all_t[0] == 0.0 and all_t[-1] == pytest.approx(38.97, abs=0.05)
    assert len(five) == pytest.approx(39 * 5, abs=2)
    assert np.median(np.diff(five)) == pytest.approx(0.2, abs=0.01)
    assert set(five) <= set(all_t)  # decimation picks frames, never invents times


def test_pets_avi_timestamps_are_monotonic(footage_dir):
    t = times(footage_dir / "pets2009_vtest_480x360.avi", None)
    assert len(t) == 795
    assert all(b > a for a, b in zip(t, t[1:]))
    assert t[-1] == pytest.approx(79.4, abs=0.2)


def test_gif_and_portrait(footage_dir):
    gif = list(FileSource(footage_dir / "indoor_bottle_throw_trash_0001.gif", 5.0))
    assert gif[0].image.shape == (150, 200, 3) and gif[0].image.dtype == np.uint8
    assert gif[-1].time_s == pytest.approx(8.2, abs=0.06)
    portrait = next(iter(FileSource(footage_dir / "porch_bottle_drop_bad2.mp4", 5.0)))
    assert portrait.image.shape == (850, 478, 3)
    assert portrait.size == (478, 850)


def test_max_seconds(footage_dir):
    t = times(footage_dir / "aboda_video4.avi", 5.0)
    short = [f.time_s for f in FileSource(footage_dir / "aboda_video4.avi", 5.0, max_seconds=3.0)]
    assert short == [x for x in t if x <= 3.0]


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="clip not found"):
        FileSource(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        FileSource(empty)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError):
        list(FileSource(junk))


def test_truncated_file_is_a_clear_error(tmp_path, footage_dir):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((footage_dir / "porch_bottle_drop_bad2.mp4").read_bytes()[:4000])
    with pytest.raises(UserError, match="cut.mp4"):
        list(FileSource(cut))


@pytest.mark.parametrize("content", [b"", b"garbage" * 1000])
def test_cli_bad_clip_exit_code_2_without_traceback(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    for clip in (bad, tmp_path / "missing.mp4"):
        r = subprocess.run([sys.executable, "-m", "detector", "replay", str(clip)], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("detector: error:")
