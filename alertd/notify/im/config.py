"""Config models of the IM channels (``type: wecom|dingtalk|feishu|slack|teams``).

Each is an ``HttpChannelConfig`` (``url`` or ``url_file``, ``timeout``, ``template``) plus its
provider's options. ``recipients`` of a notification are team members' ``im`` fields, used
for @mentions where the provider supports them (see each notifier module).
"""

from __future__ import annotations

from typing import Literal

from alertd.notify.http_config import HttpChannelConfig, SignedHttpChannelConfig


class WecomChannelConfig(HttpChannelConfig):
    """WeCom (企业微信) group robot; the ``key`` in the URL is the credential."""

    type: Literal["wecom"]
    # markdown renders a markdown ``template.short`` and mentions as <@userid>; text can
    # also mention by mobile number
    format: Literal["text", "markdown"] = "text"


class DingtalkChannelConfig(SignedHttpChannelConfig):
    """DingTalk (钉钉) custom robot; ``secret`` turns on 加签 signing."""

    type: Literal["dingtalk"]
    format: Literal["text", "markdown"] = "text"


class FeishuChannelConfig(SignedHttpChannelConfig):
    """Feishu (飞书) / Lark custom bot; ``secret`` turns on signing (in the JSON body)."""

    type: Literal["feishu"]


class SlackChannelConfig(HttpChannelConfig):
    """Slack incoming webhook; the URL's path is the credential."""

    type: Literal["slack"]


class TeamsChannelConfig(HttpChannelConfig):
    """Microsoft Teams Workflows webhook ("When a Teams webhook request is received")."""

    type: Literal["teams"]


ImChannelConfig = (
    WecomChannelConfig
    | DingtalkChannelConfig
    | FeishuChannelConfig
    | SlackChannelConfig
    | TeamsChannelConfig
)
