"""JSON errors of the ``/api/v1`` surface: ``{"code": "<stable code>", "message": "..."}``.

Handlers raise ``ApiError``; ``guard`` turns it (and any unexpected exception, logged) into
a JSON answer. ``read_json`` reads a request body the way every endpoint does: 415 for a
body that is not JSON, 413 past the size cap (from ``Content-Length`` at once, else while
reading, never buffering more than the cap), 408 for a client too slow to send it, 400 for
JSON that does not parse.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds a client may take to send its body
_CHUNK = 16 * 1024
_JSON_CHARSETS = (None, "utf-8", "utf8")

CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


class ApiError(Exception):
    """An answer other than success, with its HTTP status and stable code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message


def json_error(
    status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Return the JSON error response every ``/api/v1`` failure uses."""
    body = {"code": code or CODES.get(status, "error"), "message": message}
    return web.json_response(body, status=status, headers=headers)


def guard(handler: Handler) -> Handler:
    """Wrap ``handler`` so that every failure answers as a JSON error.

    ``ApiError`` becomes its status; aiohttp's own HTTP errors (the ``Authorizer``'s 401/403
    are JSON already) keep their status and get a JSON body if they have none; anything else
    is a bug: logged, answered 500 without details.
    """

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            response = json_error(exc.status, exc.message, exc.code)
            if exc.status in (408, 413):
                response.force_close()  # the rest of the body is unwanted
            return response
        except web.HTTPException as exc:
            if exc.content_type == "application/json" or exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            return json_error(exc.status, exc.reason, headers=headers)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return json_error(500, "internal error; see the daemon's log")

    return guarded


NO_BODY: Any = object()  # what ``read_json`` returns for an optional body not sent


async def read_json(request: web.Request, *, required: bool) -> Any:
    """Return the request's JSON body (``NO_BODY`` when there is none and none is required;
    a JSON ``null`` is ``None``)."""
    length = request.content_length
    if not request.body_exists or length == 0:
        if required:
            raise ApiError(400, "a JSON request body is required")
        return NO_BODY
    if request.content_type != "application/json" or request.charset not in _JSON_CHARSETS:
        raise ApiError(415, "Content-Type must be application/json")
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await request.content.read(_CHUNK):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    except TimeoutError:
        raise ApiError(408, f"request body not received within {BODY_TIMEOUT:g}s") from None
    except HttpProcessingError as exc:
        raise ApiError(400, f"request body could not be read: {exc.message}") from None
    if not body:
        if required:
            raise ApiError(400, "a JSON request body is required")
        return NO_BODY
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
