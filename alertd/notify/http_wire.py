"""The vocabulary of alertd's HTTP/1.1 client: what a request is, how it is encoded, what
an answer is, and each way it can fail (a ``WireError`` saying whether the server may have
the request). The pool and the protocol that move the bytes are ``http_pool``; ``http.py``
turns these into the channels' error classification.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from multidict import CIMultiDictProxy

_DEFAULT_PORTS = {"http": 80, "https": 443}
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class WireError(Exception):
    """No answer to a request. ``sent`` says whether the server may have any of it."""

    sent = True


class InvalidUrl(WireError):
    """The URL cannot be requested (not http/https, no host, bad port)."""

    sent = False


class InvalidRequest(WireError):
    """The caller's headers cannot be sent (a line break, or a header we set ourselves)."""

    sent = False


class PoolClosed(WireError):
    """The pool was closed before the request went out."""

    sent = False


class ResolveError(WireError):
    """The host name did not resolve."""

    sent = False


class ConnectError(WireError):
    """The TCP connection (or the TLS handshake) failed: refused, unreachable."""

    sent = False


class CertificateError(WireError):
    """The server's TLS certificate failed verification."""

    sent = False


class ConnectTimeout(WireError, TimeoutError):
    """The timeout ran out while connecting: nothing was sent."""

    sent = False


class AnswerTimeout(WireError, TimeoutError):
    """The timeout ran out after the request was written."""


class Disconnected(WireError):
    """The server closed the connection after the request, without a byte of answer."""


class ConnectionFailed(WireError):
    """The connection broke (a reset) after the request, without a byte of answer."""


class CutShort(WireError):
    """The connection ended in the middle of the answer."""


class MalformedAnswer(WireError):
    """The server's bytes are not an HTTP/1.x answer."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: its origin (the pool key) and the bytes that name it."""

    origin: tuple[str, str, int]  # scheme, host (no brackets), port
    authority: str  # the Host header
    path: str  # path and query, byte for byte as configured
    authorization: str | None  # Basic credentials from the URL's user info, if any

    @property
    def host(self) -> str:
        return self.origin[1]

    @property
    def port(self) -> int:
        return self.origin[2]

    @property
    def tls(self) -> bool:
        return self.origin[0] == "https"

    @classmethod
    def parse(cls, url: str) -> Target:
        """Return the target of ``url``, an already encoded http(s) URL (never re-quoted).

        Raises ``InvalidUrl``, whose message never quotes the URL.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        if scheme not in _DEFAULT_PORTS or not host or not host.isascii():
            raise InvalidUrl("not an http(s) URL with an ASCII host")
        try:
            port = parts.port
        except ValueError:
            raise InvalidUrl("invalid port") from None
        default = _DEFAULT_PORTS[scheme]
        authority = f"[{host}]" if ":" in host else host
        if port is not None and port != default:
            authority += f":{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = None
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            # UTF-8 (RFC 7617's charset): latin-1 would raise on "€", and that error's text
            # would carry the password
            auth = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return cls((scheme, host, port or default), authority, path, auth)


class Answer(NamedTuple):
    """A final answer: status, reason phrase, headers and the first ``max_body`` bytes."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes


def encode_request(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """Return the bytes of ``POST target`` with ``headers`` and ``body``.

    ``Host``, ``Content-Length`` and (unless given) ``User-Agent: alertd`` are ours; a
    header that would reframe the request, or a value with a line break, is an
    ``InvalidRequest`` (the config refuses both; this guards the wire).
    """
    lines = [f"POST {target.path} HTTP/1.1\r\n", f"Host: {target.authority}\r\n"]
    agent = basic = True  # ours unless the caller sets them
    for name, value in headers.items():
        low = name.lower()
        if low in _FRAMING:
            raise InvalidRequest(f"header {name!r} is set by alertd")
        agent = agent and low != "user-agent"
        basic = basic and low != "authorization"
        lines.append(f"{name}: {value}\r\n")
    if basic and target.authorization is not None:
        lines.append(f"Authorization: {target.authorization}\r\n")
    if agent:
        lines.append("User-Agent: alertd\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    if head.count("\n") != len(lines) or head.count("\r") != len(lines):  # one CRLF each
        raise InvalidRequest("a header contains a line break")
    return head.encode() + body
