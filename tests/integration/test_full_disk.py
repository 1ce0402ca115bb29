"""A really full disk: the backend's ledger on a 2 MiB tmpfs that a filler file fills up. The
backend answers 503 storage_full (never a bare 500), /healthz says so, and both recover when
room is made. Mounting needs root; elsewhere the test skips (the unit tier's
test_backend_storage.py covers the same path with SQLite's max_page_count)."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import BackendProcess, act, make_keys, write_config

from detector import signer


@pytest.fixture()
def tmpfs(tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_gives_503_and_unhealthy_until_room_is_made(tmp_path, tmpfs):
    ks = make_keys(tmp_path, "cam")
    cfg = write_config(tmp_path / "backend.yaml", {"cam": ks["cam"][1]}, db=str(tmpfs / "ledger.sqlite3"))
    evs = list(signer.sign_acts([act(i, "cam", "z") for i in range(3000)], ks["cam"][0], "s1", "cam"))
    b = BackendProcess(cfg).start()
    try:
        # leave about 100 KiB free: a few dozen batches fit, then the disk is full
        free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
        filler = tmpfs / "filler"
        filler.write_bytes(b"\0" * max(0, free - 100 * 1024))
        sent, r = 0, None
        while sent < len(evs):
            r = b.post(evs[sent : sent + 20])
            if r.status_code != 200:
                break
            sent += 20
        assert r is not None and r.status_code == 503, r.text
        body = r.json()
        assert body["reason"] == "storage_full" and "full" in body["detail"], body
        sent += body["accepted"]  # the events before the refusal in that batch went in
        h = b.client.get("/healthz")
        assert h.status_code == 503 and h.json()["reason"] == "storage_full", h.text
        filler.unlink()  # room again
        r = b.post(evs[sent : sent + 20])
        assert r.status_code == 200, r.text
        assert b.client.get("/healthz").status_code == 200
        assert b.ledger_count() == sent + 20
    finally:
        b.stop()
