"""Camera signing keys: Ed25519 key files, key ids, loading with one-line errors.

Private keys are PKCS#8 PEM (unencrypted, file mode 0600); public keys are
SubjectPublicKeyInfo PEM. Wherever a public key is configured it may also be given inline
as the base64 (standard or url-safe) of the 32 raw key bytes. The key id is the first 16 hex
digits of sha256 over the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from detector.protocol.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
KEYID_RE = re.compile(r"^[0-9a-f]{16}$")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def is_keyid(text: str) -> bool:
    return bool(KEYID_RE.fullmatch(text))


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode("ascii")


def generate(camera: str, out_dir: Path) -> tuple[Path, Path, str]:
    """Write `<camera>.key` (0600) and `<camera>.pub` into out_dir; returns paths and key id."""
    if not _NAME.match(camera):
        raise UserError(f"camera name {camera!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create directory: {e.strerror}") from None
    key_path, pub_path = out_dir / f"{camera}.key", out_dir / f"{camera}.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise UserError(f"{p}: already exists; refusing to overwrite a key")
    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        # O_EXCL + mode at creation: the private key is never readable by others, not even briefly.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(key_path, 0o600)
        pub_path.write_bytes(pub)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot write key files: {e.strerror}") from None
    return key_path, pub_path, keyid(priv)


def _read_key_file(path: Path, where: str, what: str, missing_hint: str = "") -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{where}: {what} not found{missing_hint}") from None
    except OSError as e:
        raise UserError(f"{where}: cannot read {what}: {e.strerror}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    data = _read_key_file(path, str(path), "key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise UserError(f"{path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{path}: not an Ed25519 private key")
    return key


def _from_b64(text: str) -> Ed25519PublicKey | None:
    t = text.strip()
    try:
        raw = base64.b64decode(
            t + "=" * (-len(t) % 4), altchars=b"-_" if ("-" in t or "_" in t) else None, validate=True
        )
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_key(spec: str | Path, base_dir: Path | None = None, origin: str | None = None) -> Ed25519PublicKey:
    """A public key from a PEM file (relative paths resolve against base_dir) or inline base64.

    A private key file is accepted too (its public half is used), so `--pubkey camera.key`
    works for a quick check.
    """
    where = origin or str(spec)
    text = str(spec)
    if isinstance(spec, str):
        inline = _from_b64(text)
        if inline is not None:
            return inline
    path = Path(text)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    data = _read_key_file(path, where, f"public key file {path}", " (nor inline base64 of 32 bytes)")
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: {path} is not a PEM key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{where}: {path} is not an Ed25519 key")
    return key
