"""The edge's HTTP sink uploads each delivered event's blurred snapshot to a real backend,
which keeps it because the accepted event names it and serves it to viewers."""

from __future__ import annotations

import hashlib

from helpers import Chain, make_keys, running_backend, write_config

from detector.sinks.http import HttpSink


def test_snapshots_follow_their_events(tmp_path):
    ks = make_keys(tmp_path, "cam")
    cfg = write_config(tmp_path / "backend.yaml", {"cam": ks["cam"][1]})
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    jpegs = [b"\xff\xd8\xff\xe0" + bytes([k]) * 500 for k in range(3)]
    for j in jpegs:
        (evidence / f"{hashlib.sha256(j).hexdigest()}.jpg").write_bytes(j)
    c = Chain.of(ks["cam"][0], "cam")
    evs = [c.event("littering", "kerb", litter=k, evidence=j) for k, j in enumerate(jpegs)]
    evs.append(c.event("littering", "kerb", litter=9))  # no snapshot
    purged = c.event("littering", "kerb", litter=10, evidence=b"\xff\xd8\xff gone")  # its file is gone
    with running_backend(cfg) as b:
        sink = HttpSink(b.url, evidence_dir=evidence)
        assert sink.deliver(evs + [purged]).delivered == 5
        assert sink.evidence_uploaded == 3
        for j in jpegs:
            r = b.client.get(f"/v1/evidence/{hashlib.sha256(j).hexdigest()}")
            assert r.status_code == 200 and r.content == j
        shown = [e["evidence_sha256"] for e in b.zone("kerb").json()["recent"]]
        assert sum(1 for s in shown if s) == 4  # every act names its snapshot; three are there to show
        # a batch the backend stops part-way: only the acknowledged events' snapshots go up
        late = [b"\xff\xd8\xff\xe1" + bytes([k]) * 300 for k in range(2)]
        for j in late:
            (evidence / f"{hashlib.sha256(j).hexdigest()}.jpg").write_bytes(j)
        ok = c.event("littering", "kerb", litter=20, evidence=late[0])
        c.event("littering", "kerb", litter=21)  # never sent: the next is refused (seq_gap)
        refused = c.event("littering", "kerb", litter=22, evidence=late[1])
        result = sink.deliver([ok, refused])
        assert result.delivered == 1 and "seq_gap" in result.error
        assert b.client.get(f"/v1/evidence/{hashlib.sha256(late[0]).hexdigest()}").status_code == 200
        assert b.client.get(f"/v1/evidence/{hashlib.sha256(late[1]).hexdigest()}").status_code == 404
        sink.close()
