"""Config of the IM and webhook channels: validation, secret files, and secrets kept hidden."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alertd.config.channels import ChannelsFile
from alertd.errors import ConfigError
from alertd.notify.channel_types import MEMBER_ADDRESS
from alertd.notify.im.base import ImNotifier
from alertd.notify.im.config import DingtalkChannelConfig, WecomChannelConfig
from alertd.notify.im.dingtalk import DingtalkNotifier
from alertd.notify.im.feishu import FeishuNotifier
from alertd.notify.im.limits import DEFAULT_RATE_LIMITS
from alertd.notify.im.slack import SlackNotifier
from alertd.notify.im.teams import TeamsNotifier
from alertd.notify.im.wecom import WecomNotifier
from alertd.notify.registry import build_notifiers
from alertd.notify.webhook.config import WebhookChannelConfig
from alertd.notify.webhook.notifier import WebhookNotifier

TOKEN = "693a91f6-7abc-4bc4-97a0-0ec2sifa5aaa"
WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={TOKEN}"
SECRET = "SECsigning0123456789"
IM_TYPES = ("wecom", "dingtalk", "feishu", "slack", "teams")


def channel(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "url": f"https://hooks.example/{kind}/{TOKEN}", **fields}


def test_every_type_validates_in_channels_yaml_and_builds_its_notifier() -> None:
    expected = {
        "wecom": WecomNotifier,
        "dingtalk": DingtalkNotifier,
        "feishu": FeishuNotifier,
        "slack": SlackNotifier,
        "teams": TeamsNotifier,
        "webhook": WebhookNotifier,
    }
    config = ChannelsFile.model_validate({"channels": {k: channel(k) for k in expected}})
    notifiers = build_notifiers(config)
    for kind, cls in expected.items():
        assert type(notifiers[kind]) is cls
        assert notifiers[kind].name == kind


def test_member_address_and_default_rate_limits_cover_every_type() -> None:
    for kind in IM_TYPES:
        assert MEMBER_ADDRESS[kind] == "im"
        assert DEFAULT_RATE_LIMITS[kind]
        assert all(count > 0 and per > 0 for count, per in DEFAULT_RATE_LIMITS[kind])
    assert MEMBER_ADDRESS["webhook"] == ""
    assert DEFAULT_RATE_LIMITS["webhook"] == ()
    assert DEFAULT_RATE_LIMITS["feishu"] == ((5, 1.0), (100, 60.0))


@pytest.mark.parametrize(
    "fields",
    [
        {},  # neither
        {"url": WECOM, "url_file": "wecom.url"},  # both
    ],
)
def test_exactly_one_of_url_and_url_file(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of url or url_file"):
        WecomChannelConfig.model_validate({"type": "wecom", **fields})


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://qyapi.weixin.qq.com/send?key={TOKEN}",
        f"https:///send?key={TOKEN}",
        f"https://qyapi.weixin.qq.com/send?key={TOKEN} ",
        f"https://qyapi.weixin.qq.com/发送?key={TOKEN}",
        f"https://qyapi.weixin.qq.com:99999/send?key={TOKEN}",
    ],
)
def test_bad_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        WecomChannelConfig.model_validate({"type": "wecom", "url": url})
    assert TOKEN not in str(info.value)
    assert "url" in str(info.value)


def test_secrets_stay_out_of_repr() -> None:
    cfg = DingtalkChannelConfig.model_validate({"type": "dingtalk", "url": WECOM, "secret": SECRET})
    for text in (repr(cfg), str(cfg), repr(DingtalkNotifier("d", cfg))):
        assert TOKEN not in text
        assert SECRET not in text


def test_secret_and_secret_file_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="exclusive"):
        DingtalkChannelConfig.model_validate(
            {"type": "dingtalk", "url": WECOM, "secret": SECRET, "secret_file": "s"}
        )


def test_unknown_option_and_format_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        WecomChannelConfig.model_validate({"type": "wecom", "url": WECOM, "token": "x"})
    with pytest.raises(ValidationError, match="format"):
        WecomChannelConfig.model_validate({"type": "wecom", "url": WECOM, "format": "card"})


@pytest.mark.parametrize(("value", "seconds"), [("300ms", 0.3), (2, 2.0), ("1m", 60.0)])
def test_timeout_is_a_duration(value: Any, seconds: float) -> None:
    cfg = WecomChannelConfig.model_validate({"type": "wecom", "url": WECOM, "timeout": value})
    assert cfg.timeout == seconds


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        WecomChannelConfig.model_validate({"type": "wecom", "url": WECOM, "timeout": 0})


def test_url_and_secret_files_are_read_once_at_build(tmp_path: Path) -> None:
    (tmp_path / "ding.url").write_text(WECOM + "\n")
    (tmp_path / "ding.secret").write_text(SECRET + "\n")
    cfg = DingtalkChannelConfig.model_validate(
        {
            "type": "dingtalk",
            "url_file": tmp_path / "ding.url",
            "secret_file": tmp_path / "ding.secret",
        }
    )
    notifier = DingtalkNotifier("d", cfg)
    assert str(notifier.http.url) == WECOM
    assert notifier.secret == SECRET


def test_empty_or_bad_url_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.url"
    empty.write_text("\n")
    bad = tmp_path / "bad.url"
    bad.write_text(f"ftp://x/{TOKEN}\n")
    for path, why in ((empty, "empty"), (bad, "http")):
        cfg = WecomChannelConfig.model_validate({"type": "wecom", "url_file": path})
        with pytest.raises(ConfigError, match=why) as info:
            WecomNotifier("w", cfg)
        assert str(path) in str(info.value)
        assert TOKEN not in str(info.value)


def test_missing_url_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = WecomChannelConfig.model_validate({"type": "wecom", "url_file": tmp_path / "nope"})
    with pytest.raises(ConfigError, match="cannot read"):
        WecomNotifier("w", cfg)


def test_base_notifier_is_abstract() -> None:
    cfg = WecomChannelConfig.model_validate({"type": "wecom", "url": WECOM})
    with pytest.raises(NotImplementedError):
        ImNotifier("w", cfg).request(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Idempotency-Key": "x"}, "set by alertd"),
        ({"x-alertd-signature": "x"}, "set by alertd"),
        ({"Content-Type": "text/plain"}, "set by alertd"),
        ({"Bad Name": "x"}, "not a valid HTTP field name"),
        ({"X-Token": "a\r\nInjected: 1"}, "line break"),
    ],
)
def test_webhook_headers_are_checked(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookChannelConfig.model_validate(
            {"type": "webhook", "url": "https://h.example/x", "headers": headers}
        )


def test_webhook_header_values_are_secret() -> None:
    cfg = WebhookChannelConfig.model_validate(
        {
            "type": "webhook",
            "url": "https://h.example/x",
            "headers": {"Authorization": "Bearer s3cr3t-token"},
        }
    )
    assert "s3cr3t-token" not in repr(cfg)
    assert cfg.headers["Authorization"].get_secret_value() == "Bearer s3cr3t-token"
