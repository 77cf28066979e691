"""Twilio's webhooks into alertd: delivery status callbacks and reply-to-acknowledge SMS.

Pure pieces first: the ``X-Twilio-Signature`` check exactly as Twilio computes it
(reliability.md §1.2), the forward-only order of message statuses (callbacks arrive late,
twice or out of order), and parsing "ACK 42" / "RESOLVE 42" replies. ``twilio_routes`` wraps
them in two aiohttp handlers the daemon mounts; what a status or a reply *does* (recording
delivery, acknowledging an incident) is the caller's, passed in as callbacks, so this module
knows nothing of incidents or storage.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal, TypeVar, cast
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from aiohttp import web

from alertd.notify.sms import segments

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
STATUS_PATH = "/hooks/twilio/status"
SMS_PATH = "/hooks/twilio/sms"
REPLY_HELP = "alertd: reply ACK <id> or RESOLVE <id>, e.g. ACK 42"
REPLY_MAX_SEGMENTS = 2
# Twilio answers these itself on long codes (opt-out, opt-in, help): we must not add a reply
OPT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "YES", "UNSTOP"}
    | {"HELP", "INFO"}
)

Params = Mapping[str, str] | Iterable[tuple[str, str]]
ReplyAction = Literal["ack", "resolve"]
_DEFAULT_PORTS = {"https": 443, "http": 80}
_T = TypeVar("_T")


# --- signatures ------------------------------------------------------------------------------


def _pairs(params: Params) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def twilio_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """Return the ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``.

    The signed text is ``url`` followed, for each parameter name in sorted order and each of
    its values in sorted order, by ``name + value``; the signature is base64(HMAC-SHA1) of it
    keyed with the auth token. Like the twilio library, a repeated identical (name, value) pair
    counts once. ``params`` is a mapping or (name, value) pairs (a multidict's ``items()``).
    """
    values: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + v for name in sorted(values) for v in sorted(values[name]))
    mac = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> list[str]:
    """Return ``url`` and, for http(s), the same URL with its default port added (if it has
    none) or removed (if it has 443/80): Twilio signs one or the other."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    start = url.find("//") + 2
    if default is None or start < 2 or url[start : start + len(parts.netloc)] != parts.netloc:
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    netloc = parts.netloc
    if port is None:
        other = f"{netloc}:{default}"
    elif port == default:
        other = netloc[: netloc.rfind(":")]
    else:
        return [url]
    return [url, url[:start] + other + url[start + len(netloc) :]]


def valid_signature(auth_token: str, url: str, params: Params, header: str | None) -> bool:
    """Return whether ``header`` (the ``X-Twilio-Signature`` value) signs a form POST of
    ``params`` to ``url``, with or without the default port. A missing or empty header or
    auth token is invalid; the comparison takes constant time."""
    if not header or not auth_token:
        return False
    given = header.strip().encode("utf-8", "replace")
    pairs = _pairs(params)
    matched = False
    for candidate in url_variants(url):
        expected = twilio_signature(auth_token, candidate, pairs).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return matched


def valid_json_signature(auth_token: str, url: str, body: bytes, header: str | None) -> bool:
    """Return whether a JSON-body webhook is authentic: ``url`` carries
    ``bodySHA256=<hex sha256 of body>`` that matches ``body``, and ``header`` signs ``url``
    with no parameters."""
    hashes = parse_qs(urlsplit(url).query, keep_blank_values=True).get("bodySHA256")
    if not hashes:
        return False
    computed = hashlib.sha256(body).hexdigest().encode("ascii")
    body_ok = hmac.compare_digest(computed, hashes[0].strip().lower().encode("utf-8", "replace"))
    return valid_signature(auth_token, url, (), header) and body_ok


# --- message status --------------------------------------------------------------------------


class MessageStatus(enum.StrEnum):
    """Twilio's Message statuses (OpenAPI ``MessageEnumStatus``), ordered by ``rank``."""

    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    RECEIVING = "receiving"
    SENT = "sent"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELED = "canceled"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    RECEIVED = "received"
    READ = "read"

    @property
    def rank(self) -> int:
        """How far along the message is; a status only ever moves to a higher rank."""
        return _RANK[self]


_RANK = {
    MessageStatus.SCHEDULED: 0,
    MessageStatus.ACCEPTED: 1,
    MessageStatus.QUEUED: 2,
    MessageStatus.SENDING: 3,
    MessageStatus.RECEIVING: 3,
    MessageStatus.SENT: 4,
    # the end of the road; the first of these to arrive stays...
    MessageStatus.FAILED: 5,
    MessageStatus.UNDELIVERED: 5,
    MessageStatus.CANCELED: 5,
    # ...unless a later report proves the phone got it
    MessageStatus.PARTIALLY_DELIVERED: 6,
    MessageStatus.DELIVERED: 7,
    MessageStatus.RECEIVED: 7,
    MessageStatus.READ: 8,
}


def status_advances(old: str | None, new: str) -> bool:
    """Return whether a callback saying ``new`` should replace the recorded status ``old``.

    Anything replaces nothing; a known status replaces an unknown one; otherwise only a higher
    rank does: a late ``sent`` never overrides ``delivered``, a duplicate changes nothing, and
    an unknown ``new`` never overrides a known status.
    """
    if old is None:
        return True
    try:
        new_rank = MessageStatus(new).rank
    except ValueError:
        return False
    try:
        old_rank = MessageStatus(old).rank
    except ValueError:
        return True
    return new_rank > old_rank


# --- replies ---------------------------------------------------------------------------------

_REPLY = re.compile(r"\s*(ack|resolve)\s*#?\s*([0-9]{1,18})\s*", re.IGNORECASE)


def parse_reply(body: str) -> tuple[ReplyAction, int] | None:
    """Return the command in an SMS reply: ``("ack", 42)`` for "ACK 42", "ack #42" or
    " Ack  42 ", ``("resolve", 42)`` for "Resolve 42"; ``None`` for anything else."""
    match = _REPLY.fullmatch(body)
    if match is None:
        return None
    action: ReplyAction = "ack" if match.group(1).lower() == "ack" else "resolve"
    return action, int(match.group(2))


# XML 1.0 forbids most control characters even when escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def twiml_message(text: str) -> str:
    """Return TwiML that answers an inbound SMS with ``text`` (escaped); no reply if empty."""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    if not text:
        return f"{head}<Response/>"
    return f"{head}<Response><Message>{escape(_NOT_XML.sub('', text))}</Message></Response>"


# --- aiohttp handlers ------------------------------------------------------------------------


async def _resolve(value: Awaitable[_T] | _T) -> _T:
    if inspect.isawaitable(value):
        return cast(_T, await value)
    return value


def _forbidden() -> web.Response:
    return web.Response(status=403, text="forbidden\n")


def _xml(text: str) -> web.Response:
    return web.Response(text=twiml_message(text), content_type="application/xml")


def twilio_routes(
    public_base_url: Callable[[], str],
    auth_tokens: Callable[[], Sequence[str]],
    on_status: Callable[[str, str, str], Awaitable[bool] | bool],
    on_reply: Callable[[str, ReplyAction, int], Awaitable[str] | str],
    seen: Callable[[str], Awaitable[bool] | bool],
    forget: Callable[[str], Awaitable[None] | None] | None = None,
) -> list[web.RouteDef]:
    """Return the routes ``POST /hooks/twilio/status`` and ``POST /hooks/twilio/sms``.

    Every request is authenticated first: the ``X-Twilio-Signature`` must sign
    ``public_base_url()`` (read per request: it follows reloads) + the request's path and
    query (what Twilio was configured to call, also behind a reverse proxy) and the form
    parameters, or for a JSON body (``bodySHA256`` in the query) its hash, with one of the
    auth tokens ``auth_tokens()`` returns now (each SMS channel's account signs its own
    callbacks and replies; none: refuse everything). A bad or missing signature gets 403 and
    no callback.

    ``seen(token)`` marks an ``I-Twilio-Idempotency-Token`` as handled and returns whether it
    already was (a replay: answered without a callback); ``forget(token)``, if given, unmarks it
    when the callback raised, so Twilio's retry is not taken for a replay.

    A status callback calls ``on_status(message_sid, status, error_code)`` (error_code "" if
    none), which returns whether it knew the SID; the answer is 204 either way, so Twilio does
    not retry. An inbound SMS "ACK 42" / "RESOLVE 42" calls ``on_reply(from_phone, action,
    incident_id)`` and answers with the text it returns as TwiML; anything else gets
    ``REPLY_HELP``, opt-out keywords (STOP, HELP...) get no answer (Twilio sends its own).
    """

    async def authenticated(request: web.Request) -> dict[str, str] | web.Response:
        """Return the request's parameters if it is signed, else the response to send."""
        tokens = [t for t in auth_tokens() if t]
        if not tokens:
            log.warning("twilio webhook %s refused: no auth token configured", request.path)
            return _forbidden()
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            log.warning("twilio webhook %s refused: no %s", request.path, SIGNATURE_HEADER)
            return _forbidden()
        url = public_base_url().rstrip("/") + request.raw_path
        params: dict[str, str] = {}
        if "bodySHA256" in request.query:
            body = await request.read()
            if not any(valid_json_signature(t, url, body, header) for t in tokens):
                log.warning("twilio webhook %s refused: bad signature (JSON)", request.path)
                return _forbidden()
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return web.Response(status=400, text="want a JSON object\n")
            for name, value in payload.items():
                params[str(name)] = "" if value is None else str(value)
            return params
        form = await request.post()
        pairs = [(name, value) for name, value in form.items() if isinstance(value, str)]
        if len(pairs) != len(form) or not any(
            valid_signature(t, url, pairs, header) for t in tokens
        ):
            log.warning("twilio webhook %s refused: bad signature", request.path)
            return _forbidden()
        for name, value in pairs:
            params.setdefault(name, value)
        return params

    async def replayed(request: web.Request) -> bool:
        """Return whether this request's idempotency token was handled already (and mark
        it handled if not)."""
        idem = request.headers.get(IDEMPOTENCY_HEADER)
        if not idem:
            return False
        already = await _resolve(seen(idem))
        if already:
            log.info("twilio webhook %s: replay of %s ignored", request.path, idem)
        return already

    async def failed(request: web.Request) -> web.Response:
        """Undo the replay mark of a request whose callback raised; answer 500."""
        idem = request.headers.get(IDEMPOTENCY_HEADER)
        if idem and forget is not None:
            try:
                await _resolve(forget(idem))
            except Exception:
                log.exception("twilio webhook %s: forget %s failed", request.path, idem)
        return web.Response(status=500, text="internal error\n")

    async def status_hook(request: web.Request) -> web.Response:
        params = await authenticated(request)
        if isinstance(params, web.Response):
            return params
        if await replayed(request):
            return web.Response(status=204)
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        if not sid or not status:
            return web.Response(status=400, text="want MessageSid and MessageStatus\n")
        error_code = params.get("ErrorCode") or ""
        try:
            known = await _resolve(on_status(sid, status, error_code))
        except Exception:
            log.exception("twilio webhook %s: on_status(%s, %s) failed", request.path, sid, status)
            return await failed(request)
        if not known:
            log.info("twilio status %s for unknown MessageSid %s ignored", status, sid)
        return web.Response(status=204)

    async def sms_hook(request: web.Request) -> web.Response:
        params = await authenticated(request)
        if isinstance(params, web.Response):
            return params
        if await replayed(request):
            return _xml("")
        phone = params.get("From", "")
        body = params.get("Body", "")
        if params.get("OptOutType") or body.strip().upper() in OPT_KEYWORDS:
            return _xml("")
        command = parse_reply(body)
        if command is None:
            return _xml(REPLY_HELP)
        action, incident_id = command
        try:
            text = await _resolve(on_reply(phone, action, incident_id))
        except Exception:
            log.exception("twilio webhook %s: on_reply(%s, %s) failed", request.path, phone, action)
            return await failed(request)
        log.info("twilio reply %s #%d from %s handled", action, incident_id, phone)
        return _xml(segments.fit(text, REPLY_MAX_SEGMENTS) if text else "")

    return [web.post(STATUS_PATH, status_hook), web.post(SMS_PATH, sms_hook)]
