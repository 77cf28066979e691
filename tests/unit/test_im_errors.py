"""How HTTP channels classify failures, parse Retry-After and keep URL tokens out of errors."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import ValidationError

from alertd.errors import FailureReason, NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition
from alertd.notify import http_wire as wire
from alertd.notify import render
from alertd.notify.http import HttpClient, Response, parse_retry_after, redact_url
from alertd.notify.im import dingtalk, feishu, wecom
from alertd.notify.im.base import check_code
from alertd.notify.im.config import WecomChannelConfig
from alertd.notify.webhook.config import WebhookChannelConfig

NOW = 1_755_684_000.0
WHAT = "wecom robot incident #42"
WECOM_TOKEN = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
SLACK_TOKEN = "T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx"
FEISHU_TOKEN = "7f2c1d2e-aaaa-bbbb-cccc-123456789abc"
DING_TOKEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
TEAMS_SIG = "q1w2e3r4t5y6u7i8o9p0AsDfGhJkL"
URLS = {
    "wecom": (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_TOKEN}", None),
    "slack": (f"https://hooks.slack.com/services/{SLACK_TOKEN}", 1),
    "feishu": (f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}", 4),
    "dingtalk": (f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}", None),
    "teams": (
        "https://prod-00.westus.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/"
        f"invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}",
        None,
    ),
}
TOKENS = {
    "wecom": [WECOM_TOKEN],
    "slack": ["abcdefghijklmnopqrstuvwx", "T0123ABCD"],
    "feishu": [FEISHU_TOKEN],
    "dingtalk": [DING_TOKEN],
    "teams": [TEAMS_SIG],
}


def client(url: str = URLS["wecom"][0], keep_path: int | None = None) -> HttpClient:
    return HttpClient(url, timeout=0.5, keep_path=keep_path, wall=lambda: NOW)


def response(status: int, body: Any = b"", **headers: str) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, "Reason", CIMultiDictProxy(CIMultiDict(headers)), raw)


# -- HTTP status ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "retryable", "ambiguous", "reason"),
    [
        (500, True, True, FailureReason.SERVER_ERROR),
        (502, True, True, FailureReason.SERVER_ERROR),
        (504, True, True, FailureReason.SERVER_ERROR),
        (503, True, False, FailureReason.SERVER_ERROR),
        (501, True, False, FailureReason.SERVER_ERROR),
        (429, True, False, FailureReason.RATE_LIMITED),
        (408, True, False, FailureReason.TIMEOUT),
        (401, False, False, FailureReason.AUTH),
        (403, False, False, FailureReason.AUTH),
        (400, False, False, FailureReason.CLIENT_ERROR),
        (404, False, False, FailureReason.CLIENT_ERROR),
        (410, False, False, FailureReason.CLIENT_ERROR),
        (302, False, False, FailureReason.CLIENT_ERROR),
    ],
)
def test_status_classification(
    status: int, retryable: bool, ambiguous: bool, reason: FailureReason
) -> None:
    err = client().status_error(WHAT, response(status, b"no"))
    assert (err.retryable, err.ambiguous, err.reason) == (retryable, ambiguous, reason)
    assert err.retry_after is None
    assert str(err).startswith(f"{WHAT}: POST https://qyapi.weixin.qq.com/")
    assert f"HTTP {status}" in str(err)


def test_429_carries_retry_after_seconds() -> None:
    err = client().status_error(WHAT, response(429, b"slow down", **{"Retry-After": "7"}))
    assert err.reason is FailureReason.RATE_LIMITED
    assert err.retry_after == 7.0
    assert "slow down" in str(err)


def test_503_with_retry_after_is_a_rate_limit() -> None:
    date = "Wed, 20 Aug 2025 10:02:00 GMT"  # NOW + 120 s
    err = client().status_error(WHAT, response(503, **{"Retry-After": date}))
    assert err.reason is FailureReason.RATE_LIMITED
    assert err.retryable
    assert err.retry_after == 120.0


def test_redirect_is_not_followed_and_says_so() -> None:
    err = client().status_error(WHAT, response(301, Location="https://elsewhere/"))
    assert "update the url" in str(err)
    assert "elsewhere" not in str(err)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 20 Aug 2025 10:01:00 GMT", 60.0),
        ("Wed, 20 Aug 2025 09:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),  # review finding: the Twilio path took it and gave the page up
        ("1e400", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


# -- transport -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "retryable", "ambiguous", "reason", "says"),
    [
        (
            wire.ConnectError("cannot connect to qyapi.weixin.qq.com:443: Connection refused"),
            True,
            False,
            FailureReason.CONNECT,
            "cannot connect to qyapi.weixin.qq.com:443",
        ),
        (
            wire.ResolveError("cannot resolve qyapi.weixin.qq.com: Name or service not known"),
            True,
            False,
            FailureReason.CONNECT,
            "cannot resolve",
        ),
        (
            wire.CertificateError("self-signed certificate"),
            False,
            False,
            FailureReason.CONNECT,
            "TLS certificate rejected: self-signed certificate",
        ),
        (wire.ConnectTimeout("t"), True, False, FailureReason.TIMEOUT, "(nothing sent)"),
        (wire.AnswerTimeout("t"), True, True, FailureReason.TIMEOUT, "no answer within 0.5s"),
        (TimeoutError(), True, True, FailureReason.TIMEOUT, "no answer within 0.5s"),
        (
            wire.Disconnected("d"),
            True,
            True,
            FailureReason.CONNECT,
            "server closed the connection before answering",
        ),
        (
            wire.ConnectionFailed("Connection reset by peer"),
            True,
            True,
            FailureReason.CONNECT,
            "connection failed mid-request: Connection reset by peer",
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            True,
            True,
            FailureReason.CONNECT,
            "connection failed mid-request: Connection reset by peer",
        ),
        (wire.CutShort("c"), True, True, FailureReason.CONNECT, "answer cut short"),
        (
            wire.MalformedAnswer("Invalid response status"),
            True,
            True,
            FailureReason.SERVER_ERROR,
            "malformed HTTP answer: Invalid response status",
        ),
        (wire.PoolClosed("closed"), True, False, FailureReason.OTHER, "channel closed"),
        (wire.InvalidUrl("x"), False, False, FailureReason.UNCONFIGURED, "invalid url"),
        (
            wire.InvalidRequest("header 'Host' is set by alertd"),
            False,
            False,
            FailureReason.UNCONFIGURED,
            "invalid request: header 'Host'",
        ),
    ],
)
def test_transport_classification(
    exc: BaseException, retryable: bool, ambiguous: bool, reason: FailureReason, says: str
) -> None:
    err = client().transport_error(WHAT, exc)
    assert (err.retryable, err.ambiguous, err.reason) == (retryable, ambiguous, reason)
    assert says in str(err)
    assert WECOM_TOKEN not in str(err)


@pytest.mark.parametrize("exc", [wire.ConnectTimeout("t"), wire.CertificateError("c")])
def test_nothing_was_sent_before_the_connection_was_up(exc: wire.WireError) -> None:
    assert not exc.sent
    assert not client().transport_error(WHAT, exc).ambiguous


async def test_post_after_close_is_a_retryable_error() -> None:
    http = client()
    await http.close()
    with pytest.raises(NotifyError) as info:
        await http.post(WHAT, b"{}", {})
    assert info.value.retryable
    assert "closed" in str(info.value)


# -- provider result codes -----------------------------------------------------------------
def test_wecom_errcode_zero_is_success() -> None:
    assert check_code(client(), WHAT, response(200, {"errcode": 0, "errmsg": "ok"}), {}) is None


def test_wecom_45009_is_a_rate_limit_of_more_than_a_minute() -> None:
    err = check_code(
        client(), WHAT, response(200, {"errcode": 45009, "errmsg": "freq"}), wecom.CODES
    )
    assert err is not None
    assert err.reason is FailureReason.RATE_LIMITED
    assert err.retryable
    assert err.retry_after is not None
    assert err.retry_after > 60  # the reference: "back off for more than 60 s"


def test_wecom_invalid_key_is_permanent_auth() -> None:
    err = check_code(client(), WHAT, response(200, {"errcode": 93000}), wecom.CODES)
    assert err is not None
    assert (err.retryable, err.reason) == (False, FailureReason.AUTH)
    assert "error 93000" in str(err)


def test_unknown_errcode_on_200_is_permanent() -> None:
    err = check_code(client(), WHAT, response(200, {"errcode": 40008, "errmsg": "bad"}), {})
    assert err is not None
    assert (err.retryable, err.ambiguous, err.reason) == (False, False, FailureReason.CLIENT_ERROR)
    assert "40008" in str(err)
    assert "bad" in str(err)


def test_200_without_a_code_is_an_ambiguous_failure() -> None:
    err = check_code(client(), WHAT, response(200, b"<html>proxy</html>"), wecom.CODES)
    assert err is not None
    assert (err.retryable, err.ambiguous) == (True, True)


def test_5xx_with_a_code_is_classified_by_status() -> None:
    err = check_code(client(), WHAT, response(502, {"errcode": -1}), wecom.CODES)
    assert err is not None
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.SERVER_ERROR)


def test_dingtalk_130101_is_a_rate_limit() -> None:
    err = check_code(client(), WHAT, response(200, {"errcode": 130101}), dingtalk.CODES)
    assert err is not None
    assert (err.retryable, err.reason) == (True, FailureReason.RATE_LIMITED)
    assert err.retry_after == 600.0


def test_dingtalk_310000_names_the_security_settings() -> None:
    err = check_code(client(), WHAT, response(200, {"errcode": 310000}), dingtalk.CODES)
    assert err is not None
    assert (err.retryable, err.reason) == (False, FailureReason.AUTH)
    assert "secret" in str(err)


def feishu_check(resp: Response) -> NotifyError | None:
    return check_code(
        client(),
        WHAT,
        resp,
        feishu.CODES,
        code_keys=("code", "StatusCode"),
        message_keys=("msg", "StatusMessage"),
    )


def test_feishu_code_and_legacy_status_code() -> None:
    assert feishu_check(response(200, {"code": 0, "msg": "success", "data": {}})) is None
    assert feishu_check(response(200, {"StatusCode": 0, "StatusMessage": "success"})) is None


def test_feishu_19021_says_check_the_clock_and_the_secret() -> None:
    for status in (200, 400):  # a 4xx carrying the code is classified by the code
        err = feishu_check(response(status, {"code": 19021, "msg": "sign match fail"}))
        assert err is not None
        assert (err.retryable, err.reason) == (False, FailureReason.AUTH)
        assert "check the clock" in str(err)
        assert "the secret" in str(err)


def test_feishu_11232_is_a_rate_limit() -> None:
    err = feishu_check(response(200, {"code": 11232, "msg": "frequency limited"}))
    assert err is not None
    assert (err.retryable, err.reason) == (True, FailureReason.RATE_LIMITED)


# -- redaction -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(URLS))
def test_redacted_url_hides_the_token(kind: str) -> None:
    url, keep = URLS[kind]
    shown = redact_url(url, keep)
    assert "<secret>" in shown
    for token in TOKENS[kind]:
        assert token not in shown
    assert shown.startswith("https://")


def test_redacted_url_keeps_what_helps() -> None:
    assert redact_url(URLS["slack"][0], 1) == "https://hooks.slack.com/services/<secret>"
    assert (
        redact_url(URLS["wecom"][0])
        == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<secret>"
    )
    assert redact_url("http://u:p@127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"


@pytest.mark.parametrize("kind", sorted(URLS))
def test_errors_never_contain_the_token_even_when_the_provider_echoes_it(kind: str) -> None:
    url, keep = URLS[kind]
    http = HttpClient(url, timeout=1, keep_path=keep, secrets=["signing-secret-1"])
    echo = f"no such hook {url} token={' '.join(TOKENS[kind])} signing-secret-1".encode()
    errors = [
        http.status_error(WHAT, response(404, echo)),
        http.error(WHAT, echo.decode(), retryable=False, reason=FailureReason.OTHER),
        http.transport_error(WHAT, wire.MalformedAnswer(echo.decode())),
    ]
    for err in errors:
        for token in [*TOKENS[kind], "signing-secret-1"]:
            assert token not in str(err)
    assert "<secret>" in str(errors[0])
    assert TOKENS[kind][0] not in repr(http)


def test_errors_show_a_url_with_nothing_secret_in_it_as_it_is() -> None:
    # which endpoint failed is what the reader needs; the URL was all "<secret>" before
    plain = HttpClient("http://127.0.0.1:9312/err", timeout=1, keep_path=1)
    err = plain.status_error(WHAT, response(500))
    assert "POST http://127.0.0.1:9312/err" in str(err)
    tokened = HttpClient("http://127.0.0.1:9312/hooks/abc123token", timeout=1, keep_path=1)
    err = tokened.status_error(
        WHAT, response(500, b"bad hook http://127.0.0.1:9312/hooks/abc123token")
    )
    assert "POST http://127.0.0.1:9312/hooks/<secret>" in str(err)
    assert "abc123token" not in str(err)


@pytest.mark.parametrize("kind", ["wecom", "webhook"])
def test_a_template_naming_an_unknown_variable_is_refused_at_load(kind: str) -> None:
    data = {"type": kind, "url": URLS["wecom"][0], "template": {"short": "{{ no_such_var }}"}}
    model = WecomChannelConfig if kind == "wecom" else WebhookChannelConfig
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert "template.short" in str(info.value)
    assert "unknown template variable(s) no_such_var" in str(info.value)


@pytest.mark.parametrize("kind", ["wecom", "webhook"])
async def test_a_template_that_fails_on_one_pages_data_sends_the_default_text(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # passes at load (the sample is acknowledged), fails for an incident nobody acknowledged
    data = {"type": kind, "url": URLS["wecom"][0]}
    template = {"short": "ack by {{ acknowledged_by.upper() }}"}
    model = WecomChannelConfig if kind == "wecom" else WebhookChannelConfig
    config = model.model_validate({**data, "template": template})
    incident = Incident(
        1, "f", "r", "m", (), Level.MAJOR, "P2", IncidentState.OPEN, "s", 1.0, NOW, NOW
    )
    page = Notification(incident, Transition.OPENED, "w")
    assert render.short_text(page, config.template) == render.short_text(page)
    assert "its template failed" in caplog.text
    acked = replace(page, incident=replace(incident, acknowledged_by="li"))
    assert render.short_text(acked, config.template) == "ack by LI"


def test_path_words_are_not_scrubbed_out_of_messages_but_tokens_and_the_path_are() -> None:
    """Admin user test: a webhook at /e404/ticketing turned "webhook ticketing incident #0"
    into "webhook <secret> incident #0", and /e500/direct blanked "direct-hook"."""
    http = HttpClient("http://127.0.0.1:9/hooks/incident/ticketing", timeout=1, keep_path=1)
    text = "webhook ticketing: incident #4 via direct-hook"
    assert http.scrub(text) == text
    assert http.scrub("no route for /hooks/incident/ticketing") == "no route for /hooks/<secret>"
    # verification: one hidden segment that is a word is no secret either
    alone = HttpClient("http://127.0.0.1:9/e404/ticketing", timeout=1, keep_path=1)
    assert alone.scrub("webhook ticketing incident #0") == "webhook ticketing incident #0"
    token = HttpClient("http://127.0.0.1:9/hooks/a1b2c3/Zkxqwe", timeout=1, keep_path=1)
    assert token.scrub("bad key a1b2c3 or Zkxqwe") == "bad key <secret> or <secret>"
