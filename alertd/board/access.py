"""Who is using the board, and may they: sessions from cookies, token logins, CSRF checks.

A visitor without a valid session cookie gets a fresh, signed-out session (so even the login
form carries a CSRF token); logging in replaces it with a new one naming the token. Scopes
are the session's, cut down to what the token has now: a reload that takes a scope away
applies at once, and one that rotates or removes the token ends its sessions.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from alertd.api.auth import ANONYMOUS, Authorizer, token_hash
from alertd.board import session
from alertd.board.paths import PREFIX

VIEW_SCOPES = frozenset({"read", "respond", "admin"})  # any of them may see the board
ALL_SCOPES = frozenset({"read", "respond", "admin", "ingest"})


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is asking: their session, acting name and scopes (all of them on an open board)."""

    session: session.Session
    fresh: bool  # a new session: its cookie goes out with the response
    open: bool
    actor: str
    scopes: frozenset[str]
    csrf: str
    binding: str = ""  # the signed-in token's configured hash, which signs its session

    @property
    def can_view(self) -> bool:
        return self.open or bool(self.scopes & VIEW_SCOPES)


def identify(request: web.Request, auth: Authorizer, secret: bytes, now: float) -> Visitor:
    """Return the visitor behind ``request``'s session cookie (a fresh session if it has
    none, or a forged, expired or orphaned one)."""
    found: session.Session | None = None
    binding = ""
    cookie = request.cookies.get(session.COOKIE, "")
    name = session.peek_name(cookie) if cookie else None
    if name is not None:
        token = auth.tokens.get(name) if name else None
        if not name or token is not None:
            binding = token.sha256 if token is not None else ""
            found = session.decode(secret, cookie, binding, now)
    fresh = found is None
    if found is None:
        found, binding = session.new_session("", frozenset(), now), ""
    csrf = session.csrf_token(secret, found)
    if auth.open:
        return Visitor(found, fresh, True, ANONYMOUS, ALL_SCOPES, csrf)
    if not found.signed_in:
        return Visitor(found, fresh, False, "", frozenset(), csrf)
    scopes = found.scopes & frozenset(auth.tokens[found.name].scopes)
    return Visitor(found, fresh, False, found.name, scopes, csrf, binding)


def set_cookie(
    response: web.StreamResponse,
    secret: bytes,
    s: session.Session,
    binding: str,
    *,
    secure: bool,
) -> None:
    """Send ``s`` as the session cookie: HttpOnly, SameSite=Strict, only for ``/board``,
    Secure over https."""
    response.set_cookie(
        session.COOKIE,
        session.encode(secret, s, binding),
        max_age=session.LIFETIME,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def same_origin(request: web.Request) -> bool:
    """Return False when the browser says the request comes from another site.

    Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` with every form
    POST (Fetch, "append a request Origin header"), so "null" says nothing and
    ``Sec-Fetch-Site``, which that policy leaves alone, decides then. A client that sends
    neither header (curl, a test) relies on the CSRF token and the SameSite cookie alone."""
    origin = request.headers.get("Origin", "null")
    if origin != "null" and urlsplit(origin).netloc.lower() != request.host.lower():
        return False
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def lookup(auth: Authorizer, presented: str) -> tuple[str, frozenset[str]] | None:
    """Return the name and scopes of the configured token ``presented`` is (compared with
    every one, in constant time), or None."""
    digest = token_hash(presented)
    found: tuple[str, frozenset[str]] | None = None
    for name, token in auth.tokens.items():
        if hmac.compare_digest(digest, token.sha256):
            found = (name, frozenset(token.scopes))
    return found


def safe_next(target: str | None) -> str:
    """Return ``target`` if it is a path on the board, else the board's front page (no open
    redirects)."""
    if (
        target
        and target.startswith(f"{PREFIX}/")
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    ):
        return target
    return f"{PREFIX}/"


def redirect(location: str) -> web.Response:
    """Return a 303 See Other to ``location`` (after a POST, or to the login form)."""
    return web.Response(status=303, headers={"Location": location})
