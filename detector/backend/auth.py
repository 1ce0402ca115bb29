"""Read auth: API keys with roles, and dashboard sessions.

An API key is 32 random bytes (urlsafe base64, prefixed `dk_`); only its sha256 is stored.
A fast hash is enough here: the key is random, so there is no dictionary to try, and a slow
KDF would only cost every request. Roles are ordered: viewer (read) < operator (also void
acts) < admin (also manage camera keys).

The dashboard logs in with an API key and then carries a session cookie (HttpOnly,
SameSite=Strict; Secure under TLS); only the session token's hash is stored. Forms that
change something carry a CSRF token derived from the session token, which a page from
another origin cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from detector.backend.store import LedgerStore, User
from detector.protocol.errors import UserError

if TYPE_CHECKING:
    from detector.backend.readview import ReadView

ROLES = ("viewer", "operator", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SESSION_COOKIE = "detector_session"


def new_key() -> str:
    return "dk_" + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"csrf\0" + session_token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def add_user(store: LedgerStore, name: str, role: str) -> str:
    """Create a user; returns its API key (shown once, never stored)."""
    if not NAME_RE.match(name):
        raise UserError(f"user name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ -")
    if role not in RANK:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    key = new_key()
    try:
        store.add_user(name, role, key_hash(key))
    except ValueError as e:
        raise UserError(str(e)) from None
    return key


class AuthError(Exception):
    """401 (no or unknown credentials) or 403 (a role too low)."""

    def __init__(self, status: int, reason: str, detail: str, page: bool = False):
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.page = page


@dataclass(frozen=True)
class Principal:
    user: User
    session_token: str | None = None  # set when authenticated by the dashboard's cookie

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_token) if self.session_token else ""


class Authenticator:
    def __init__(self, store: LedgerStore, session_hours: float, secure_cookie: bool, view: ReadView | None = None):
        self.store = store
        self.session_seconds = session_hours * 3600
        self.secure_cookie = secure_cookie
        self.view = view  # PostgreSQL: users cached per process (bounded age, see readview)

    def _user(self, key: str) -> User | None:
        h = key_hash(key)
        if self.view is None:
            return self.store.user_by_key_hash(h)
        gen, read_at = self.view.users_gen(), time.monotonic()
        user = self.store.user_by_key_hash(h)
        if user is not None:
            self.view.put_user(h, user, gen, read_at)
        return user

    def cached(self, request: Request, role: str) -> Principal | None:
        """The bearer key's principal from the per-process cache, without the database (None:
        not cached, call `require`). Raises AuthError when the role is too low."""
        key = self._bearer(request)
        user = self.view.user(key_hash(key)) if key is not None and self.view is not None else None
        if user is None:
            return None
        if RANK[user.role] < RANK[role]:
            raise AuthError(403, "forbidden", f"needs the {role} role (you are {user.role})")
        return Principal(user)

    def _bearer(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def principal(self, request: Request, allow_cookie: bool) -> Principal | None:
        key = self._bearer(request)
        if key is not None:
            user = self._user(key)
            return Principal(user) if user else None
        token = request.cookies.get(SESSION_COOKIE) if allow_cookie else None
        if token:
            user = self.store.session_user(key_hash(token), time.time())
            return Principal(user, token) if user else None
        return None

    def require(self, request: Request, role: str, page: bool = False, allow_cookie: bool = True) -> Principal:
        p = self.principal(request, allow_cookie)
        if p is None:
            has = self._bearer(request) is not None or (allow_cookie and request.cookies.get(SESSION_COOKIE))
            detail = "the API key or session is not valid" if has else "an API key is required"
            raise AuthError(401, "unauthorized", detail, page)
        if RANK[p.user.role] < RANK[role]:
            raise AuthError(403, "forbidden", f"needs the {role} role (you are {p.user.role})", page)
        return p

    def log_in(self, key: str) -> tuple[User, str] | None:
        """A new session for the user of `key`: (user, session token) or None."""
        user = self.store.user_by_key_hash(key_hash(key))
        if user is None:
            return None
        token = secrets.token_urlsafe(32)
        self.store.add_session(key_hash(token), user.name, time.time() + self.session_seconds)
        return user, token

    def check_csrf(self, p: Principal, token: str) -> None:
        if p.session_token is None:
            return  # an API key in a header is not sent by browsers on their own
        if not hmac.compare_digest(p.csrf, token or ""):
            raise AuthError(403, "csrf", "the form is stale or not from this site: reload the page", page=True)
