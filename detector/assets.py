"""Find model files and sample clips the way a real tool does, from a manifest.

Lookup order for an entry of a manifest (name, file, url, sha256, size):
  1. an explicit path given by the user;
  2. a directory named by an environment variable (searched recursively; a file matches
     by sha256, found by file name first, then by size);
  3. the user cache (`$DETECTOR_CACHE_DIR`, else `$XDG_CACHE_HOME/detector`, else ~/.cache/detector);
  4. a download from the entry's official URL into the cache, checked against the sha256.
Offline with nothing found, the error names the asset, its URL and the variable to set.
`DETECTOR_OFFLINE=1` forbids step 4 (an air-gapped site, or a test that must not reach out).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from detector.protocol.errors import UserError

OFFLINE_VAR = "DETECTOR_OFFLINE"


def offline() -> bool:
    """True when downloads are forbidden: an air-gapped site should fail at once, not wait for a timeout."""
    return os.environ.get(OFFLINE_VAR, "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class AssetEntry:
    kind: str  # "model" or "sample", for messages and the cache layout
    name: str
    file: str
    sha256: str
    url: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Resolution:
    path: Path | None
    how: str  # "explicit", "env", "cache", "download" or "missing"


def cache_dir() -> Path:
    if os.environ.get("DETECTOR_CACHE_DIR"):
        return Path(os.environ["DETECTOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "detector"


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def _search_dir(entry: AssetEntry, root: Path) -> Path | None:
    if not root.is_dir():
        return None
    files = sorted(p for p in root.rglob("*") if p.is_file())
    by_name = [p for p in files if p.name == entry.file]
    by_size = [p for p in files if entry.size is not None and p.name != entry.file and p.stat().st_size == entry.size]
    for candidate in by_name + by_size:
        if sha256_of(candidate) == entry.sha256:
            return candidate
    return None


def locate(entry: AssetEntry, env_var: str, explicit: Path | None = None) -> Resolution:
    """Find an entry without downloading it."""
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"{entry.kind} file not found: {explicit}")
        return Resolution(explicit, "explicit")
    env_dir = os.environ.get(env_var)
    if env_dir:
        found = _search_dir(entry, Path(env_dir))
        if found is not None:
            return Resolution(found, "env")
    cached = cache_dir() / f"{entry.kind}s" / entry.file
    if cached.is_file() and sha256_of(cached) == entry.sha256:
        return Resolution(cached, "cache")
    return Resolution(None, "missing")


def download(entry: AssetEntry, env_var: str, timeout_s: float = 30.0, quiet: bool = False) -> Path:
    """Download an entry into the cache and check its sha256; raises UserError when impossible."""
    hint = f"put {entry.file} in a directory and set {env_var} to it"
    if not entry.url:
        raise UserError(f"{entry.kind} '{entry.name}' ({entry.file}) was not found and has no download URL: {hint}")
    if offline():
        raise UserError(
            f"{entry.kind} '{entry.name}' ({entry.file}) was not found and {OFFLINE_VAR} forbids its download "
            f"from {entry.url}: {hint}"
        )
    target = cache_dir() / f"{entry.kind}s" / entry.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        # a download takes a while: say so (the root logger's last-resort handler writes to stderr)
        logging.getLogger(__name__).warning("downloading %s '%s' from %s", entry.kind, entry.name, entry.url)
    try:
        with (
            urllib.request.urlopen(entry.url, timeout=timeout_s) as resp,
            tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp,
        ):
            shutil.copyfileobj(resp, tmp)
            tmp_path = Path(tmp.name)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(
            f"{entry.kind} '{entry.name}' ({entry.file}) is not available offline and its download "
            f"from {entry.url} failed ({reason}): {hint}"
        ) from None
    got = sha256_of(tmp_path)
    if got != entry.sha256:
        tmp_path.unlink(missing_ok=True)
        raise UserError(
            f"{entry.kind} '{entry.name}': download from {entry.url} has sha256 {got}, expected {entry.sha256}"
        )
    os.replace(tmp_path, target)
    return target


def resolve(entry: AssetEntry, env_var: str, explicit: Path | None = None, allow_download: bool = True) -> Path:
    found = locate(entry, env_var, explicit)
    if found.path is not None:
        return found.path
    if not allow_download:
        raise UserError(
            f"{entry.kind} '{entry.name}' ({entry.file}) not found: put it in a directory and set {env_var}"
        )
    return download(entry, env_var)
