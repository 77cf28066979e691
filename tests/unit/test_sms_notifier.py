"""The SMS channel without a socket: config, message body, error classification, send logic
against a fake Twilio API, and the registry's choice of notifier."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alertd.config.channels import ChannelsFile
from alertd.errors import ConfigError, FailureReason, NotifyError
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify import render
from alertd.notify.channel_types import MEMBER_ADDRESS, ONE_MESSAGE_PER_RECIPIENT
from alertd.notify.notifier import Sent
from alertd.notify.registry import LogInstead, build_notifiers
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.sms.notifier import SmsNotifier, classify, reply_hint, sms_body
from alertd.notify.sms.segments import Encoding, encoding, segment_count
from alertd.notify.sms.twilio_api import (
    MessageCreated,
    TwilioApiError,
    TwilioTransportError,
)

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2
TOKEN = "twilio-auth-token-s3cret"
PHONE = "+8613800001111"


def make_config(**fields: Any) -> SmsChannelConfig:
    data: dict[str, Any] = {
        "type": "sms",
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": "+15017122661",
    }
    data.update(fields)
    return SmsChannelConfig.model_validate(data)


def make_notification(
    *recipients: str,
    summary: str = "CPU 92% on sw-core-01",
    state: IncidentState = IncidentState.OPEN,
    transition: Transition = Transition.OPENED,
) -> Notification:
    incident = Incident(
        id=42,
        fingerprint="0123456789abcdef",
        rule="cpu",
        metric="cpu.percent",
        labels=make_labels({"instance": "sw-core-01"}),
        level=Level.CRITICAL,
        priority="P1",
        state=state,
        summary=summary,
        value=92.0,
        opened_at=1714564800.0,
        updated_at=1714564800.0,
    )
    return Notification(incident, transition, "oncall-sms", recipients=recipients, key="k1")


class FakeApi:
    """Stands in for ``TwilioMessages``: records calls, answers or raises as told."""

    def __init__(self, result: MessageCreated | Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result = result or MessageCreated(sid="SM" + "ab" * 16, status="queued")
        self.closed = False

    async def create(self, **fields: Any) -> MessageCreated:
        self.calls.append(fields)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def close(self) -> None:
        self.closed = True


# --- config ----------------------------------------------------------------------------------


def test_config_defaults_and_aliases() -> None:
    cfg = make_config()
    assert cfg.configured
    assert cfg.from_ == "+15017122661"
    assert cfg.api_base_url == "https://api.twilio.com"
    assert cfg.max_segments == 3
    assert cfg.status_callback_url is None
    assert make_config(api_base_url="http://127.0.0.1:9999/").api_base_url == (
        "http://127.0.0.1:9999"
    )


def test_an_empty_channel_is_valid_but_not_configured() -> None:
    cfg = SmsChannelConfig.model_validate({"type": "sms"})
    assert not cfg.configured
    assert cfg.resolve_auth_token() is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"from": "15017122661"}, "E.164"),
        ({"from": "+1 501 712 2661"}, "E.164"),
        ({"account_sid": "AC123"}, "Account SID"),
        ({"messaging_service_sid": "MG1"}, "Messaging Service SID"),
        ({"auth_token_file": "token.txt"}, "exclusive"),
        ({"auth_token": None}, "account_sid needs auth_token"),
        ({"account_sid": ""}, "needs account_sid"),
        ({"from": None}, "set from"),
        ({"api_base_url": "api.twilio.com"}, r"http\(s\) URL"),
        ({"api_base_url": "https://api.twilio.com?x=1"}, "query string"),
        ({"status_callback_url": "ftp://x/status"}, r"http\(s\) URL"),
        ({"timeout": 0}, "greater than 0"),
        ({"max_segments": 11}, "less than or equal to 10"),
        ({"max_segments": 0}, "greater than or equal to 1"),
        ({"pager": True}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config(**fields)


def test_messaging_service_instead_of_from() -> None:
    cfg = make_config(**{"from": None, "messaging_service_sid": SERVICE})
    assert cfg.messaging_service_sid == SERVICE


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "twilio.token"
    path.write_text(TOKEN + "\n")
    cfg = make_config(auth_token=None, auth_token_file=str(path))
    assert cfg.resolve_auth_token() == TOKEN
    path.write_text("\n")
    with pytest.raises(ConfigError, match="file is empty"):
        cfg.resolve_auth_token()
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read") as info:
        SmsNotifier("oncall-sms", cfg)
    assert TOKEN not in str(info.value)


def test_secrets_stay_out_of_repr() -> None:
    cfg = make_config()
    notifier = SmsNotifier("oncall-sms", cfg)
    for text in (repr(cfg), str(cfg), repr(notifier), repr(cfg.model_dump())):
        assert TOKEN not in text
    assert SID not in repr(notifier)


# --- body ------------------------------------------------------------------------------------


def test_body_names_incident_priority_summary_and_how_to_answer() -> None:
    body = sms_body(make_notification(PHONE), make_config())
    assert body == ("[P1] OPENED #42 critical: CPU 92% on sw-core-01 Reply ACK 42 / RESOLVE 42")
    assert segment_count(body) == 1


def test_hint_follows_the_incident_state() -> None:
    assert reply_hint(make_notification(state=IncidentState.ACKNOWLEDGED)) == "Reply RESOLVE 42"
    resolved = make_notification(state=IncidentState.RESOLVED, transition=Transition.RESOLVED)
    assert reply_hint(resolved) == ""
    assert reply_hint(make_notification(transition=Transition.TEST)) == ""


@pytest.mark.parametrize("max_segments", [1, 2, 3])
def test_long_summary_is_cut_to_max_segments_keeping_the_hint(max_segments: int) -> None:
    # the default short form stops at 200 characters; a template may say more
    n = make_notification(PHONE, summary="interface errors rising on uplink " * 40)
    cfg = make_config(max_segments=max_segments, template={"short": "{{ summary }}"})
    body = sms_body(n, cfg)
    assert segment_count(body) == max_segments
    assert body.endswith("... Reply ACK 42 / RESOLVE 42")
    assert encoding(body) is Encoding.GSM7


def test_chinese_summary_costs_ucs2_segments() -> None:
    n = make_notification(PHONE, summary="核心交换机 CPU 利用率过高" * 20)
    body = sms_body(n, make_config(max_segments=2))
    assert encoding(body) is Encoding.UCS2
    assert segment_count(body) == 2
    assert body.endswith("… Reply ACK 42 / RESOLVE 42")


@pytest.mark.parametrize("max_segments", [1, 2, 3])
def test_a_digest_shows_whole_lines_the_count_of_the_rest_and_a_hint_for_any_of_them(
    max_segments: int,
) -> None:
    """On-call user test: a digest of 12 was cut mid-line ("#23 [P1] op..."), lost its
    "and N more", and said "Reply ACK 27" for an incident it did not show."""
    lines = tuple(
        f"#{16 + i} [P1] opened critical: burst alert {i} on big2-{i:03}" for i in range(12)
    )
    n = dataclasses.replace(make_notification(PHONE), digest=lines)
    body = sms_body(n, make_config(max_segments=max_segments))
    assert segment_count(body) <= max_segments
    shown = body.splitlines()
    assert shown[0] == "[digest of 12] held by a rate limit:"
    listed = [line for line in shown if line.startswith("#")]
    assert listed == list(lines[: len(listed)])  # whole lines, first first
    assert shown[-2] == f"... and {12 - len(listed)} more"
    assert shown[-1] == "Reply ACK n / RESOLVE n for any #n above"
    one_more = f"{render.digest_list(n, len(listed) + 1)}\n{shown[-1]}"
    assert segment_count(one_more) > max_segments  # as many as fit


def test_template_override_is_used() -> None:
    cfg = make_config(template={"short": "{{ priority }} #{{ id }} {{ summary }}"})
    assert sms_body(make_notification(PHONE), cfg) == (
        "P1 #42 CPU 92% on sw-core-01 Reply ACK 42 / RESOLVE 42"
    )


# --- classification --------------------------------------------------------------------------

R = FailureReason


@pytest.mark.parametrize(
    ("exc", "retryable", "reason", "ambiguous"),
    [
        (TwilioApiError(400, 21211, "Invalid 'To' Phone Number"), False, R.RECIPIENT, False),
        (
            TwilioApiError(400, 21610, "Attempt to send to unsubscribed recipient"),
            False,
            R.RECIPIENT,
            False,
        ),
        (TwilioApiError(400, 21612, "unroutable"), False, R.RECIPIENT, False),
        (TwilioApiError(400, 21614, "not a mobile number"), False, R.RECIPIENT, False),
        (TwilioApiError(400, 21608, "unverified"), False, R.RECIPIENT, False),
        (TwilioApiError(400, 21606, "From is not a valid number"), False, R.CLIENT_ERROR, False),
        (TwilioApiError(400, 21617, "body exceeds 1600 characters"), False, R.CLIENT_ERROR, False),
        (TwilioApiError(401, 20003, "Authenticate"), False, R.AUTH, False),
        (TwilioApiError(404, 20404, "not found"), False, R.CLIENT_ERROR, False),
        (TwilioApiError(429, 20429, "Too Many Requests", 7.0), True, R.RATE_LIMITED, False),
        (TwilioApiError(429, None, "slow down"), True, R.RATE_LIMITED, False),
        (TwilioApiError(500, None, "Internal Server Error"), True, R.SERVER_ERROR, True),
        (TwilioApiError(503, 20500, "unavailable", 30.0), True, R.SERVER_ERROR, True),
        (TwilioTransportError("connect: refused", sent=False), True, R.CONNECT, False),
        (TwilioTransportError("ServerDisconnectedError", sent=True), True, R.CONNECT, True),
        (TwilioTransportError("no answer", sent=True, timed_out=True), True, R.TIMEOUT, True),
        (TwilioTransportError("no answer", sent=False, timed_out=True), True, R.TIMEOUT, False),
        (TwilioTransportError("bad cert", sent=False, certificate=True), False, R.CONNECT, False),
    ],
)
def test_classify(
    exc: TwilioApiError | TwilioTransportError, retryable: bool, reason: R, ambiguous: bool
) -> None:
    err = classify("sms oncall-sms incident #42 to +8613800001111", exc)
    assert (err.retryable, err.reason, err.ambiguous) == (retryable, reason, ambiguous)
    assert str(err).startswith("sms oncall-sms incident #42 to +8613800001111: ")
    assert str(exc) in str(err)


def test_classify_keeps_retry_after() -> None:
    assert classify("w", TwilioApiError(429, 20429, "x", 7.0)).retry_after == 7.0
    assert classify("w", TwilioApiError(503, None, "x", 30.0)).retry_after == 30.0
    assert classify("w", TwilioApiError(400, 21211, "x")).retry_after is None


# --- send ------------------------------------------------------------------------------------


async def test_send_returns_the_message_sid() -> None:
    api = FakeApi()
    cfg = make_config(status_callback_url="https://alertd.example/hooks/twilio/status")
    notifier = SmsNotifier("oncall-sms", cfg, api=api)
    sent = await notifier.send(make_notification(PHONE))
    assert sent == Sent(provider_id="SM" + "ab" * 16)
    assert api.calls == [
        {
            "to": PHONE,
            "body": "[P1] OPENED #42 critical: CPU 92% on sw-core-01 Reply ACK 42 / RESOLVE 42",
            "from_": "+15017122661",
            "messaging_service_sid": None,
            "status_callback": "https://alertd.example/hooks/twilio/status",
        }
    ]
    await notifier.close()
    assert api.closed


@pytest.mark.parametrize("recipients", [(), (PHONE, "+15005550006"), ("13800001111",), ("ops",)])
async def test_send_wants_one_e164_recipient(recipients: tuple[str, ...]) -> None:
    api = FakeApi()
    notifier = SmsNotifier("oncall-sms", make_config(), api=api)
    with pytest.raises(NotifyError) as info:
        await notifier.send(make_notification(*recipients))
    assert info.value.reason is FailureReason.RECIPIENT
    assert not info.value.retryable
    assert api.calls == []


async def test_send_classifies_api_errors() -> None:
    api = FakeApi(TwilioApiError(429, 20429, "Too Many Requests", 3.0))
    notifier = SmsNotifier("oncall-sms", make_config(), api=api)
    with pytest.raises(NotifyError) as info:
        await notifier.send(make_notification(PHONE))
    err = info.value
    assert (err.retryable, err.reason, err.retry_after) == (True, R.RATE_LIMITED, 3.0)
    assert isinstance(err.__cause__, TwilioApiError)
    assert TOKEN not in str(err)


def test_a_template_naming_an_unknown_variable_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown template variable"):
        make_config(template={"short": "{{ nope.deeper }}"})


def test_a_template_that_fails_on_the_sample_is_warned_about_not_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # it may work on real pages, and a page it fails for goes with the default text
    cfg = make_config(template={"short": "{{ 1 / 0 }}"})
    assert cfg.template is not None
    assert "fails on a sample notification" in caplog.text


def test_a_template_reading_a_pushed_alerts_annotations_passes_the_load_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # review finding: the sample had no annotations, so this was refused
    make_config(template={"short": "{{ dict(annotations).description }} {{ source }}"})
    assert "fails on a sample" not in caplog.text


async def test_a_template_failing_on_a_pages_data_sends_the_default_text() -> None:
    cfg = make_config(template={"short": "{{ acknowledged_by.upper() }} saw it"})
    api = FakeApi()
    await SmsNotifier("oncall-sms", cfg, api=api).send(make_notification(PHONE))
    (call,) = api.calls
    assert call["body"] == sms_body(make_notification(PHONE), make_config())  # the default


async def test_unconfigured_channel_refuses() -> None:
    notifier = SmsNotifier("oncall-sms", SmsChannelConfig.model_validate({"type": "sms"}))
    with pytest.raises(NotifyError) as info:
        await notifier.send(make_notification(PHONE))
    assert info.value.reason is FailureReason.UNCONFIGURED
    await notifier.close()


# --- wiring ----------------------------------------------------------------------------------


def test_channel_type_registration() -> None:
    assert MEMBER_ADDRESS["sms"] == "phone"
    assert "sms" in ONE_MESSAGE_PER_RECIPIENT


async def test_registry_builds_sms_or_logs_instead(caplog: pytest.LogCaptureFixture) -> None:
    channels = ChannelsFile.model_validate(
        {
            "channels": {
                "oncall-sms": {
                    "type": "sms",
                    "account_sid": SID,
                    "auth_token": TOKEN,
                    "from": "+15017122661",
                },
                "spare-sms": {"type": "sms"},
            }
        }
    )
    notifiers = build_notifiers(channels)
    try:
        assert isinstance(notifiers["oncall-sms"], SmsNotifier)
        spare = notifiers["spare-sms"]
        assert isinstance(spare, LogInstead)
        with caplog.at_level(logging.WARNING):
            await spare.send(make_notification(PHONE))
        assert "spare-sms is not configured (sms: no account_sid)" in caplog.text
    finally:
        for notifier in notifiers.values():
            await notifier.close()


def test_a_digest_whose_first_line_alone_is_too_long_still_shows_its_number() -> None:
    """Verification: in Chinese (UCS-2, 67 characters a segment) no whole line fitted two
    segments, and the digest said "any #n above" above no number at all."""
    lines = tuple(
        f"#{16 + i} [P1] opened critical: {'核心交换机端口流量过高' * 4}" for i in range(11)
    )
    n = dataclasses.replace(make_notification(PHONE), digest=lines)
    body = sms_body(n, make_config(max_segments=2))
    assert segment_count(body) <= 2
    assert "#16 [P1] opened critical: 核心" in body
    assert body.endswith("… ... and 10 more\nReply ACK n / RESOLVE n for any #n above")
