"""Model and sample resolution: explicit path > env dir > cache > download (checked by sha256)."""

from __future__ import annotations

import hashlib
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from detector.assets import AssetEntry, download, locate, resolve
from detector.models import get_spec, load_manifest
from detector.protocol.errors import UserError

PAYLOAD = b"pretend model bytes " * 100


def entry(url: str | None = None, sha: str | None = None) -> AssetEntry:
    return AssetEntry("model", "toy", "toy.onnx", sha or hashlib.sha256(PAYLOAD).hexdigest(), url, len(PAYLOAD))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TOY_DIR", raising=False)
    monkeypatch.delenv("DETECTOR_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www; `requests` lists the paths asked for."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *a):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def test_env_dir_searched_recursively_by_name_then_sha(tmp_path, cache, monkeypatch):
    deep = tmp_path / "models" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "renamed.bin").write_bytes(PAYLOAD)  # matched by size + sha256, not name
    (tmp_path / "models" / "toy.onnx").write_bytes(b"x" * len(PAYLOAD))  # right name, wrong bytes
    monkeypatch.setenv("TOY_DIR", str(tmp_path / "models"))
    found = locate(entry(), "TOY_DIR")
    assert found.how == "env" and found.path == deep / "renamed.bin"


def test_explicit_path_wins_and_must_exist(tmp_path, cache, monkeypatch):
    # A valid copy in the env folder and one in the cache: the explicit file still wins.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "toy.onnx").write_bytes(PAYLOAD)
    monkeypatch.setenv("TOY_DIR", str(tmp_path / "models"))
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "toy.onnx").write_bytes(PAYLOAD)
    f = tmp_path / "mine.onnx"
    f.write_bytes(b"anything")
    found = locate(entry(), "TOY_DIR", explicit=f)
    assert found.how == "explicit" and found.path == f
    with pytest.raises(UserError, match="not found"):
        locate(entry(), "TOY_DIR", explicit=tmp_path / "missing.onnx")


def test_download_into_cache_then_found_there(cache, http_root):
    root, base, requests = http_root
    (root / "toy.onnx").write_bytes(PAYLOAD)
    path = resolve(entry(f"{base}/toy.onnx"), "TOY_DIR")
    assert path == cache / "models" / "toy.onnx" and path.read_bytes() == PAYLOAD
    assert locate(entry(f"{base}/toy.onnx"), "TOY_DIR").how == "cache"
    assert requests == ["/toy.onnx"]


def test_offline_switch_forbids_the_download(cache, http_root, monkeypatch):
    """DETECTOR_OFFLINE=1: the file is there to be downloaded, yet no request is made."""
    root, base, requests = http_root
    (root / "toy.onnx").write_bytes(PAYLOAD)
    monkeypatch.setenv("DETECTOR_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        resolve(entry(f"{base}/toy.onnx"), "TOY_DIR")
    msg = str(err.value)
    assert "DETECTOR_OFFLINE" in msg and f"{base}/toy.onnx" in msg and "TOY_DIR" in msg and "\n" not in msg
    assert requests == [] and not (cache / "models" / "toy.onnx").exists()
    monkeypatch.setenv("DETECTOR_OFFLINE", "0")  # an explicit 0 means online
    assert resolve(entry(f"{base}/toy.onnx"), "TOY_DIR").read_bytes() == PAYLOAD
    assert requests == ["/toy.onnx"]


def test_download_with_wrong_sha_is_refused_and_not_kept(cache, http_root):
    root, base, _ = http_root
    (root / "toy.onnx").write_bytes(b"tampered")
    with pytest.raises(UserError, match="expected"):
        download(entry(f"{base}/toy.onnx"), "TOY_DIR", quiet=True)
    assert not (cache / "models" / "toy.onnx").exists()
    assert not list((cache / "models").glob("*.part"))


def test_offline_message_names_model_url_and_variable(cache):
    url = "http://127.0.0.1:9/toy.onnx"  # discard port: connection refused, like being offline
    with pytest.raises(UserError) as err:
        resolve(entry(url), "TOY_DIR")
    msg = str(err.value)
    assert "toy" in msg and url in msg and "TOY_DIR" in msg and "\n" not in msg


def test_manifest_is_consistent():
    specs = load_manifest()
    assert get_spec("yolox-nano").family == "yolox"
    for spec in specs.values():
        assert len(spec.sha256) == 64 and spec.licence
        if spec.task == "detect":
            assert len(spec.classes) == 80 and spec.classes[0] == "person" and spec.classes[39] == "bottle"
    assert {s.family for s in specs.values()} >= {"yolox", "nanodet", "ultralytics", "yunet"}


def test_manifest_names_mirrors_as_mirrors():
    """A shipped model's `url` is the publisher's own file (host: upstream, and the upstream
    names the url's repository and commit) or a mirror (whose repository is not the upstream)."""
    for spec in load_manifest().values():
        assert spec.url and spec.source.host in ("upstream", "mirror"), spec.name
        owner, repo, commit = re.search(
            r"github(?:usercontent)?\.com/(?:media/)?([^/]+)/([^/]+)/(?:raw/)?([0-9a-f]{40})/", spec.url
        ).groups()
        names_it = f"{owner}/{repo}@{commit[:7]}" in spec.source.upstream
        assert names_it == (spec.source.host == "upstream"), f"{spec.name}: {spec.source}"
        assert spec.source.relation
    assert load_manifest()["yolox-nano"].source.host == "mirror"


def test_export_without_the_optional_extra_is_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    try:
        import ultralytics  # noqa: F401

        pytest.skip("ultralytics is installed here; this checks the edge-box install without it")
    except ImportError:
        pass
    weights = tmp_path / "yolo11n.pt"
    weights.write_bytes(b"checkpoint")
    r = subprocess.run(
        [sys.executable, "-m", "detector", "models", "export", str(weights)], capture_output=True, text=True
    )
    assert r.returncode == 2 and "pip install -e '.[export]'" in r.stderr and "Traceback" not in r.stderr
