"""`detector audit PATH...`: the recordings named by files, folders and glob patterns.

Folders are walked recursively. Only video files (by extension) are recordings; anything
else found is skipped with a one-line notice. A path that is neither a file, a folder nor a
pattern matching something is an error: a typo must not silently audit nothing.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from detector.protocol.errors import UserError

# Containers that cameras, NVRs and exports write (and FFmpeg reads).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .ts .mts .m2ts .mpg .mpeg .wmv .asf .flv .3gp .gif".split()
    + ".h264 .h265 .hevc .dav .mjpeg".split()
)


@dataclass
class Inputs:
    recordings: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one notice per file that is not a video


def collect(paths: list[str]) -> Inputs:
    """Recordings in a stable order (sorted by path), each once."""
    found: set[Path] = set()
    out = Inputs()
    for text in paths:
        p = Path(text)
        if p.is_dir():
            candidates = _walk(p)
        elif p.is_file():
            candidates = [p]
        elif glob.has_magic(text):
            candidates = [Path(m) for m in glob.glob(text, recursive=True)]
            if not candidates:
                raise UserError(f"{text}: no file matches this pattern")
            candidates = [c for m in candidates for c in (_walk(m) if m.is_dir() else [m])]
        else:
            raise UserError(f"{text}: no such file or folder")
        for c in candidates:
            if c.name.startswith("."):
                continue  # hidden files: editor and OS droppings, partial downloads
            if c.suffix.lower() not in VIDEO_SUFFIXES:
                out.skipped.append(f"{c}: not a video file (by its extension), skipped")
                continue
            found.add(c)
    out.recordings = sorted(found, key=str)
    out.skipped = sorted(set(out.skipped))
    if not out.recordings:
        raise UserError(f"no video file found in {' '.join(paths)}")
    return out


def _walk(p: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(p) for name in names]
