"""One way to POST a notification to an HTTP provider, and to say what went wrong.

Every HTTP channel (the IM robots, the generic webhook) owns one ``HttpClient``: one pool of
kept-alive HTTP/1.1 connections (``http_pool.Pool``, a lean asyncio client: the daemon posts
thousands of small notifications, and aiohttp's ``ClientSession`` cost 2-3 times the CPU per
POST), closed with the channel. A send is exactly one attempt: waiting for a free
connection and connecting within the channel's ``timeout``, then the exchange within another
``timeout`` of its own (queueing behind slow answers does not time out a request already
sent); redirects are not followed (a POST carrying a token should not wander to another
host). The outcome becomes a ``NotifyError``:

======================================  =========  =========  ==============================
outcome                                 retryable  ambiguous  reason
======================================  =========  =========  ==============================
refused, unreachable, DNS failure       yes        no         connect
timeout before the request was written  yes        no         timeout
TLS certificate rejected                no         no         connect (needs a human)
timeout after the request was written   yes        yes        timeout
reset / disconnect / cut-short answer   yes        yes        connect
malformed HTTP answer                   yes        yes        server_error
channel closed (reload, shutdown)       yes        no         other
invalid url or header                   no         no         unconfigured
HTTP 2xx                                the provider reads the body (``errcode`` != 0 fails)
HTTP 3xx (not followed)                 no         no         client_error
HTTP 408                                yes        no         timeout
HTTP 429; 503 with Retry-After          yes        no         rate_limited, ``retry_after``
HTTP 500, 502, 504                      yes        yes        server_error
other 5xx (503 without Retry-After)     yes        no         server_error
HTTP 401, 403                           no         no         auth
other 4xx                               no         no         client_error
======================================  =========  =========  ==============================

500, 502 and 504 are ambiguous: the application may have acted before failing, and a gateway
answering 502/504 lost the upstream's answer, not necessarily the request. 503 and the rest
are answers from a server that refused the work. A timeout or reset after the request was
written is ambiguous: the provider may have it. Before that (connecting, TLS) nothing was
sent. A kept-alive connection the server closes just as a request is written counts as a
disconnect (ambiguous), as with aiohttp; one it closed earlier is never reused (see
``http_pool``).

Webhook URLs embed their credential (Slack's path, DingTalk's ``access_token``, WeCom's
``key``, Feishu's hook token), so messages show the URL redacted (``redact_url``) and every
error text is scrubbed of the URL's secret parts and the signing secret before it leaves here.
Transport exceptions are not chained (``from None``), so no traceback carries a URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, unquote, urlsplit

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.notify import http_pool
from alertd.notify import http_wire as wire

MAX_BODY = 64 * 1024  # bytes of an answer read; providers answer a few hundred
ANSWER_CHARS = 300  # characters of an answer quoted in an error message
USER_AGENT = "alertd"
SECRET = "<secret>"
_MIN_SECRET = 6  # shorter query values ("1.0", "v2") would scrub ordinary words from messages
_TOKEN_LENGTH = 16  # a path segment this long is hidden alone, whatever it is made of
_AMBIGUOUS_5XX = frozenset({500, 502, 504})

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json; charset=utf-8"}


def redact_url(url: str, keep_path: int | None = None) -> str:
    """Return ``url`` safe to show: scheme, host, port, path, and query names only.

    Query values become ``<secret>``; so do all path segments after the first ``keep_path``
    (``None`` keeps the whole path), collapsed into one; user info and fragment are dropped.
    ``https://hooks.slack.com/services/T0/B0/XX`` with ``keep_path=1`` shows as
    ``https://hooks.slack.com/services/<secret>``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    segments = parts.path.split("/")[1:] if parts.path else []
    if keep_path is not None and len(segments) > keep_path:
        segments = [*segments[:keep_path], SECRET]
    if segments:
        shown += "/" + "/".join(segments)
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        shown += "?" + "&".join(f"{name}={SECRET}" for name in names)
    return shown


def url_secrets(url: str, keep_path: int | None = None) -> list[str]:
    """Return the parts of ``url`` that ``redact_url`` hides, raw and percent-decoded, and
    the whole URL if it hides anything (a short password, a fragment). A URL with nothing
    to hide is no secret: errors show it as it is."""
    parts = urlsplit(url)
    pieces = [parts.query, parts.password or "", parts.username or ""]
    if redact_url(url, keep_path) != url:
        pieces.append(url)
    segments = parts.path.split("/")[1:] if parts.path else []
    if keep_path is not None:
        hidden = segments[keep_path:]
        pieces += [s for s in hidden if _token_like(s)]
        if len(hidden) > 1:  # the hidden path whole: no word of a message looks like it
            pieces.append("/".join(hidden))
    for raw in parts.query.split("&"):
        pieces.append(raw.partition("=")[2])
    decoded = [unquote(p) for p in pieces]
    return [p for p in {*pieces, *decoded} if len(p) >= _MIN_SECRET]


def _token_like(segment: str) -> bool:
    """Whether a hidden path segment may be a token on its own: long, or with a digit or a
    capital. A short lowercase word (``ticketing``, ``incident``) is a path's name: scrubbed
    alone it blanked the same word out of every message (the channel's name, "incident #4")
    (user test); the hidden path as a whole is scrubbed anyway."""
    if len(segment) >= _TOKEN_LENGTH:
        return True
    return any(c.isdigit() or c.isupper() for c in segment)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date).

    ``now`` is the wall-clock time the date is measured from. An unparsable value is ``None``
    (the caller falls back to its own backoff); a date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class Response:
    """What the provider answered: status, headers and the first ``MAX_BODY`` bytes."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def answer(self) -> str:
        """Return the body as one short line for an error message."""
        text = " ".join(self.body.decode("utf-8", errors="replace").split())
        if len(text) > ANSWER_CHARS:
            text = text[: ANSWER_CHARS - 1] + "…"
        return text or "(empty body)"


class HttpClient:
    """One channel's connection pool to its provider, and its error vocabulary."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        keep_path: int | None = None,
        secrets: Iterable[str] = (),
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Prepare to POST to ``url`` (sent byte for byte as configured: already encoded).

        ``keep_path`` says how much of the path may be shown (see ``redact_url``); ``secrets``
        are more strings never to show (a signing secret); ``wall`` reads wall-clock time for
        ``Retry-After`` dates.
        """
        self.url = URL(url, encoded=True)
        self.shown = redact_url(url, keep_path)
        self.timeout = timeout
        self._secrets = sorted(
            {*url_secrets(url, keep_path), *(s for s in secrets if len(s) >= _MIN_SECRET)},
            key=len,
            reverse=True,  # longest first, so a secret containing another is hidden whole
        )
        self._wall = wall
        self._pool = http_pool.Pool(max_body=MAX_BODY)
        self._raw_url = url
        self._target: wire.Target | None = None  # the configured URL's, parsed on first use
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpClient({self.shown!r}, timeout={self.timeout})"

    async def close(self) -> None:
        """Close the pooled connections; a later ``post`` fails (retryable)."""
        self._closed = True
        self._pool.close()
        await asyncio.sleep(0)  # aborted sockets are released on the loop's next turn

    def scrub(self, text: str) -> str:
        """Return ``text`` with every secret of this channel replaced by ``<secret>``."""
        for secret in self._secrets:
            text = text.replace(secret, SECRET)
        return text

    def error(
        self,
        what: str,
        why: str,
        *,
        retryable: bool,
        reason: FailureReason,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> NotifyError:
        """Return a ``NotifyError`` saying ``what`` failed posting to the redacted URL, and why."""
        return NotifyError(
            self.scrub(f"{what}: POST {self.shown}: {why}"),
            retryable=retryable,
            reason=reason,
            ambiguous=ambiguous,
            retry_after=retry_after,
        )

    async def post(
        self, what: str, body: bytes, headers: Mapping[str, str], url: URL | str | None = None
    ) -> Response:
        """POST ``body`` once and return the answer, whatever its status.

        ``url`` replaces the configured one for this request (DingTalk signs the query); it is
        sent byte for byte, already encoded. Raises ``NotifyError`` when no answer arrived
        (see the module docstring).
        """
        if self._closed:
            raise self.transport_error(what, wire.PoolClosed("closed"))
        try:
            target = self._configured() if url is None else wire.Target.parse(str(url))
            request = wire.encode_request(target, headers, body)
            answer = await self._pool.request(target, request, self.timeout)
        except (wire.WireError, OSError) as exc:
            raise self.transport_error(what, exc) from None
        return Response(*answer)

    def _configured(self) -> wire.Target:
        if self._target is None:
            self._target = wire.Target.parse(self._raw_url)
        return self._target

    def transport_error(self, what: str, exc: BaseException) -> NotifyError:
        """Classify a failure to get any answer (see the table in the module docstring).

        ``exc`` is an ``http_wire.WireError``, or an ``OSError`` from the socket.
        """
        r = FailureReason
        if isinstance(exc, wire.CertificateError):
            why = f"TLS certificate rejected: {exc}"
            return self.error(what, why, retryable=False, reason=r.CONNECT)
        if isinstance(exc, wire.ResolveError | wire.ConnectError):  # says which host and why
            return self.error(what, str(exc), retryable=True, reason=r.CONNECT)
        if isinstance(exc, wire.ConnectTimeout):
            why = f"connect timeout after {self.timeout:g}s (nothing sent)"
            return self.error(what, why, retryable=True, reason=r.TIMEOUT)
        if isinstance(exc, TimeoutError):
            why = f"no answer within {self.timeout:g}s (the provider may have the message)"
            return self.error(what, why, retryable=True, reason=r.TIMEOUT, ambiguous=True)
        if isinstance(exc, wire.Disconnected):
            why = "server closed the connection before answering"
            return self.error(what, why, retryable=True, reason=r.CONNECT, ambiguous=True)
        if isinstance(exc, wire.ConnectionFailed | OSError):
            detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            why = f"connection failed mid-request: {detail or type(exc).__name__}"
            return self.error(what, why, retryable=True, reason=r.CONNECT, ambiguous=True)
        if isinstance(exc, wire.CutShort):
            why = "answer cut short"
            return self.error(what, why, retryable=True, reason=r.CONNECT, ambiguous=True)
        if isinstance(exc, wire.MalformedAnswer):
            why = f"malformed HTTP answer: {exc}"
            return self.error(what, why, retryable=True, reason=r.SERVER_ERROR, ambiguous=True)
        if isinstance(exc, wire.PoolClosed):
            why = "channel closed (replaced or shutting down)"
            return self.error(what, why, retryable=True, reason=r.OTHER)
        if isinstance(exc, wire.InvalidUrl):
            return self.error(what, "invalid url", retryable=False, reason=r.UNCONFIGURED)
        if isinstance(exc, wire.InvalidRequest):
            why = f"invalid request: {exc}"
            return self.error(what, why, retryable=False, reason=r.UNCONFIGURED)
        why = f"{type(exc).__name__}"
        return self.error(what, why, retryable=True, reason=r.OTHER, ambiguous=True)

    def status_error(self, what: str, resp: Response) -> NotifyError:
        """Classify a non-2xx answer (see the table in the module docstring)."""
        r = FailureReason
        status = resp.status
        why = f"HTTP {status} {resp.reason}: {resp.answer()}"
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._wall())
        if status == 429 or (status == 503 and retry_after is not None):
            return self.error(
                what, why, retryable=True, reason=r.RATE_LIMITED, retry_after=retry_after
            )
        if status >= 500:
            return self.error(
                what,
                why,
                retryable=True,
                reason=r.SERVER_ERROR,
                ambiguous=status in _AMBIGUOUS_5XX,
            )
        if status == 408:
            return self.error(what, why, retryable=True, reason=r.TIMEOUT)
        if status in (401, 403):
            return self.error(what, why, retryable=False, reason=r.AUTH)
        if 300 <= status < 400:
            why = f"HTTP {status} {resp.reason}: redirects are not followed; update the url"
        return self.error(what, why, retryable=False, reason=r.CLIENT_ERROR)
