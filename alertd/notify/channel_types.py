"""Every channel type alertd knows: its config model, and how it addresses a team member.

``channels.yaml`` validates a channel against the union of the models here (discriminated on
``type``); routing asks ``MEMBER_ADDRESS`` which field of a team member a channel type sends to,
and ``ONE_MESSAGE_PER_RECIPIENT`` which types need a message (an outbox intent) per recipient.
Adding a channel type means adding it here and in ``registry.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.im.config import (
    DingtalkChannelConfig,
    FeishuChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WecomChannelConfig,
)
from alertd.notify.log.config import LogChannelConfig
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.webhook.config import WebhookChannelConfig

ChannelConfig = Annotated[
    EmailChannelConfig
    | LogChannelConfig
    | SmsChannelConfig
    | WecomChannelConfig
    | DingtalkChannelConfig
    | FeishuChannelConfig
    | SlackChannelConfig
    | TeamsChannelConfig
    | WebhookChannelConfig,
    Field(discriminator="type"),
]

# channel type -> the team member's field it sends to ("" : the channel's own destination)
MEMBER_ADDRESS: dict[str, Literal["email", "phone", "im", ""]] = {
    "email": "email",
    "log": "",
    "sms": "phone",
    "wecom": "im",
    "dingtalk": "im",
    "feishu": "im",
    "slack": "im",
    "teams": "im",
    "webhook": "",
}

# types whose provider takes one recipient per message (SMS): one intent per recipient, so
# a refusal or a status callback concerns exactly one person
ONE_MESSAGE_PER_RECIPIENT: frozenset[str] = frozenset({"sms"})
