"""`detector replay` checks its inputs before it resolves and loads a model: a bad clip, or signed
events without a start time, fail in a second with their own one-line error. These runs have
no model at all (offline, empty cache), so an error about the model would mean the order broke.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from detector.protocol import keys
from detector.replay import container_start_time


def write_clip(path: Path, creation_time: str | None = None, frames: int = 6) -> Path:
    """A short real MP4 (MPEG-4 part 2, which every FFmpeg build encodes), with or without a creation_time."""
    with av.open(str(path), "w", format="mp4") as out:
        if creation_time is not None:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream("mpeg4", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), 40 * i % 255, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return path


@pytest.fixture
def replay_without_models(tmp_path, monkeypatch, capsys):
    """`detector replay ARGS` in this process (a subprocess would re-import OpenCV each time),
    offline, with no model directory and an empty cache: returns (exit code, stderr)."""
    from detector.cli import main

    monkeypatch.delenv("DETECTOR_MODEL_DIR", raising=False)
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path / "empty-cache"))

    def run(*args: str) -> tuple[int, str]:
        code = main(["replay", "--no-progress", *args])
        return code, capsys.readouterr().err

    return run


def test_creation_time_is_read_from_the_container(tmp_path):
    stamped = write_clip(tmp_path / "stamped.mp4", "2026-11-26T08:00:00.000000Z")
    assert container_start_time(stamped) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert container_start_time(write_clip(tmp_path / "plain.mp4")) is None
    # A zero time is a muxer's placeholder, not when anything was recorded.
    assert container_start_time(write_clip(tmp_path / "zero.mp4", "1970-01-01T00:00:00Z")) is None
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    assert container_start_time(junk) is None


@pytest.mark.parametrize(
    "content, message",
    [(None, "clip not found"), (b"", "file is empty"), (b"\x00garbage" * 500, "cannot open as video")],
)
def test_a_bad_clip_fails_before_the_model_is_looked_for(tmp_path, replay_without_models, content, message):
    clip = tmp_path / "clip.mp4"
    if content is not None:
        clip.write_bytes(content)
    code, err = replay_without_models(str(clip))
    assert code == 2 and message in err and "yolox" not in err, err
    assert len(err.strip().splitlines()) == 1


def test_signed_events_need_a_start_time_the_clip_lacks(tmp_path, replay_without_models):
    keys.generate("cam", tmp_path / "keys")
    signed = ["--events", str(tmp_path / "e.jsonl"), "--key", str(tmp_path / "keys" / "cam.key")]
    plain = str(write_clip(tmp_path / "plain.mp4"))
    code, err = replay_without_models(plain, *signed)
    assert code == 2 and "--start-time" in err and "creation_time" in err and "yolox" not in err, err
    assert not (tmp_path / "e.jsonl").exists()
    # With a start time, or a clip that carries one, the inputs pass and only the model is missing.
    stamped = str(write_clip(tmp_path / "stamped.mp4", "2026-11-26T08:00:00Z"))
    for args in ([plain, *signed, "--start-time", "2026-11-26T08:00:00Z"], [stamped, *signed]):
        code, err = replay_without_models(*args)
        assert code == 2 and "yolox-nano" in err and "DETECTOR_OFFLINE" in err, err
