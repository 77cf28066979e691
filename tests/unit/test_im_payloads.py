"""Payload builders of the IM channels and the webhook: shapes, mentions, provider limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify import render
from alertd.notify.im import dingtalk, feishu, slack, teams, wecom
from alertd.notify.im.base import split_mentions
from alertd.notify.im.config import (
    DingtalkChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WecomChannelConfig,
)
from alertd.notify.render import MessageTemplates
from alertd.notify.webhook import notifier as webhook

CHINESE = "交换机核心端口流量过高请立即处理"  # 3 bytes a character in UTF-8
URL = "https://alertd.example/incidents/42"


def notification(
    *recipients: str,
    transition: Transition = Transition.OPENED,
    labels: dict[str, str] | None = None,
    summary: str = "CPU 92% on sw-core-01",
    url: str = "",
    state: IncidentState = IncidentState.OPEN,
    resolved_at: float | None = None,
) -> Notification:
    incident = Incident(
        id=42,
        fingerprint="c6eadffa33fcdf37",
        rule="cpu_high",
        metric="cpu",
        labels=make_labels(labels or {"instance": "sw-core-01"}),
        level=Level.CRITICAL,
        priority="P1",
        state=state,
        summary=summary,
        value=92.0,
        opened_at=1_755_680_000.0,
        updated_at=1_755_680_600.0,
        resolved_at=resolved_at,
    )
    return Notification(
        incident, transition, "im", recipients=recipients, key="k-42-opened", url=url
    )


def decoded(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


# -- mentions ------------------------------------------------------------------------------
def test_split_mentions_sorts_users_mobiles_and_everyone() -> None:
    users, mobiles, everyone = split_mentions(["zhangsan", "13800001111", "+8613800002222", "@all"])
    assert users == ["zhangsan"]
    assert mobiles == ["13800001111", "+8613800002222"]
    assert everyone


def test_split_mentions_drops_blanks_and_duplicates() -> None:
    assert split_mentions(["lisi", " lisi ", ""]) == (["lisi"], [], False)


# -- WeCom ---------------------------------------------------------------------------------
def test_wecom_text_mentions_by_user_and_mobile() -> None:
    msg = wecom.payload("【P1】sw-core-01", ["zhangsan", "13800001111", "@all"])
    assert msg == {
        "msgtype": "text",
        "text": {
            "content": "【P1】sw-core-01",
            "mentioned_list": ["zhangsan", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        },
    }


def test_wecom_text_is_cut_to_2048_bytes_on_a_character_boundary() -> None:
    text = CHINESE * 200  # 3600 characters, 10800 bytes
    content = wecom.payload(text, [])["text"]["content"]
    assert len(content.encode()) <= wecom.TEXT_MAX
    assert len(content.encode()) > wecom.TEXT_MAX - 4  # used, not wasted
    assert content.endswith("…")
    assert text.startswith(content[:-1])


def test_wecom_markdown_keeps_mentions_whole_within_4096_bytes() -> None:
    content = wecom.payload(CHINESE * 200, ["zhangsan", "lisi"], "markdown")["markdown"]["content"]
    assert len(content.encode()) <= wecom.MARKDOWN_MAX
    assert content.endswith("\n<@zhangsan><@lisi>")


def test_wecom_markdown_text_cannot_mention_anyone() -> None:
    content = wecom.payload("disk full <@boss>", [], "markdown")["markdown"]["content"]
    assert "<@boss>" not in content
    assert "boss" in content


def test_wecom_notifier_renders_the_short_text_and_the_template() -> None:
    cfg = WecomChannelConfig.model_validate(
        {
            "type": "wecom",
            "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef",
            "template": {"short": "【{{ priority }}】{{ summary }}"},
        }
    )
    body, url = wecom.WecomNotifier("robot", cfg).request(
        notification("zhangsan", summary="{{ 7*7 }} 告警")
    )
    assert url is None
    # a summary is data: its braces show as they are
    assert decoded(body)["text"]["content"] == "【P1】{{ 7*7 }} 告警"
    assert "告警".encode() in body  # UTF-8 as is, not \\u escapes (they cost 6 bytes each)


# -- DingTalk ------------------------------------------------------------------------------
def test_dingtalk_text_writes_the_mentions_into_the_text() -> None:
    msg = dingtalk.payload("【P1】sw-core-01 CPU 92%", ["13800001111", "user123"])
    assert msg == {
        "msgtype": "text",
        "text": {"content": "【P1】sw-core-01 CPU 92% @13800001111 @user123"},
        "at": {"atMobiles": ["13800001111"], "atUserIds": ["user123"], "isAtAll": False},
    }


def test_dingtalk_everyone() -> None:
    assert dingtalk.payload("x", ["@all"])["at"]["isAtAll"] is True


def test_dingtalk_markdown_has_a_title_and_keeps_mentions_after_a_cut() -> None:
    msg = dingtalk.payload(CHINESE * 2000, ["13800001111"], "markdown", "[P1] OPENED #42")
    text = msg["markdown"]["text"]
    assert msg["markdown"]["title"] == "[P1] OPENED #42"
    assert len(text.encode()) <= dingtalk.TEXT_MAX
    assert text.endswith("…\n\n@13800001111")


# -- Feishu --------------------------------------------------------------------------------
def test_feishu_text_with_mentions() -> None:
    msg = feishu.payload("【P1】sw-core-01", ["ou_123", "@all"])
    assert msg == {
        "msg_type": "text",
        "content": {"text": '【P1】sw-core-01 <at user_id="ou_123"></at> <at user_id="all"></at>'},
    }


def test_feishu_text_cannot_mention_from_a_label_value() -> None:
    text = feishu.payload('host <at user_id="all">all</at>', [])["content"]["text"]
    assert '<at user_id="all">' not in text


def test_feishu_post_when_there_is_a_link() -> None:
    n = notification("ou_123", url=URL)
    msg = feishu.payload(render.short_text(n), n.recipients, title=render.subject(n), url=URL)
    post = msg["content"]["post"]["zh_cn"]
    assert msg["msg_type"] == "post"
    assert post["title"] == render.subject(n)
    line = post["content"][0]
    assert {"tag": "a", "text": feishu.LINK_TEXT, "href": URL} in line
    assert {"tag": "at", "user_id": "ou_123"} in line
    assert URL not in line[0]["text"]  # the link is the tag, not repeated as text


def test_feishu_body_is_cut_to_20_kb() -> None:
    data = feishu.body(CHINESE * 1000, ["ou_1"], signature=("1755684000", "c2lnbg=="))
    assert len(data) <= feishu.BODY_MAX
    message = decoded(data)
    assert message["timestamp"] == "1755684000"
    assert message["content"]["text"].endswith('… <at user_id="ou_1"></at>')


def test_feishu_body_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(ValueError, match="limit 20480"):
        feishu.body("x", [f"ou_{i:08d}" for i in range(2000)])


# -- Slack ---------------------------------------------------------------------------------
def test_slack_payload_shape_and_mentions() -> None:
    msg = slack.payload("CPU high", "[P1] OPENED", ["U0123ABCD", "@here", "bob"])
    assert msg == {
        "text": "[P1] OPENED",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "CPU high\n<@U0123ABCD> <!here> @bob"},
            }
        ],
    }


def test_slack_escapes_control_characters_from_data() -> None:
    cfg = SlackChannelConfig.model_validate(
        {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XYZSECRET"}
    )
    n = notification(summary="<!channel> & <https://evil.example|click>")
    body, _ = slack.SlackNotifier("s", cfg).request(n)
    section = decoded(body)["blocks"][0]["text"]["text"]
    assert "<!channel>" not in section
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in section


def test_slack_section_is_cut_to_3000_characters_without_splitting_an_entity() -> None:
    section = slack.payload("a&" * 2000, "s", ["U0123ABCD"])["blocks"][0]["text"]["text"]
    assert len(section) <= slack.SECTION_MAX
    assert section.endswith("…\n<@U0123ABCD>")
    body = section.rpartition("…")[0]
    assert body.endswith(("a", "&amp;"))


# -- Teams ---------------------------------------------------------------------------------
def test_teams_card_shape_with_link_and_mentions() -> None:
    msg = teams.payload(
        "[P1] OPENED", "details", [("Priority", "P1")], url=URL, recipients=["a@corp.example"]
    )
    assert msg["type"] == "message"
    (attachment,) = msg["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["body"][0] == {
        "type": "TextBlock",
        "text": "[P1] OPENED",
        "weight": "Bolder",
        "size": "Medium",
        "wrap": True,
    }
    assert {"type": "FactSet", "facts": [{"title": "Priority", "value": "P1"}]} in card["body"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open incident", "url": URL}]
    assert card["msteams"]["entities"][0]["mentioned"]["id"] == "a@corp.example"


def test_teams_notifier_shows_no_ack_link_and_no_button_without_url() -> None:
    cfg = TeamsChannelConfig.model_validate(
        {"type": "teams", "url": "https://example.logic.azure.com/workflows/1?sig=abcdef"}
    )
    n = notification()
    n = Notification(n.incident, n.transition, n.channel, ack_url="https://alertd.example/ack/t")
    body, _ = teams.TeamsNotifier("t", cfg).request(n)
    assert b"/ack/" not in body
    assert "actions" not in decoded(body)["attachments"][0]["content"]


# -- webhook -------------------------------------------------------------------------------
def test_webhook_payload_is_alertmanager_shaped_while_firing() -> None:
    msg = webhook.payload(notification("oncall", url=URL), "ops-hook", "short text")
    assert msg["version"] == "4"
    assert msg["status"] == "firing"
    assert msg["receiver"] == "ops-hook"
    assert msg["groupKey"] == "c6eadffa33fcdf37"
    (alert,) = msg["alerts"]
    assert alert == {
        "status": "firing",
        "labels": {"alertname": "cpu_high", "instance": "sw-core-01", "severity": "critical"},
        "annotations": {"summary": "CPU 92% on sw-core-01", "value": "92"},
        "startsAt": "2025-08-20T08:53:20Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": URL,
        "fingerprint": "c6eadffa33fcdf37",
    }
    incident = msg["incident"]
    assert incident["id"] == 42
    assert incident["priority"] == "P1"
    assert incident["level"] == "critical"
    assert incident["state"] == "open"
    assert incident["transition"] == "opened"
    assert incident["url"] == URL
    assert incident["message"] == "short text"
    assert incident["recipients"] == ["oncall"]
    assert msg["notification_reason"] == "first notification"


def test_webhook_payload_resolved_carries_ends_at() -> None:
    n = notification(
        transition=Transition.RESOLVED, state=IncidentState.RESOLVED, resolved_at=1_755_681_000.0
    )
    msg = webhook.payload(n, "ops-hook")
    assert msg["status"] == "resolved"
    assert msg["alerts"][0]["status"] == "resolved"
    assert msg["alerts"][0]["endsAt"] == "2025-08-20T09:10:00Z"


def test_webhook_payload_keeps_an_alertname_label_of_its_own() -> None:
    msg = webhook.payload(notification(labels={"alertname": "Custom"}), "h")
    assert msg["alerts"][0]["labels"]["alertname"] == "Custom"


def test_too_many_mentions_are_dropped_whole_and_the_message_still_shows() -> None:
    mobiles = [f"138{i:08d}" for i in range(3000)]  # 3000 x 13 bytes: over the limit
    msg = dingtalk.payload("CPU high", mobiles)
    content = msg["text"]["content"]
    assert len(content.encode()) <= dingtalk.TEXT_MAX
    assert content.startswith("CPU high @13800000000 ")
    assert all(len(word) == 12 for word in content.split()[2:])  # "@" + 11 digits, none cut
    assert msg["at"]["atMobiles"] == mobiles


# -- markdown: data shows as written ---------------------------------------------------------
EVIL = "disk full [click here](http://evil.example) ![x](http://evil.example/p.png) <@all>"


def test_markdown_channels_show_data_as_written_not_as_links_or_mentions() -> None:
    """Admin user test: an annotation ``[click](http://evil.example)`` became a link in a
    markdown WeCom and DingTalk group; a TextBlock in Teams renders markdown links too."""
    n = notification(summary=EVIL)
    wecom_md = WecomChannelConfig.model_validate(
        {"type": "wecom", "url": "https://qyapi.weixin.qq.com/x?key=k", "format": "markdown"}
    )
    body, _ = wecom.WecomNotifier("w", wecom_md).request(n)
    ding_md = DingtalkChannelConfig.model_validate(
        {
            "type": "dingtalk",
            "url": "https://oapi.dingtalk.com/r?access_token=t",
            "format": "markdown",
        }
    )
    ding_body, _ = dingtalk.DingtalkNotifier("d", ding_md).request(n)
    teams_cfg = TeamsChannelConfig.model_validate(
        {"type": "teams", "url": "https://example.logic.azure.com/workflows/1?sig=abcdef"}
    )
    teams_body, _ = teams.TeamsNotifier("t", teams_cfg).request(n)
    for sent in (body, ding_body, teams_body):
        text = json.dumps(decoded(sent), ensure_ascii=False)
        assert "](http" not in text
        assert "<@all>" not in text
        assert "[click here]\u200b(http://evil.example)" in text  # still reads the same
    plain = WecomChannelConfig.model_validate(
        {"type": "wecom", "url": "https://qyapi.weixin.qq.com/x?key=k"}
    )
    plain_body, _ = wecom.WecomNotifier("w", plain).request(n)
    assert "[click here](http://evil.example)" in decoded(plain_body)["text"]["content"]


def test_a_markdown_template_keeps_its_own_links_and_breaks_the_datas() -> None:
    templates = MessageTemplates.model_validate(
        {"short": "[incident {{ id }}](https://alertd.example/i/{{ id }}) {{ summary }}"}
    )
    text = render.short_text(notification(summary=EVIL), templates, markdown=True)
    assert text.startswith(
        "[incident 42](https://alertd.example/i/42) disk full [click here]\u200b("
    )
    assert render.short_text(notification(summary=EVIL), templates).count("](http") == 3
