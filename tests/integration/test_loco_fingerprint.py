"""Leave-one-clip-out tool: its cache fingerprint covers exactly what a clip run imports (a real
interpreter imports the real pipeline; no model is loaded)."""

from __future__ import annotations

from pathlib import Path

from detector.bench import loco

PACKAGE = Path(loco.__file__).resolve().parents[1]


def test_fingerprint_covers_what_a_clip_run_imports_and_nothing_else():
    names = {p.relative_to(PACKAGE).as_posix() for p in loco.pipeline_sources()}
    assert {"pipeline.py", "sources.py", "bench/runner.py", "config/pipeline.py", "manifests/models.yaml"} <= names
    assert any(n.startswith(("acts", "scene")) for n in names)
    assert not any(n.startswith(("cli/", "backend/")) for n in names)
    assert not {"bench/report.py", "bench/loco.py", "bench/scoring.py"} & names
