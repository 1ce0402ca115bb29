"""Shared fixtures: where the real models and footage live (DETECTOR_MODEL_DIR / DETECTOR_SAMPLE_DIR).

CI points both at ../shared; on a user's machine without them the tests that need them skip
with a reason instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _dir_from_env(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = _dir_from_env("DETECTOR_MODEL_DIR")
    if path is None:
        pytest.skip("needs the ONNX models: set DETECTOR_MODEL_DIR (CI uses ../shared/models)")
    return path


@pytest.fixture(scope="session")
def footage_dir() -> Path:
    path = _dir_from_env("DETECTOR_SAMPLE_DIR")
    if path is None:
        pytest.skip("needs the sample footage: set DETECTOR_SAMPLE_DIR (CI uses ../shared/footage)")
    return path
