"""Signed board sessions and their CSRF tokens: no server-side session store.

A session cookie names who is signed in, with which scopes, until when:

    v1.{payload}.{signature}

``payload`` is unpadded base64url of compact JSON ``{"i": id, "n": name, "s": scopes,
"e": expires_at}``; ``id`` is 16 random bytes (base64url), ``name`` the API token's name (""
before login), ``expires_at`` whole Unix seconds. The signature is HMAC-SHA256(secret,
``alertd-board-session`` NUL ``v1`` NUL payload NUL binding) in base64url, where ``binding``
is the signed-in token's configured SHA-256 (never the token itself, which the cookie never
holds): rotating or removing a token in ``server.yaml`` ends its sessions at the next request.

A form's CSRF token is HMAC-SHA256(secret, ``alertd-board-csrf`` NUL id), so it is tied to
one session and needs no storage; logging in starts a new session id (no fixation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

COOKIE = "alertd_board"
VERSION = "v1"
LIFETIME = 12 * 3600  # seconds a login lasts
_SESSION_DOMAIN = b"alertd-board-session\x00" + VERSION.encode() + b"\x00"
_CSRF_DOMAIN = b"alertd-board-csrf\x00"
_MAX_COOKIE = 1024


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: ``name`` is "" until someone logs in."""

    id: str
    name: str
    scopes: frozenset[str]
    expires_at: int

    @property
    def signed_in(self) -> bool:
        return bool(self.name)


def new_session(name: str, scopes: frozenset[str], now: float) -> Session:
    """Return a fresh session (a new random id) for ``name`` that lasts ``LIFETIME``."""
    return Session(_b64(secrets.token_bytes(16)), name, scopes, int(now) + LIFETIME)


def encode(secret: bytes, session: Session, binding: str = "") -> str:
    """Return the cookie value for ``session``; ``binding`` is the token's configured hash."""
    if not secret:
        raise ValueError("session secret is empty")
    data = {
        "i": session.id,
        "n": session.name,
        "s": sorted(session.scopes),
        "e": session.expires_at,
    }
    payload = _b64(json.dumps(data, separators=(",", ":")).encode())
    return f"{VERSION}.{payload}.{_sign(secret, payload, binding)}"


def peek_name(value: str) -> str | None:
    """Return the name an unverified cookie claims (to find its binding), or None."""
    data = _payload(value)
    return None if data is None else data[1]


def decode(secret: bytes, value: str, binding: str, now: float) -> Session | None:
    """Return the session in cookie ``value`` if its signature (with ``binding``) is genuine
    and it has not expired at ``now``; else None. The signature is checked first, in
    constant time."""
    if not secret or len(value) > _MAX_COOKIE:
        return None
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    if not hmac.compare_digest(_sign(secret, parts[1], binding), parts[2]):
        return None
    data = _payload(value)
    if data is None:
        return None
    session = Session(*data)
    return session if now < session.expires_at else None


def csrf_token(secret: bytes, session: Session) -> str:
    """Return the token a form of ``session`` must carry."""
    return _b64(hmac.new(secret, _CSRF_DOMAIN + session.id.encode(), hashlib.sha256).digest())


def csrf_ok(secret: bytes, session: Session, presented: str) -> bool:
    return hmac.compare_digest(csrf_token(secret, session), presented)


def load_or_create_key(path: Path) -> bytes:
    """Return the 32-byte key in ``path``, creating it (mode 0600) if it does not exist, so
    board logins survive a restart. Suggested home: the state directory."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key
    if len(data) < 32:
        raise ValueError(f"{path}: a session key needs 32 bytes, found {len(data)}")
    return data


def _payload(value: str) -> tuple[str, str, frozenset[str], int] | None:
    parts = value.split(".")
    if len(parts) != 3 or len(value) > _MAX_COOKIE:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    sid, name, scopes, expires = data.get("i"), data.get("n"), data.get("s"), data.get("e")
    if not (
        isinstance(sid, str)
        and isinstance(name, str)
        and isinstance(scopes, list)
        and all(isinstance(s, str) for s in scopes)
        and isinstance(expires, int)
        and not isinstance(expires, bool)
    ):
        return None
    return sid, name, frozenset(scopes), expires


def _sign(secret: bytes, payload: str, binding: str) -> str:
    message = _SESSION_DOMAIN + payload.encode() + b"\x00" + binding.encode()
    return _b64(hmac.new(secret, message, hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
