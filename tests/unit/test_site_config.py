"""Site configs: every mistake is one line naming the camera and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detector.cli import main
from detector.config import load_site, validate_site
from detector.protocol.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"


def site(*cameras, **sections) -> dict:
    return {"site": "s1", "cameras": list(cameras), **sections}


def error_of(data: dict) -> str:
    with pytest.raises(UserError) as e:
        validate_site(data, "site.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_example_config_is_valid():
    s = load_site(EXAMPLE)
    assert [c.name for c in s.cameras] == ["sidewalk", "plaza"]
    assert not s.mqtt.enabled
    plaza = s.camera_settings(s.cameras[1])
    assert plaza.detector.score_threshold == 0.35 and plaza.detector.threads == 1
    assert plaza.camera.name == "plaza" and plaza.camera.site == "depot-north"


def test_camera_overrides_merge_over_site_pipeline():
    s = validate_site(
        site(
            {"name": "a", "url": "a.mp4", "analysis_fps": 3, "tracker": {"lost_track_buffer_s": 5}},
            {"name": "b", "url": "b.mp4", "zones": [{"id": "z", "polygon": [[0, 0], [10, 0], [10, 10]]}]},
            pipeline={"detector": {"threads": 2}, "tracker": {"lost_track_buffer_s": 1}},
        ),
        "site.yaml",
    )
    a, b = (s.camera_settings(c) for c in s.cameras)
    assert a.source.analysis_fps == 3 and a.tracker.lost_track_buffer_s == 5 and a.detector.threads == 2
    assert b.tracker.lost_track_buffer_s == 1 and [z.id for z in b.camera.zones] == ["z"]


def test_unknown_camera_key():
    msg = error_of(site({"name": "gate", "url": "x.mp4", "colour": "red"}))
    assert msg.startswith("site.yaml: camera 'gate': colour: unknown key")


def test_unknown_key_inside_a_camera_section():
    msg = error_of(site({"name": "gate", "url": "x.mp4", "detector": {"treshold": 0.3}}))
    assert "camera 'gate'" in msg and "detector.treshold" in msg and "unknown key" in msg


def test_wrong_type_names_camera_and_key():
    msg = error_of(site({"name": "ok", "url": "a.mp4"}, {"name": "gate", "url": "x.mp4", "analysis_fps": -1}))
    assert "camera 'gate'" in msg and "analysis_fps" in msg


def test_polygon_with_too_few_points():
    msg = error_of(site({"name": "gate", "url": "x.mp4", "zones": [{"id": "z", "polygon": [[0, 0], [1, 1]]}]}))
    assert "camera 'gate'" in msg and "zones.0.polygon" in msg


def test_self_intersecting_and_degenerate_polygons():
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]
    msg = error_of(site({"name": "gate", "url": "x.mp4", "zones": [{"id": "z", "polygon": bowtie}]}))
    assert "camera 'gate'" in msg and "zones.z.polygon" in msg and "cross" in msg
    line = [[0, 0], [5, 5], [10, 10]]
    assert "zero area" in error_of(site({"name": "gate", "url": "x.mp4", "zones": [{"id": "z", "polygon": line}]}))


def test_duplicate_camera_names_and_missing_cameras():
    msg = error_of(site({"name": "gate", "url": "a.mp4"}, {"name": "gate", "url": "b.mp4"}))
    assert msg == "site.yaml: camera 'gate': name: duplicate camera name"
    assert "at least one camera" in error_of({"site": "s1"})
    assert "camera #1" in error_of(site({"url": "a.mp4"}))  # no name


def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "site.yaml"
    bad.write_text(yaml.safe_dump(site({"name": "gate", "url": "x.mp4", "fps": 5})))
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "camera 'gate': fps: unknown key" in err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_unreachable_cameras_at_start_get_one_line_naming_camera_and_key(tmp_path):
    import socket

    from detector.supervisor import preflight

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    s = validate_site(
        site(
            {"name": "gate", "url": f"rtsp://user:secret@127.0.0.1:{port}/cam"},
            {"name": "yard", "url": str(tmp_path / "missing.mp4")},
        ),
        "site.yaml",
    )
    rtsp, missing = (preflight(c, timeout_s=1) for c in s.cameras)
    assert rtsp.startswith(f"camera 'gate': url: cannot reach 127.0.0.1:{port}") and "secret" not in rtsp
    assert missing.startswith("camera 'yard': url: clip not found") and "\n" not in missing


SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def test_zones_are_per_camera_unless_shared_on_each():
    # two cameras naming one zone: refused unless both say it is shared
    msg = error_of(
        site(
            {"name": "a", "url": "a.mp4", "zones": [{"id": "entrance", "polygon": SQUARE}]},
            {"name": "b", "url": "b.mp4", "zones": [{"id": "entrance", "polygon": SQUARE, "shared": True}]},
        )
    )
    assert "zone 'entrance' is used by cameras 'a' and 'b'" in msg and "shared: true" in msg
    s = validate_site(
        site(
            {"name": "a", "url": "a.mp4", "zones": [{"id": "entrance", "polygon": SQUARE, "shared": True}]},
            {"name": "b", "url": "b.mp4", "zones": [{"id": "entrance", "polygon": SQUARE, "shared": True}]},
        ),
        "site.yaml",
    )
    assert [z.shared for c in s.cameras for z in c.zones] == [True, True]
    # a camera without zones has one named after itself, which another camera cannot reuse
    msg = error_of(
        site({"name": "a", "url": "a.mp4"}, {"name": "b", "url": "b.mp4", "zones": [{"id": "a", "polygon": SQUARE}]})
    )
    assert "zone 'a' is used by cameras 'a' and 'b'" in msg


def test_default_zone_is_named_after_the_camera():
    from detector.zones import ZoneMap

    s = validate_site(site({"name": "a", "url": "a.mp4"}, {"name": "b", "url": "b.mp4"}), "site.yaml")
    zones = [ZoneMap(s.camera_settings(c).camera) for c in s.cameras]
    assert [z.zone_of(5, 5) for z in zones] == ["a", "b"] and [z.ids for z in zones] == [["a"], ["b"]]
