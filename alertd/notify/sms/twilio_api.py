"""Twilio REST glue: the only module that imports the twilio library (it ships no type hints).

``TwilioMessages.create`` sends one Message with the library's async API
(``Client.api.v2010.account.messages.create_async``): the library builds the URL
(``/2010-04-01/Accounts/{sid}/Messages.json``), the form fields and Basic auth, and parses the
created Message. The HTTP exchange itself goes through ``_Transport``, our own async HTTP client
handed to the library as ``http_client``:

* one attempt: no retries (the outbox retries), one ``asyncio.timeout`` over the whole exchange;
* it records whether the request reached the wire (aiohttp's ``on_request_headers_sent``
  trace), so a timeout or reset afterwards is reported as "maybe sent", and tells the outbox
  until then that nothing was written (``nothing_written_yet``): a stop while it waits for a
  connection or the TLS handshake leaves nothing "maybe sent";
* a non-2xx reply becomes ``TwilioApiError`` with the status, Twilio's error ``code`` and the
  ``Retry-After`` header, which the library's own exception drops;
* it logs nothing (the library's HTTP client logs request headers and bodies at INFO).

The API base URL is the library's own setting: ``client.api.base_url`` (the ``Api`` domain's
base, default ``https://api.twilio.com``). ``TWILIO_EDGE``/``TWILIO_REGION`` from the
environment would rewrite that host, so they are switched off: the configured URL is used as is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException  # type: ignore[import-untyped,unused-ignore]
from twilio.http.response import Response  # type: ignore[import-untyped,unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]

from alertd.notify.http import parse_retry_after
from alertd.notify.notifier import nothing_written_yet

_ERROR_TEXT_MAX = 300


@dataclass(frozen=True, slots=True)
class MessageCreated:
    """What Twilio said about a Message it accepted."""

    sid: str  # MessageSid: status callbacks refer to it
    status: str  # usually "queued" or "accepted"


class TwilioApiError(Exception):
    """Twilio answered with a non-2xx status (usually with an error JSON)."""

    def __init__(
        self, status: int, code: int | None, message: str, retry_after: float | None = None
    ) -> None:
        said = f": {message}" if message else ""  # an empty answer: the status says it all
        super().__init__(f"HTTP {status}" + (f" error {code}" if code else "") + said)
        self.status = status
        self.code = code  # Twilio's error code, e.g. 21211; None if the body had none
        self.message = message
        self.retry_after = retry_after  # seconds, from Retry-After


class TwilioTransportError(Exception):
    """The exchange failed without an HTTP answer (refused, reset, timeout, TLS)."""

    def __init__(
        self, message: str, *, sent: bool, timed_out: bool = False, certificate: bool = False
    ) -> None:
        super().__init__(message)
        self.sent = sent  # the request reached the wire: Twilio may have created the message
        self.timed_out = timed_out
        self.certificate = certificate  # the server's certificate did not verify


class _Attempt:
    """Per-request state the trace callback fills in."""

    sent = False


async def _on_headers_sent(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    attempt = ctx.trace_request_ctx
    if isinstance(attempt, _Attempt):
        attempt.sent = True
        nothing_written_yet(False)  # (run in the sending task: aiohttp awaits its traces)


def _error_of(status: int, text: str) -> tuple[int | None, str]:
    """Return (code, message) from a Twilio error body; the raw text if it is not one ("" if
    there is none: "HTTP 401: HTTP 401" said nothing twice, user test)."""
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        code = payload.get("code")
        message = str(payload.get("message") or payload.get("detail") or "")
        return (code if isinstance(code, int) else None), message
    return None, " ".join(text.split())[:_ERROR_TEXT_MAX]


class _Transport:
    """The async HTTP client the twilio library calls (duck-typed ``AsyncHttpClient``)."""

    is_async = True

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None), trace_configs=[trace]
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- the library's signature; ours wins
        allow_redirects: bool = False,
    ) -> Any:
        """Send one request; return the library's ``Response`` for a 2xx, raise otherwise."""
        attempt = _Attempt()
        nothing_written_yet(True)  # until the headers go out (``_on_headers_sent``)
        session = self._get_session()
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = _basic_auth(*auth)
        try:
            async with asyncio.timeout(self._timeout):
                async with session.request(
                    method,
                    url,
                    params=_pairs(params),
                    data=_pairs(data),
                    headers=headers,
                    allow_redirects=allow_redirects,
                    trace_request_ctx=attempt,
                ) as resp:
                    status, text = resp.status, await resp.text(errors="replace")
                    # the HTTP channels' parser: an "inf" or "nan" must not give the page up
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
        except TimeoutError as exc:
            raise TwilioTransportError(
                f"no answer within {self._timeout}s", sent=attempt.sent, timed_out=True
            ) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TwilioTransportError(
                f"TLS certificate: {exc}", sent=False, certificate=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TwilioTransportError(f"connect: {exc}", sent=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            what = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise TwilioTransportError(what, sent=attempt.sent) from exc
        if not 200 <= status < 300:
            code, message = _error_of(status, text)
            raise TwilioApiError(status, code, message, retry_after)
        return Response(status, text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _basic_auth(login: str, password: str) -> str:
    """Return an ``Authorization: Basic`` value (aiohttp 3.14 deprecates ``BasicAuth``)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def _pairs(values: Mapping[str, object] | None) -> list[tuple[str, str]] | None:
    """Return form/query values as (name, value) pairs; a list value repeats its name."""
    if not values:
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        pairs.extend((name, str(item)) for item in items)
    return pairs


class TwilioMessages:
    """Creates Messages on one Twilio account."""

    def __init__(self, *, account_sid: str, auth_token: str, base_url: str, timeout: float) -> None:
        self._transport = _Transport(timeout)
        client = Client(
            username=account_sid,
            password=auth_token,
            account_sid=account_sid,
            http_client=self._transport,
        )
        client.edge = None
        client.region = None
        client.api.base_url = base_url
        self._messages = client.api.v2010.account.messages
        self.base_url = base_url

    def __repr__(self) -> str:
        return f"TwilioMessages(base_url={self.base_url!r})"

    async def create(
        self,
        *,
        to: str,
        body: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
    ) -> MessageCreated:
        """Create one Message; raise ``TwilioApiError`` or ``TwilioTransportError``."""
        fields: dict[str, str] = {"to": to, "body": body}
        if from_ is not None:
            fields["from_"] = from_
        if messaging_service_sid is not None:
            fields["messaging_service_sid"] = messaging_service_sid
        if status_callback is not None:
            fields["status_callback"] = status_callback
        try:
            message = await self._messages.create_async(**fields)
        except (TwilioApiError, TwilioTransportError):
            raise
        except (TwilioException, ValueError) as exc:
            # a 2xx the library could not read: the message probably exists
            raise TwilioTransportError(f"unreadable answer: {exc}", sent=True) from exc
        sid = getattr(message, "sid", None)
        if not isinstance(sid, str) or not sid:
            raise TwilioTransportError("answer has no Message sid", sent=True)
        status = getattr(message, "status", None)
        return MessageCreated(sid=sid, status=str(status or ""))

    async def close(self) -> None:
        """Close the HTTP session (pooled connections)."""
        await self._transport.close()
