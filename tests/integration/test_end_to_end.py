"""The whole product on real parts: a file camera under `detector run`, signed events through
the SQLite outbox over HTTP to a real backend process, and the zone ledger going down at the
littering and back up at the clean-up; the evidence stored for each act is face-blurred and
its hash is in the event."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys

import pytest
import yaml
from helpers import free_port, running_backend, wait_until

from detector.protocol import keys


@pytest.mark.slow
def test_camera_to_zone_ledger(tmp_path, footage_dir, model_dir):
    key_dir = tmp_path / "keys"
    keys.generate("sidewalk", key_dir)
    backend_cfg = tmp_path / "backend.yaml"
    backend_cfg.write_text(
        yaml.safe_dump({"db": "ledger.sqlite3", "keys": {"/sites/e2e/cameras/sidewalk": str(key_dir / "sidewalk.pub")}})
    )
    with running_backend(backend_cfg) as backend:
        site = {
            "site": "e2e",
            "cameras": [
                {
                    "name": "sidewalk",
                    "url": str(footage_dir / "aboda_video4_cycle.mp4"),
                    "realtime": False,
                    "zones": [
                        {"id": "kerb", "polygon": [[400, 300], [720, 300], [720, 480], [400, 480]]},
                        {"id": "path", "polygon": [[0, 0], [720, 0], [720, 300], [400, 300], [400, 480], [0, 480]]},
                    ],
                }
            ],
            "privacy": {"evidence_dir": str(tmp_path / "evidence")},
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(key_dir)},
            "delivery": {"url": backend.url, "backoff_initial_s": 0.2, "backoff_max_s": 1},
            "metrics": {"port": free_port()},
        }
        (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
        log = open(tmp_path / "run.log", "w+")
        run = subprocess.Popen(
            [sys.executable, "-m", "detector", "run", "--config", str(tmp_path / "site.yaml")],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            # The bag lies in the kerb zone: littering takes its points off, clean-up gives them back.
            assert wait_until(lambda: backend.ledger_count() >= 2, timeout=150), open(tmp_path / "run.log").read()[
                -3000:
            ]
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(30)
        zone = backend.zone("kerb", site="e2e").json()
        entries = sorted(zone["recent"], key=lambda e: e["entry"])
        assert [e["kind"] for e in entries] == ["littering", "cleanup"], zone
        assert entries[0]["points"] < 0 and entries[1]["points"] == -entries[0]["points"]
        assert zone["score"] == 1000 and zone["grade"] == "A", zone
        # Nothing happened on the path: it has no ledger at all.
        assert backend.zone("path", site="e2e").status_code == 404
        events = {e["event_id"] for e in entries}
        # The acts' blurred snapshots followed their events, and the camera sent its view (a blurred
        # reference frame and its zones) for the dashboard's zone map.
        for e in entries:
            url = f"/v1/evidence/{e['evidence_sha256']}"
            assert wait_until(lambda url=url: backend.client.get(url).status_code == 200, timeout=20), url
        views = backend.client.get("/v1/sites/e2e/views").json()["views"]
        assert [v["source"] for v in views] == ["/sites/e2e/cameras/sidewalk"], views
        assert {z["id"] for z in views[0]["zones"]} == {"kerb", "path"}
        frame = backend.client.get(f"/v1/evidence/{views[0]['frame_sha256']}")
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"

    # Evidence: each act stored a blurred JPEG named by its sha256, and the events carry those hashes.
    jpegs = {hashlib.sha256(j.read_bytes()).hexdigest(): j for j in (tmp_path / "evidence").rglob("*.jpg")}
    assert len(jpegs) >= 2 and all(h in j.name for h, j in jpegs.items())
    with sqlite3.connect(tmp_path / "outbox" / "sidewalk.db") as db:
        sent = [json.loads(row[0]) for row in db.execute("SELECT body FROM events ORDER BY seq")]
    assert {e["id"] for e in sent} == events
    assert all(e["data"]["evidence_sha256"] in jpegs for e in sent)
