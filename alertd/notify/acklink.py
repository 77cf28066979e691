"""Signed, expiring acknowledge links for mail: ``{public_url}/ack/{token}``.

A notification's ``ack_url`` lets its reader acknowledge the incident from the mail. The token
names the incident and an expiry and is signed with the listener's ack secret:

    v1.{incident id}.{expires_at}.{signature}

The signature is the first 16 bytes (128 bits) of HMAC-SHA256(secret, ``alertd-ack`` NUL
``v1`` NUL ``{id}.{expires_at}``) in unpadded base64url, 22 characters; numbers are plain
decimal without leading zeros, so a token has exactly one spelling. The token is URL-safe
(digits, letters, ``.``, ``-``, ``_``) and about 40 characters long. It is a capability:
whoever holds it may acknowledge that one incident until it expires, so it is never logged.

``ack_routes`` serves the page behind the link. A GET only shows a confirm button (mail
scanners and link previews follow links, so a GET must never acknowledge); the POST from that
button verifies the token again and acknowledges.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

log = logging.getLogger(__name__)

VERSION = "v1"
_DOMAIN = b"alertd-ack\x00" + VERSION.encode() + b"\x00"
_SIG_BYTES = 16
_NUMBER = re.compile(r"0|[1-9][0-9]{0,18}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{22}")
_MAX_TOKEN = 80
WHO = "email link"  # the ``who`` passed to ``on_ack``

Problem = Literal["malformed", "version", "signature", "expired"]


class AckTokenError(ValueError):
    """An acknowledge token that must not be honoured; ``problem`` says why."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


def make_ack_token(secret: bytes, incident_id: int, expires_at: int) -> str:
    """Return a URL-safe token that acknowledges ``incident_id`` until ``expires_at``.

    ``expires_at`` is a Unix time in whole seconds. Raises ``ValueError`` for an empty secret
    or a negative or non-integer id or expiry.
    """
    if not secret:
        raise ValueError("ack secret is empty")
    for name, value in (("incident_id", incident_id), ("expires_at", expires_at)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    payload = f"{incident_id}.{expires_at}"
    return f"{VERSION}.{payload}.{_sign(secret, payload)}"


def verify_ack_token(secret: bytes, token: str, now: float) -> int:
    """Return the incident id ``token`` acknowledges, if it is genuine and not expired at ``now``.

    Raises ``AckTokenError`` (a ``ValueError``) saying whether the token is malformed, of an
    unknown version, not signed with ``secret`` (tampered, or made with another secret), or
    expired. The signature is checked before the expiry, in constant time.
    """
    if not secret:
        raise ValueError("ack secret is empty")
    parts = token.split(".") if len(token) <= _MAX_TOKEN else []
    if len(parts) != 4:
        raise AckTokenError("malformed", "malformed acknowledge link")
    version, id_text, expiry_text, signature = parts
    if version != VERSION:
        raise AckTokenError("version", "acknowledge link of an unknown version")
    if not (
        _NUMBER.fullmatch(id_text)
        and _NUMBER.fullmatch(expiry_text)
        and _SIGNATURE.fullmatch(signature)
    ):
        raise AckTokenError("malformed", "malformed acknowledge link")
    expected = _sign(secret, f"{id_text}.{expiry_text}")
    if not hmac.compare_digest(expected, signature):
        raise AckTokenError("signature", "acknowledge link with a bad signature")
    if now >= int(expiry_text):
        raise AckTokenError("expired", "acknowledge link has expired")
    return int(id_text)


def ack_url(public_url: str, token: str) -> str:
    """Return the link to put in a mail: ``{public_url}/ack/{token}``."""
    return f"{public_url.rstrip('/')}/ack/{token}"


def _sign(secret: bytes, payload: str) -> str:
    mac = hmac.new(secret, _DOMAIN + payload.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


# -- the page behind the link --------------------------------------------------------------------

OnAck = Callable[[int, str], Awaitable[str] | str]

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
}


def ack_routes(
    secret_for: Callable[[], bytes | None],
    on_ack: OnAck,
    *,
    now: Callable[[], float] = time.time,
    state_of: Callable[[int], str | None] = lambda incident_id: None,
) -> list[web.RouteDef]:
    """Return the aiohttp routes of the acknowledge page.

    ``GET /ack/{token}`` shows the incident number and a button that POSTs to the same URL;
    it acknowledges nothing; for an incident that ``state_of`` says is acknowledged or
    resolved already it says so, with no button. ``POST /ack/{token}`` verifies the token and calls
    ``on_ack(incident_id, "email link")``, then shows the text it returns (escaped). A bad,
    tampered or expired token gets a 403 page saying which; without a secret
    (``secret_for()`` returns None or empty: links are off) the page is a 404. ``secret_for``
    is called per request, so a reload that changes the secret applies at once.
    """

    def check(request: web.Request) -> int | web.Response:
        secret = secret_for()
        if not secret:
            return _page(404, "Not found", "Acknowledge links are not enabled.")
        try:
            return verify_ack_token(secret, request.match_info["token"], now())
        except AckTokenError as exc:
            log.info("acknowledge link refused: %s", exc)
            return _page(403, "This link cannot be used", f"{exc}.")

    async def show(request: web.Request) -> web.Response:
        checked = check(request)
        if isinstance(checked, web.Response):
            return checked
        state = state_of(checked)
        if state in ("acknowledged", "resolved"):
            return _page(200, f"Incident #{checked}", f"Incident #{checked} is {state} already.")
        button = (
            '<form method="post">'
            f'<button type="submit">Acknowledge incident #{checked}</button></form>'
        )
        return _page(200, f"Acknowledge incident #{checked}?", "", raw=button)

    async def confirm(request: web.Request) -> web.Response:
        checked = check(request)
        if isinstance(checked, web.Response):
            return checked
        try:
            result = on_ack(checked, WHO)
            text = result if isinstance(result, str) else await result
        except Exception:
            log.exception("acknowledge incident #%d from an email link failed", checked)
            return _page(500, f"Incident #{checked}", "Could not acknowledge: internal error.")
        return _page(200, f"Incident #{checked}", text)

    return [web.get("/ack/{token}", show), web.post("/ack/{token}", confirm)]


def _page(status: int, title: str, text: str, *, raw: str = "") -> web.Response:
    """Return a small HTML page; ``title`` and ``text`` are escaped, ``raw`` is not."""
    body = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + (f"<p>{html.escape(text)}</p>\n" if text else "")
        + (f"{raw}\n" if raw else "")
        + "</body>\n</html>\n"
    )
    return web.Response(
        status=status, text=body, content_type="text/html", charset="utf-8", headers=_HEADERS
    )
