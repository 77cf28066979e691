"""The one place that turns channel config into notifiers.

An email channel without a host is "not configured": its notifications go to the log
instead, marked as such, so a fresh install shows what it would have sent.
"""

from __future__ import annotations

import logging

from alertd.config.channels import ChannelsFile
from alertd.model import Notification
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from alertd.notify.log.config import LogChannelConfig
from alertd.notify.log.notifier import LogNotifier
from alertd.notify.notifier import Notifier

log = logging.getLogger(__name__)


class LogInstead:
    """Stands in for a channel that has no credentials or server configured."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        self._log = LogNotifier(name, LogChannelConfig(type="log"))

    async def send(self, notification: Notification) -> None:
        log.warning("channel %s %s; logging the notification instead", self.name, self.why)
        await self._log.send(notification)

    async def close(self) -> None:
        await self._log.close()


def build_notifiers(config: ChannelsFile) -> dict[str, Notifier]:
    """Return a notifier per configured channel."""
    notifiers: dict[str, Notifier] = {}
    for name, channel in config.channels.items():
        if isinstance(channel, EmailChannelConfig):
            if channel.configured:
                notifiers[name] = EmailNotifier(name, channel)
            else:
                notifiers[name] = LogInstead(name, "is not configured (email: no host)")
        else:
            notifiers[name] = LogNotifier(name, channel)
    return notifiers
