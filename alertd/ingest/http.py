"""``POST /api/v2/alerts``: Alertmanager's push endpoint, for Prometheus and amtool.

Order of checks: ``authorize`` (before a byte of the body is read), content type (415), body
size (413 from Content-Length at once, else while reading, never buffering more than the
cap), then the alerts. Answers follow Alertmanager so Prometheus behaves: 200 with an empty
body when every alert was valid; 400 with a JSON string naming the invalid ones after the
valid ones were handed to ``receive`` (partial accept); 503 when ``receive`` failed, which
Prometheus retries (it drops batches on 4xx). Bad input never yields a 500.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from alertd.ingest.alertmanager import (
    DEFAULT_RESOLVE_TIMEOUT,
    IngestError,
    IngestLimits,
    PostedAlert,
    describe_errors,
    parse_postable_alerts,
)
from alertd.ingest.backpressure import Backpressure
from alertd.log import log_failure
from alertd.model import Level

log = logging.getLogger(__name__)

ALERTS_PATH = "/api/v2/alerts"
Receive = Callable[[list[PostedAlert]], Awaitable[None] | None]
Authorize = Callable[[web.Request], None]
_CHUNK = 64 * 1024
_THREAD_PARSE_BYTES = 256 * 1024  # bigger bodies are parsed off the event loop
_JSON_CHARSETS = (None, "utf-8", "utf8")


def alerts_routes(
    receive: Receive,
    limits: Callable[[], IngestLimits],
    authorize: Authorize | None = None,
    resolve_timeout: Callable[[], float] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    default_level: Callable[[], Level] = lambda: Level.MAJOR,
    backpressure: Backpressure | None = None,
) -> list[web.RouteDef]:
    """Return the route for ``POST /api/v2/alerts``.

    ``receive`` gets the valid alerts of each request (never an empty list) and may be sync or
    async; an exception from it answers 503. ``authorize`` may raise ``web.HTTPUnauthorized``
    or ``web.HTTPForbidden``. ``limits``, ``resolve_timeout`` and ``default_level`` are read
    per request (they follow reloads); ``clock`` gives the wall time that missing
    ``startsAt``/``endsAt`` are computed from. ``backpressure`` holds a request back, briefly,
    while delivery is behind.
    """

    async def post_alerts(request: web.Request) -> web.StreamResponse:
        if authorize is not None:
            authorize(request)
        if request.content_type != "application/json" or request.charset not in _JSON_CHARSETS:
            return _error(415, "Content-Type must be application/json")
        timeout = DEFAULT_RESOLVE_TIMEOUT if resolve_timeout is None else resolve_timeout()
        bounds, level = limits(), default_level()
        if backpressure is not None:
            await backpressure.wait()  # never raises: it only ever holds a request back
        try:
            body = await _read_body(request, bounds)
            now = clock()
            if len(body) > _THREAD_PARSE_BYTES:
                alerts, errors = await asyncio.to_thread(
                    parse_postable_alerts, body, now, bounds, timeout, default_level=level
                )
            else:
                alerts, errors = parse_postable_alerts(
                    body, now, bounds, timeout, default_level=level
                )
        except IngestError as exc:
            log.warning("POST %s from %s refused: %s", ALERTS_PATH, request.remote, exc.message)
            response = _error(exc.status, exc.message)
            if exc.status in (408, 413):
                response.force_close()  # no keep-alive: the rest of the body is unwanted
            return response
        except Exception:  # a parser bug must not become a 500 that Prometheus retries forever
            log.exception("POST %s from %s: parsing failed", ALERTS_PATH, request.remote)
            return _error(400, "request body could not be parsed")
        if alerts:
            try:
                result = receive(alerts)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                what = f"POST {ALERTS_PATH}: storing {len(alerts)} alerts failed (a 503)"
                log_failure(log, what, exc)
                return _error(503, "alerts could not be stored; retry later")
        if errors:
            log.warning(
                "POST %s from %s: %d of %d alerts invalid, first: %s",
                ALERTS_PATH,
                request.remote,
                len(errors),
                len(errors) + len(alerts),
                errors[0],
            )
            return _error(400, describe_errors(errors))
        return web.Response(status=200)

    return [web.post(ALERTS_PATH, post_alerts)]


async def _read_body(request: web.Request, limits: IngestLimits) -> bytes:
    """Read the body, refusing (413) as soon as it is known to exceed the cap."""
    cap = limits.max_body_bytes
    length = request.content_length
    if length is not None and length > cap:
        raise IngestError(413, f"request body larger than {cap} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout):
            while chunk := await request.content.read(_CHUNK):
                body += chunk
                if len(body) > cap:
                    raise IngestError(413, f"request body larger than {cap} bytes")
    except TimeoutError:
        raise IngestError(
            408, f"request body not received within {limits.body_timeout:g}s"
        ) from None
    except HttpProcessingError as exc:  # broken chunking, bad Content-Encoding, short body
        raise IngestError(400, f"request body could not be read: {exc.message}") from None
    return bytes(body)


def _error(status: int, message: str) -> web.Response:
    """An Alertmanager-style error: the message as a JSON string."""
    return web.json_response(message, status=status)
