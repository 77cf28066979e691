"""Twilio's webhooks mounted in a real aiohttp app on 127.0.0.1, called with requests signed
by an independent implementation of Twilio's algorithm (reliability.md S7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from alertd.notify.sms.hooks import REPLY_HELP, status_advances, twilio_routes

pytestmark = pytest.mark.integration

TOKEN = "twilio-auth-token-s3cret"
KNOWN_SID = "SM" + "5e1f" * 8
PHONE = "+8613800001111"
STATUS = "/hooks/twilio/status"
SMS = "/hooks/twilio/sms"


def sign(url: str, pairs: list[tuple[str, str]], token: str = TOKEN) -> str:
    """Twilio's signature, written out independently of alertd."""
    text = url
    for name in sorted({n for n, _ in pairs}):
        for value in sorted(v for n, v in pairs if n == name):
            text += name + value
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def status_form(status: str, sid: str = KNOWN_SID, error: str = "") -> list[tuple[str, str]]:
    pairs = [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC" + "0123456789abcdef" * 2),
        ("From", "+15017122661"),
        ("To", PHONE),
        ("ApiVersion", "2010-04-01"),
    ]
    return [*pairs, ("ErrorCode", error)] if error else pairs


def sms_form(body: str, phone: str = PHONE) -> list[tuple[str, str]]:
    return [
        ("MessageSid", "SM" + "77" * 16),
        ("AccountSid", "AC" + "0123456789abcdef" * 2),
        ("From", phone),
        ("To", "+15017122661"),
        ("Body", body),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
    ]


def message_text(twiml: str) -> str | None:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    message = root.find("Message")
    return None if message is None else message.text


@dataclass(slots=True)
class Hooks:
    """The running app's callbacks (recording what they saw) and a client to call it."""

    local: str  # where the test connects
    public: str  # what Twilio was configured with, and signs
    session: aiohttp.ClientSession | None = None
    token: str | None = TOKEN
    others: tuple[str, ...] = ()  # the tokens of more SMS channels' accounts
    statuses: list[tuple[str, str, str]] = field(default_factory=list)
    replies: list[tuple[str, str, int]] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)
    forgotten: list[str] = field(default_factory=list)
    fail: bool = False

    def token_for(self) -> list[str]:
        return [self.token, *self.others] if self.token else list(self.others)

    async def on_status(self, sid: str, status: str, error_code: str) -> bool:
        if self.fail:
            raise RuntimeError("database is locked")
        self.statuses.append((sid, status, error_code))
        return sid == KNOWN_SID

    def on_reply(self, phone: str, action: str, incident_id: int) -> str:
        self.replies.append((phone, action, incident_id))
        return f"{action} #{incident_id} by {phone}: <done> & logged"

    def seen(self, token: str) -> bool:
        if token in self.handled:
            return True
        self.handled.add(token)
        return False

    def forget(self, token: str) -> None:
        self.handled.discard(token)
        self.forgotten.append(token)

    async def post(
        self,
        path: str,
        pairs: list[tuple[str, str]],
        *,
        signature: str | None = None,
        unsigned: bool = False,
        token: str | None = None,
    ) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if token is not None:
            headers["I-Twilio-Idempotency-Token"] = token
        if not unsigned:
            headers["X-Twilio-Signature"] = signature or sign(self.public + path, pairs)
        assert self.session is not None
        # encoded=True: send the path and query byte for byte, as signed
        url = URL(self.local + path, encoded=True)
        async with self.session.post(url, data=urlencode(pairs), headers=headers) as resp:
            return resp.status, await resp.text()


@asynccontextmanager
async def running(public: str | None = None) -> AsyncIterator[Hooks]:
    """Serve ``twilio_routes`` on 127.0.0.1 (a port bound first, so the URL is known)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    local = f"http://127.0.0.1:{sock.getsockname()[1]}"
    hooks = Hooks(local=local, public=(public or local).rstrip("/"))
    app = web.Application()
    app.add_routes(
        twilio_routes(
            lambda: public or local,
            hooks.token_for,
            hooks.on_status,
            hooks.on_reply,
            hooks.seen,
            hooks.forget,
        )
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        async with aiohttp.ClientSession() as session:
            hooks.session = session
            yield hooks
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    async with running() as h:
        yield h


# --- inbound SMS -----------------------------------------------------------------------------


async def test_signed_reply_acknowledges(hooks: Hooks) -> None:
    status, body = await hooks.post(SMS, sms_form("ack #42"))
    assert status == 200
    assert hooks.replies == [(PHONE, "ack", 42)]
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    assert message_text(body) == f"ack #42 by {PHONE}: <done> & logged"


async def test_resolve_reply(hooks: Hooks) -> None:
    status, _ = await hooks.post(SMS, sms_form("  Resolve 7 "))
    assert status == 200
    assert hooks.replies == [(PHONE, "resolve", 7)]


async def test_anything_else_gets_help_and_no_callback(hooks: Hooks) -> None:
    status, body = await hooks.post(SMS, sms_form("what is going on?"))
    assert status == 200
    assert message_text(body) == REPLY_HELP
    assert hooks.replies == []


async def test_opt_out_keywords_get_no_answer(hooks: Hooks) -> None:
    status, body = await hooks.post(SMS, sms_form("STOP"))
    assert (status, message_text(body)) == (200, None)
    assert hooks.replies == []


@pytest.mark.parametrize(
    ("how", "header"),
    [
        ("missing", None),
        ("empty", ""),
        ("other token", sign("x", [], token="not-the-token")),
        ("garbage", "¯\\_(ツ)_/¯"),
    ],
)
async def test_bad_signature_is_refused_before_any_callback(
    hooks: Hooks, how: str, header: str | None
) -> None:
    if header is None:
        status, _ = await hooks.post(SMS, sms_form("ACK 42"), unsigned=True)
    else:
        status, _ = await hooks.post(SMS, sms_form("ACK 42"), signature=header or " ")
    assert status == 403, how
    status, _ = await hooks.post(STATUS, status_form("delivered"), unsigned=True)
    assert status == 403
    assert hooks.replies == []
    assert hooks.statuses == []


async def test_a_signature_for_other_parameters_is_refused(hooks: Hooks) -> None:
    signed = sign(hooks.public + SMS, sms_form("ACK 1"))
    status, _ = await hooks.post(SMS, sms_form("RESOLVE 42"), signature=signed)
    assert status == 403
    assert hooks.replies == []


async def test_no_auth_token_refuses_everything(hooks: Hooks) -> None:
    hooks.token = None
    status, _ = await hooks.post(SMS, sms_form("ACK 42"))
    assert status == 403
    assert hooks.replies == []


async def test_each_sms_accounts_token_signs_its_own_requests(hooks: Hooks) -> None:
    # review finding: only the first SMS channel's token was tried, so a second Twilio
    # account's status callbacks and replies were all refused
    hooks.others = ("second-account-token",)
    form = status_form("delivered")
    second = sign(hooks.public + STATUS, form, "second-account-token")
    assert (await hooks.post(STATUS, form, signature=second))[0] == 204
    stranger = sign(hooks.public + STATUS, form, "someone-elses-token")
    assert (await hooks.post(STATUS, form, signature=stranger))[0] == 403
    assert hooks.statuses == [(KNOWN_SID, "delivered", "")]


async def test_replayed_reply_is_not_handled_twice(hooks: Hooks) -> None:
    first = await hooks.post(SMS, sms_form("ACK 42"), token="idem-1")
    again = await hooks.post(SMS, sms_form("ACK 42"), token="idem-1")
    assert first[0] == again[0] == 200
    assert message_text(first[1]) is not None
    assert message_text(again[1]) is None  # no second text message either
    assert hooks.replies == [(PHONE, "ack", 42)]
    await hooks.post(SMS, sms_form("ACK 42"), token="idem-2")
    assert len(hooks.replies) == 2


async def test_behind_a_proxy_the_public_url_is_what_counts() -> None:
    async with running("https://alertd.example/") as h:
        # signed for the public URL (as Twilio does), delivered to the local port
        status, _ = await h.post(SMS, sms_form("ACK 5"))
        assert status == 200
        # signed for the address the app really listens on: not what Twilio would sign
        local_sig = sign(h.local + SMS, sms_form("ACK 6"))
        status, _ = await h.post(SMS, sms_form("ACK 6"), signature=local_sig)
        assert status == 403
        # Twilio may have signed it with the default port
        port_sig = sign("https://alertd.example:443" + SMS, sms_form("ACK 7"))
        status, _ = await h.post(SMS, sms_form("ACK 7"), signature=port_sig)
        assert status == 200
        assert [r[2] for r in h.replies] == [5, 7]


async def test_query_string_is_part_of_the_signed_url(hooks: Hooks) -> None:
    path = SMS + "?team=net&x=%2F"
    status, _ = await hooks.post(path, sms_form("ACK 3"))
    assert status == 200
    bad = sign(hooks.public + SMS, sms_form("ACK 4"))  # signed without the query
    status, _ = await hooks.post(path, sms_form("ACK 4"), signature=bad)
    assert status == 403
    assert [r[2] for r in hooks.replies] == [3]


# --- status callbacks ------------------------------------------------------------------------


async def test_status_callback(hooks: Hooks) -> None:
    status, _ = await hooks.post(STATUS, status_form("undelivered", error="30003"))
    assert status == 204
    assert hooks.statuses == [(KNOWN_SID, "undelivered", "30003")]


async def test_unknown_sid_is_still_a_success(hooks: Hooks) -> None:
    unknown = "SM" + "00" * 16
    status, _ = await hooks.post(STATUS, status_form("delivered", sid=unknown))
    assert status == 204  # Twilio must not retry it
    assert hooks.statuses == [(unknown, "delivered", "")]


async def test_out_of_order_statuses_reach_the_callback(hooks: Hooks) -> None:
    await hooks.post(STATUS, status_form("delivered"), token="t1")
    await hooks.post(STATUS, status_form("sent"), token="t2")
    assert [s[1] for s in hooks.statuses] == ["delivered", "sent"]
    # whoever records them keeps "delivered"
    assert not status_advances("delivered", "sent")


async def test_replayed_status_is_not_handled_twice(hooks: Hooks) -> None:
    for _ in range(3):
        status, _ = await hooks.post(STATUS, status_form("delivered"), token="t-same")
        assert status == 204
    assert len(hooks.statuses) == 1


async def test_failed_callback_answers_500_and_forgets_the_token(hooks: Hooks) -> None:
    hooks.fail = True
    status, _ = await hooks.post(STATUS, status_form("delivered"), token="t-retry")
    assert status == 500
    assert hooks.forgotten == ["t-retry"]
    hooks.fail = False
    # Twilio's retry carries the same token and is handled, not taken for a replay
    status, _ = await hooks.post(STATUS, status_form("delivered"), token="t-retry")
    assert status == 204
    assert hooks.statuses == [(KNOWN_SID, "delivered", "")]


async def test_json_body_with_body_sha256(hooks: Hooks) -> None:
    payload = {"MessageSid": KNOWN_SID, "MessageStatus": "read", "ErrorCode": None}
    raw = json.dumps(payload).encode()
    path = f"{STATUS}?bodySHA256={hashlib.sha256(raw).hexdigest()}"
    assert hooks.session is not None

    async def post(body: bytes) -> int:
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Signature": sign(hooks.public + path, []),
        }
        assert hooks.session is not None
        async with hooks.session.post(hooks.local + path, data=body, headers=headers) as resp:
            return resp.status

    assert await post(raw) == 204
    assert hooks.statuses == [(KNOWN_SID, "read", "")]
    tampered = raw.replace(b"read", b"sent")
    assert await post(tampered) == 403
    assert len(hooks.statuses) == 1
