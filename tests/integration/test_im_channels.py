"""The IM channels and the webhook against a real HTTP server on 127.0.0.1 (ephemeral port).

One aiohttp server per test stands in for the provider: it records each request (raw path,
headers, body, the client's port) and answers from a script: success, 5xx, 429 with
Retry-After, a reset after reading the body, a stall past the client's timeout, or HTTP 200
with a provider error code. Signatures are verified here with the algorithms written again
from the providers' documents.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from alertd.errors import FailureReason, NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.im.config import (
    DingtalkChannelConfig,
    FeishuChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WecomChannelConfig,
)
from alertd.notify.im.notifiers import im_notifier
from alertd.notify.notifier import Notifier
from alertd.notify.webhook.config import WebhookChannelConfig
from alertd.notify.webhook.notifier import WebhookNotifier

pytestmark = [pytest.mark.integration, pytest.mark.both_loops]

NOW = 1_755_684_000.25  # the channels' wall clock: signatures are checked exactly
SECRET = "SECa1b2c3d4e5f6a7b8c9d0"
TOKEN = "tok3n-d0-not-leak-0123456789"
KEY = "42:opened:ops:1755684000"
STALL_TIMEOUT = 0.3  # seconds; the fake never answers within it

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the fake provider received it."""

    raw_path: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class FakeProvider:
    """A scripted HTTP peer: replies are used in order, then ``default`` for the rest."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    default: Reply | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(
            Seen(
                raw_path=request.raw_path,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                client_port=peer[1] if peer else -1,
            )
        )
        reply = self.replies.pop(0) if self.replies else self.default
        assert reply is not None, "the test scripted too few replies"
        return await reply(request)


def answer(status: int = 200, body: Any = None, text: str = "", **headers: str) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        if body is not None:
            return web.json_response(body, status=status, headers=headers)
        return web.Response(status=status, text=text, headers=headers)

    return reply


async def reset(request: web.Request) -> web.StreamResponse:
    """Read the request (done by ``handle``), then drop the connection without answering."""
    assert request.transport is not None
    request.transport.abort()
    raise asyncio.CancelledError  # nothing to write on an aborted connection


def stall(provider: FakeProvider) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await provider.release.wait()  # until teardown: far past the client's timeout
        return web.Response(text="too late")

    return reply


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


@pytest.fixture
async def notifiers() -> AsyncIterator[list[Notifier]]:
    """Notifiers built by a test, closed after it (an open session is a ResourceWarning)."""
    made: list[Notifier] = []
    yield made
    for notifier in made:
        await notifier.close()


def notification(*recipients: str, url: str = "") -> Notification:
    incident = Incident(
        id=42,
        fingerprint="c6eadffa33fcdf37",
        rule="cpu_high",
        metric="cpu",
        labels=make_labels({"instance": "sw-core-01", "role": "核心交换机"}),
        level=Level.CRITICAL,
        priority="P1",
        state=IncidentState.OPEN,
        summary="CPU 92% on sw-core-01",
        value=92.0,
        opened_at=1_755_680_000.0,
        updated_at=1_755_680_000.0,
    )
    return Notification(incident, Transition.OPENED, "ops", recipients=recipients, key=KEY, url=url)


# where each provider's token sits in its URL, and what a success looks like
PATHS = {
    "wecom": f"/cgi-bin/webhook/send?key={TOKEN}",
    "dingtalk": f"/robot/send?access_token={TOKEN}",
    "feishu": f"/open-apis/bot/v2/hook/{TOKEN}",
    "slack": f"/services/T0123ABCD/B0123ABCD/{TOKEN}",
    "teams": f"/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig={TOKEN}",
    "webhook": f"/hooks/ops/{TOKEN}",
}
SUCCESS = {
    "wecom": answer(body={"errcode": 0, "errmsg": "ok"}),
    "dingtalk": answer(body={"errcode": 0, "errmsg": "ok"}),
    "feishu": answer(body={"code": 0, "msg": "success", "data": {}}),
    "slack": answer(text="ok"),
    "teams": answer(status=202),
    "webhook": answer(status=200, text=""),
}
KINDS = sorted(PATHS)


def build(kind: str, provider: FakeProvider, made: list[Notifier], **fields: Any) -> Notifier:
    data = {"type": kind, "url": provider.url(PATHS[kind]), **fields}
    notifier: Notifier
    if kind == "webhook":
        notifier = WebhookNotifier(
            "ops-hook", WebhookChannelConfig.model_validate(data), wall=lambda: NOW
        )
    else:
        models = {
            "wecom": WecomChannelConfig,
            "dingtalk": DingtalkChannelConfig,
            "feishu": FeishuChannelConfig,
            "slack": SlackChannelConfig,
            "teams": TeamsChannelConfig,
        }
        notifier = im_notifier(f"ops-{kind}", models[kind].model_validate(data), wall=lambda: NOW)
    made.append(notifier)
    return notifier


async def failed(notifier: Notifier, n: Notification | None = None) -> NotifyError:
    with pytest.raises(NotifyError) as info:
        await notifier.send(n or notification())
    assert TOKEN not in str(info.value)  # never, whatever went wrong
    return info.value


# -- successes, payloads and signatures ----------------------------------------------------
async def test_wecom_text_payload(provider: FakeProvider, notifiers: list[Notifier]) -> None:
    provider.default = SUCCESS["wecom"]
    await build("wecom", provider, notifiers).send(notification("zhangsan", "13800001111"))
    (seen,) = provider.seen
    assert seen.query == {"key": TOKEN}
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.json() == {
        "msgtype": "text",
        "text": {
            "content": "[P1] OPENED #42 critical: CPU 92% on sw-core-01",
            "mentioned_list": ["zhangsan"],
            "mentioned_mobile_list": ["13800001111"],
        },
    }


def ref_dingtalk_sign(ts_ms: str) -> str:
    mac = hmac.new(SECRET.encode(), f"{ts_ms}\n{SECRET}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


async def test_dingtalk_signed_query_and_mentions(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = SUCCESS["dingtalk"]
    notifier = build("dingtalk", provider, notifiers, secret=SECRET)
    await notifier.send(notification("13800001111"))
    (seen,) = provider.seen
    assert seen.query["access_token"] == TOKEN
    assert seen.query["timestamp"] == "1755684000250"  # milliseconds
    assert seen.query["sign"] == ref_dingtalk_sign("1755684000250")
    # byte for byte on the wire: base64's + / = percent-encoded
    assert seen.raw_path.endswith("&sign=" + quote(ref_dingtalk_sign("1755684000250"), safe=""))
    body = seen.json()
    assert body["at"] == {"atMobiles": ["13800001111"], "atUserIds": [], "isAtAll": False}
    assert body["text"]["content"].endswith(" @13800001111")


def ref_feishu_sign(ts: str) -> str:
    mac = hmac.new(f"{ts}\n{SECRET}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


async def test_feishu_signed_body_and_post_with_link(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = SUCCESS["feishu"]
    link = "https://alertd.example/incidents/42"
    await build("feishu", provider, notifiers, secret=SECRET).send(notification("ou_abc", url=link))
    (seen,) = provider.seen
    body = seen.json()
    assert seen.query == {}
    assert body["timestamp"] == "1755684000"  # seconds, a string
    assert body["sign"] == ref_feishu_sign("1755684000")
    assert body["msg_type"] == "post"
    line = body["content"]["post"]["zh_cn"]["content"][0]
    assert {"tag": "a", "text": "Open incident", "href": link} in line
    assert {"tag": "at", "user_id": "ou_abc"} in line


async def test_slack_payload(provider: FakeProvider, notifiers: list[Notifier]) -> None:
    provider.default = SUCCESS["slack"]
    await build("slack", provider, notifiers).send(notification("U0123ABCD"))
    (seen,) = provider.seen
    body = seen.json()
    assert body["text"] == "[P1] OPENED #42 critical: CPU 92% on sw-core-01"
    assert body["blocks"] == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "[P1] OPENED #42 critical: CPU 92% on sw-core-01\n<@U0123ABCD>",
            },
        }
    ]


async def test_teams_adaptive_card(provider: FakeProvider, notifiers: list[Notifier]) -> None:
    provider.default = SUCCESS["teams"]
    link = "https://alertd.example/incidents/42"
    await build("teams", provider, notifiers).send(notification(url=link))
    (seen,) = provider.seen
    body = seen.json()
    assert body["type"] == "message"
    card = body["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert card["content"]["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Open incident",
        "url": link,
    }


async def test_webhook_signed_payload_and_idempotency_key(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = SUCCESS["webhook"]
    notifier = build(
        "webhook", provider, notifiers, secret=SECRET, headers={"Authorization": "Bearer x"}
    )
    await notifier.send(notification())
    (seen,) = provider.seen
    assert seen.headers["Idempotency-Key"] == KEY
    assert seen.headers["Authorization"] == "Bearer x"
    assert seen.headers["X-Alertd-Timestamp"] == "1755684000"
    expected = hmac.new(SECRET.encode(), b"1755684000." + seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["X-Alertd-Signature"] == f"sha256={expected}"
    body = seen.json()
    assert body["receiver"] == "ops-hook"
    assert body["alerts"][0]["labels"]["role"] == "核心交换机"
    assert body["incident"]["id"] == 42


async def test_webhook_unsigned_has_no_signature_headers(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = SUCCESS["webhook"]
    await build("webhook", provider, notifiers).send(notification())
    (seen,) = provider.seen
    assert "X-Alertd-Signature" not in seen.headers
    assert "X-Alertd-Timestamp" not in seen.headers
    assert seen.headers["Idempotency-Key"] == KEY


async def test_webhook_reuses_one_connection(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = SUCCESS["webhook"]
    notifier = build("webhook", provider, notifiers)
    for _ in range(20):
        await notifier.send(notification())
    assert len(provider.seen) == 20
    assert len({s.client_port for s in provider.seen}) == 1  # one kept-alive connection


# -- failures, every channel ---------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_500_burst_then_success(
    kind: str, provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.replies = [answer(500, text=f"boom {TOKEN}")] * 3
    provider.default = SUCCESS[kind]
    notifier = build(kind, provider, notifiers)
    for _ in range(3):
        err = await failed(notifier)
        assert (err.retryable, err.ambiguous, err.reason) == (
            True,
            True,
            FailureReason.SERVER_ERROR,
        )
        assert f"{kind} " in str(err)
        assert "incident #42" in str(err)
        assert "HTTP 500" in str(err)
        assert "<secret>" in str(err)
    await notifier.send(notification())  # one attempt each: the channel never retries itself
    assert len(provider.seen) == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_429_with_retry_after(
    kind: str, provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.replies = [
        answer(429, text="rate_limited", **{"Retry-After": "30"}),
        answer(429, text="rate_limited", **{"Retry-After": formatdate(NOW + 120, usegmt=True)}),
    ]
    notifier = build(kind, provider, notifiers)
    seconds = await failed(notifier)
    date = await failed(notifier)
    for err in (seconds, date):
        assert (err.retryable, err.ambiguous, err.reason) == (
            True,
            False,
            FailureReason.RATE_LIMITED,
        )
    assert seconds.retry_after == 30.0
    assert date.retry_after == pytest.approx(119.75)  # the date has whole seconds


@pytest.mark.parametrize("kind", KINDS)
async def test_reset_after_the_body_was_read_is_ambiguous(
    kind: str, provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = reset
    err = await failed(build(kind, provider, notifiers))
    assert len(provider.seen) == 1  # the provider had the whole request
    assert provider.seen[0].body
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.CONNECT)


@pytest.mark.parametrize("kind", KINDS)
async def test_stall_past_the_timeout_is_ambiguous(
    kind: str, provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = stall(provider)
    err = await failed(build(kind, provider, notifiers, timeout=STALL_TIMEOUT))
    assert len(provider.seen) == 1
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.TIMEOUT)


@pytest.mark.parametrize("kind", KINDS)
async def test_refused_connection_is_retryable_and_not_ambiguous(
    kind: str, closed_port: int, notifiers: list[Notifier]
) -> None:
    nobody = FakeProvider(port=closed_port)
    err = await failed(build(kind, nobody, notifiers))
    assert (err.retryable, err.ambiguous, err.reason) == (True, False, FailureReason.CONNECT)


@pytest.mark.parametrize("kind", KINDS)
async def test_404_is_permanent(
    kind: str, provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = answer(404, text=f"no hook {TOKEN}")
    err = await failed(build(kind, provider, notifiers))
    assert (err.retryable, err.reason) == (False, FailureReason.CLIENT_ERROR)


# -- HTTP 200 with a provider error --------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "body", "retryable", "reason"),
    [
        ("wecom", {"errcode": 45009, "errmsg": "api freq out of limit"}, True, "rate_limited"),
        ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}, False, "auth"),
        ("dingtalk", {"errcode": 130101, "errmsg": "send too fast"}, True, "rate_limited"),
        ("dingtalk", {"errcode": 310000, "errmsg": "sign not match"}, False, "auth"),
        ("feishu", {"code": 11232, "msg": "frequency limited"}, True, "rate_limited"),
        ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
         False, "auth"),
        ("feishu", {"StatusCode": 9499, "StatusMessage": "Bad Request"}, False, "client_error"),
    ],
)  # fmt: skip
async def test_200_with_an_error_code_is_a_failure(
    kind: str,
    body: dict[str, Any],
    retryable: bool,
    reason: str,
    provider: FakeProvider,
    notifiers: list[Notifier],
) -> None:
    provider.default = answer(200, body)
    err = await failed(build(kind, provider, notifiers))
    assert (err.retryable, err.ambiguous, err.reason.value) == (retryable, False, reason)
    code = body.get("errcode", body.get("code", body.get("StatusCode")))
    assert f"error {code}" in str(err)
    if reason == "rate_limited" and kind == "wecom":
        assert err.retry_after is not None
        assert err.retry_after >= 60


async def test_feishu_sign_mismatch_says_check_the_clock(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = answer(200, {"code": 19021, "msg": "sign match fail"})
    err = await failed(build("feishu", provider, notifiers, secret=SECRET))
    assert "check the clock" in str(err)
    assert SECRET not in str(err)


async def test_slack_200_that_is_not_ok_is_an_ambiguous_failure(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    provider.default = answer(200, text="<html>captive portal</html>")
    err = await failed(build("slack", provider, notifiers))
    assert (err.retryable, err.ambiguous) == (True, True)
    assert "captive portal" in str(err)


async def test_channel_logs_never_carry_the_token(
    provider: FakeProvider, notifiers: list[Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    provider.replies = [answer(500, text=TOKEN), SUCCESS["dingtalk"]]
    notifier = build("dingtalk", provider, notifiers, secret=SECRET)
    with caplog.at_level("DEBUG", logger="alertd"):
        await failed(notifier)
        await notifier.send(notification())
    ours = [r for r in caplog.records if r.name.startswith("alertd")]
    assert ours  # the delivery is logged (at DEBUG) ...
    for record in ours:  # ... without the URL's token or the signing secret
        assert TOKEN not in record.getMessage()
        assert SECRET not in record.getMessage()


async def test_a_huge_answer_is_read_only_up_to_the_cap(
    provider: FakeProvider, notifiers: list[Notifier]
) -> None:
    huge = "x" * (4 * 1024 * 1024)
    provider.replies = [answer(500, text=huge)]
    provider.default = SUCCESS["webhook"]
    notifier = build("webhook", provider, notifiers)
    err = await failed(notifier)
    assert len(str(err)) < 600  # the answer is quoted short
    await notifier.send(notification())
    # the unread rest cannot be skipped on a kept-alive connection: it was dropped
    assert len({s.client_port for s in provider.seen}) == 2
