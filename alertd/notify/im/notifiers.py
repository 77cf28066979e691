"""Build the notifier of an IM channel config (``registry.py`` calls this)."""

from __future__ import annotations

import time
from collections.abc import Callable

from alertd.notify.im.base import ImNotifier
from alertd.notify.im.config import (
    DingtalkChannelConfig,
    FeishuChannelConfig,
    ImChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WecomChannelConfig,
)
from alertd.notify.im.dingtalk import DingtalkNotifier
from alertd.notify.im.feishu import FeishuNotifier
from alertd.notify.im.slack import SlackNotifier
from alertd.notify.im.teams import TeamsNotifier
from alertd.notify.im.wecom import WecomNotifier


def im_notifier(
    name: str, config: ImChannelConfig, *, wall: Callable[[], float] = time.time
) -> ImNotifier:
    """Return the notifier for ``config``; reads its secret files now (``ConfigError``)."""
    if isinstance(config, WecomChannelConfig):
        return WecomNotifier(name, config, wall=wall)
    if isinstance(config, DingtalkChannelConfig):
        return DingtalkNotifier(name, config, wall=wall)
    if isinstance(config, FeishuChannelConfig):
        return FeishuNotifier(name, config, wall=wall)
    if isinstance(config, SlackChannelConfig):
        return SlackNotifier(name, config, wall=wall)
    if isinstance(config, TeamsChannelConfig):
        return TeamsNotifier(name, config, wall=wall)
    raise TypeError(f"not an IM channel config: {type(config).__name__}")
