"""The SMS channel through the twilio library against a stand-in for Twilio's REST API
(aiohttp on 127.0.0.1, ephemeral port): the request Twilio would see, and every failure the
outbox must tell apart (reliability.md S6)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alertd.config.load import load_config
from alertd.errors import FailureReason, NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.sms.notifier import SmsNotifier
from alertd.notifytest import send_test

pytestmark = pytest.mark.integration

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-s3cret"
MESSAGE_SID = "SM" + "5e1f" * 8
PHONE = "+8613800001111"
SENDER = "+15017122661"
CALLBACK = "https://alertd.example/hooks/twilio/status"

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the stand-in saw it."""

    method: str
    path: str
    authorization: str
    content_type: str
    form: dict[str, list[str]]


@dataclass(slots=True)
class FakeTwilio:
    url: str
    requests: list[Seen] = field(default_factory=list)
    behaviour: Behaviour | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)


def message_json(form: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "sid": MESSAGE_SID,
        "account_sid": SID,
        "status": "queued",
        "to": form["To"][0],
        "from": form.get("From", [None])[0],
        "body": form["Body"][0],
        "num_segments": "1",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "date_created": "Thu, 01 Jan 2026 12:00:00 +0000",
        "date_updated": "Thu, 01 Jan 2026 12:00:00 +0000",
        "date_sent": None,
        "uri": f"/2010-04-01/Accounts/{SID}/Messages/{MESSAGE_SID}.json",
    }


def error_json(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio(url="")

    async def handle(request: web.Request) -> web.StreamResponse:
        post = await request.post()
        form: dict[str, list[str]] = {}
        for name, value in post.items():
            form.setdefault(name, []).append(str(value))
        fake.requests.append(
            Seen(
                request.method,
                request.path,
                request.headers.get("Authorization", ""),
                request.headers.get("Content-Type", ""),
                form,
            )
        )
        if fake.behaviour is not None:
            return await fake.behaviour(request)
        return web.json_response(message_json(form), status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        fake.release.set()  # let a stalled handler finish so the server can stop
        await runner.cleanup()


def make_config(base_url: str, **fields: Any) -> SmsChannelConfig:
    data: dict[str, Any] = {
        "type": "sms",
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": SENDER,
        "api_base_url": base_url,
        "status_callback_url": CALLBACK,
        "timeout": 5.0,
    }
    data.update(fields)
    return SmsChannelConfig.model_validate(data)


def make_notification() -> Notification:
    incident = Incident(
        id=42,
        fingerprint="0123456789abcdef",
        rule="cpu",
        metric="cpu.percent",
        labels=make_labels({"instance": "sw-core-01"}),
        level=Level.CRITICAL,
        priority="P1",
        state=IncidentState.OPEN,
        summary="CPU 92% on sw-core-01",
        value=92.0,
        opened_at=1714564800.0,
        updated_at=1714564800.0,
    )
    return Notification(incident, Transition.OPENED, "oncall-sms", recipients=(PHONE,), key="k")


@pytest.fixture
async def notifier(twilio: FakeTwilio) -> AsyncIterator[SmsNotifier]:
    n = SmsNotifier("oncall-sms", make_config(twilio.url))
    try:
        yield n
    finally:
        await n.close()


async def failure(notifier: SmsNotifier) -> NotifyError:
    with pytest.raises(NotifyError) as info:
        await notifier.send(make_notification())
    return info.value


async def test_message_created(twilio: FakeTwilio, notifier: SmsNotifier) -> None:
    sent = await notifier.send(make_notification())
    assert sent is not None
    assert sent.provider_id == MESSAGE_SID
    [seen] = twilio.requests
    assert seen.method == "POST"
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert seen.authorization == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert seen.content_type.startswith("application/x-www-form-urlencoded")
    assert seen.form == {
        "To": [PHONE],
        "From": [SENDER],
        "Body": ["[P1] OPENED #42 critical: CPU 92% on sw-core-01 Reply ACK 42 / RESOLVE 42"],
        "StatusCallback": [CALLBACK],
    }


async def test_messaging_service_and_base_path(twilio: FakeTwilio) -> None:
    service = "MG" + "fedcba9876543210" * 2
    cfg = make_config(
        twilio.url + "/twilio-proxy/", status_callback_url=None, messaging_service_sid=service
    )
    cfg = cfg.model_copy(update={"from_": None})
    notifier = SmsNotifier("oncall-sms", cfg)
    try:
        sent = await notifier.send(make_notification())
    finally:
        await notifier.close()
    assert sent.provider_id == MESSAGE_SID
    [seen] = twilio.requests
    assert seen.path == f"/twilio-proxy/2010-04-01/Accounts/{SID}/Messages.json"
    assert seen.form["MessagingServiceSid"] == [service]
    assert "From" not in seen.form
    assert "StatusCallback" not in seen.form


async def test_invalid_to_is_permanent(twilio: FakeTwilio, notifier: SmsNotifier) -> None:
    async def reply(_: web.Request) -> web.StreamResponse:
        return error_json(400, 21211, "The 'To' number +8613800001111 is not a valid phone number.")

    twilio.behaviour = reply
    err = await failure(notifier)
    assert (err.retryable, err.reason, err.ambiguous) == (False, FailureReason.RECIPIENT, False)
    assert "21211" in str(err)
    assert "is not a valid phone number" in str(err)
    assert len(twilio.requests) == 1  # no retry of its own


async def test_wrong_credentials_are_permanent(twilio: FakeTwilio, notifier: SmsNotifier) -> None:
    async def reply(_: web.Request) -> web.StreamResponse:
        return error_json(401, 20003, "Authenticate")

    twilio.behaviour = reply
    err = await failure(notifier)
    assert (err.retryable, err.reason) == (False, FailureReason.AUTH)
    assert TOKEN not in str(err)


async def test_an_empty_error_answer_is_named_once(
    twilio: FakeTwilio, notifier: SmsNotifier
) -> None:
    """Admin user test: an empty 401 read "HTTP 401: HTTP 401"."""

    async def reply(_: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    twilio.behaviour = reply
    err = await failure(notifier)
    assert "HTTP 401" in str(err)
    assert "HTTP 401: HTTP 401" not in str(err)


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("inf", None), ("nan", None)])
async def test_rate_limited_with_retry_after(
    twilio: FakeTwilio, notifier: SmsNotifier, header: str, seconds: float | None
) -> None:
    # review finding: "inf" was taken as is, so the page was given up instead of retried
    async def reply(_: web.Request) -> web.StreamResponse:
        response = error_json(429, 20429, "Too Many Requests")
        response.headers["Retry-After"] = header
        return response

    twilio.behaviour = reply
    err = await failure(notifier)
    assert (err.retryable, err.reason, err.ambiguous) == (True, FailureReason.RATE_LIMITED, False)
    assert err.retry_after == seconds  # None: the channel's own backoff
    assert len(twilio.requests) == 1


async def test_server_error_is_retryable_and_ambiguous(
    twilio: FakeTwilio, notifier: SmsNotifier
) -> None:
    async def reply(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="<html>upstream broke</html>")

    twilio.behaviour = reply
    err = await failure(notifier)
    assert (err.retryable, err.reason, err.ambiguous) == (True, FailureReason.SERVER_ERROR, True)
    assert "HTTP 500" in str(err)
    assert len(twilio.requests) == 1


async def test_stall_past_the_timeout_is_ambiguous(twilio: FakeTwilio) -> None:
    async def reply(_: web.Request) -> web.StreamResponse:
        await twilio.release.wait()
        return web.Response(status=503)

    twilio.behaviour = reply
    notifier = SmsNotifier("oncall-sms", make_config(twilio.url, timeout=0.3))
    try:
        err = await failure(notifier)
    finally:
        await notifier.close()
    assert (err.retryable, err.reason, err.ambiguous) == (True, FailureReason.TIMEOUT, True)
    assert len(twilio.requests) == 1  # the request body arrived before the stall


@pytest.fixture
async def resetting_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads one whole request, then resets the connection (RST)."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        bodies.append(await reader.readexactly(length))
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        server.close()
        await server.wait_closed()


async def test_reset_after_the_body_is_ambiguous(
    resetting_server: tuple[str, list[bytes]],
) -> None:
    url, bodies = resetting_server
    notifier = SmsNotifier("oncall-sms", make_config(url))
    try:
        err = await failure(notifier)
    finally:
        await notifier.close()
    assert (err.retryable, err.ambiguous) == (True, True)
    assert err.reason is FailureReason.CONNECT
    assert len(bodies) == 1
    assert b"To=%2B8613800001111" in bodies[0]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_connection_refused_is_retryable_and_not_ambiguous(closed_port: int) -> None:
    notifier = SmsNotifier("oncall-sms", make_config(f"http://127.0.0.1:{closed_port}"))
    try:
        err = await failure(notifier)
    finally:
        await notifier.close()
    assert (err.retryable, err.reason, err.ambiguous) == (True, FailureReason.CONNECT, False)


async def test_unreadable_success_is_ambiguous(twilio: FakeTwilio, notifier: SmsNotifier) -> None:
    async def reply(_: web.Request) -> web.StreamResponse:
        return web.Response(status=201, text="not json")

    twilio.behaviour = reply
    err = await failure(notifier)
    assert (err.retryable, err.ambiguous) == (True, True)


async def test_connections_are_reused_and_closed(twilio: FakeTwilio) -> None:
    notifier = SmsNotifier("oncall-sms", make_config(twilio.url))
    await notifier.send(make_notification())
    await notifier.send(make_notification())
    await notifier.close()
    await notifier.close()  # closing twice is harmless
    assert len(twilio.requests) == 2
    # a closed notifier opens a fresh session if used again (after a reload race)
    sent = await notifier.send(make_notification())
    await notifier.close()
    assert sent.provider_id == MESSAGE_SID


def test_message_json_is_what_twilio_sends() -> None:
    # the stand-in's answer carries the fields the library reads
    body = message_json({"To": [PHONE], "From": [SENDER], "Body": ["x"]})
    assert json.loads(json.dumps(body))["sid"] == MESSAGE_SID


async def test_notify_test_sends_one_sms_to_each_phone(twilio: FakeTwilio, tmp_path: Path) -> None:
    """User tests: a team of three phones, or two ``--to``, always printed FAILED ("want
    exactly one recipient phone, got 3") while real pages went out one a phone."""
    (tmp_path / "thresholds.yaml").write_text("rules: []\n")
    (tmp_path / "channels.yaml").write_text(
        f"""\
channels:
  sms: {{type: sms, account_sid: {SID}, auth_token: {TOKEN}, from: '{SENDER}',
         api_base_url: '{twilio.url}'}}
teams:
  tier1:
    members: [{{name: Ann, phone: '{PHONE}'}}, {{name: Bo, phone: '+15550000002'}}]
    channels: [sms]
routes:
  - notify: [tier1]
"""
    )
    config = load_config(tmp_path, env={})
    verdict, lines = await send_test(config, "sms", [], within=10.0)
    assert verdict == "delivered", lines
    assert sorted(r.form["To"][0] for r in twilio.requests) == ["+15550000002", PHONE]
    assert lines[0] == f"test message via sms to {PHONE}, +15550000002"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [PHONE, "+15550000002"]
    twilio.requests.clear()
    verdict, lines = await send_test(config, "sms", ["+15550000003"], within=10.0)
    assert (verdict, [r.form["To"][0] for r in twilio.requests]) == ("delivered", ["+15550000003"])
    assert lines[1].startswith("  ok: ")  # one recipient: no name before each attempt
