"""The one place that turns channel config into notifiers.

An email channel without a host, or an SMS channel without an account, is "not configured":
its notifications go to the log instead, marked as such, so a fresh install shows what it
would have sent.
"""

from __future__ import annotations

import logging

from alertd.config.channels import ChannelsFile
from alertd.model import Notification
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from alertd.notify.im.config import ImChannelConfig
from alertd.notify.im.notifiers import im_notifier
from alertd.notify.log.config import LogChannelConfig
from alertd.notify.log.notifier import LogNotifier
from alertd.notify.notifier import Notifier, Sent
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.sms.notifier import SmsNotifier
from alertd.notify.webhook.config import WebhookChannelConfig
from alertd.notify.webhook.notifier import WebhookNotifier

log = logging.getLogger(__name__)


class LogInstead:
    """Stands in for a channel that has no credentials or server configured."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        self._log = LogNotifier(name, LogChannelConfig(type="log"))

    async def send(self, notification: Notification) -> Sent:
        log.warning("channel %s %s; logging the notification instead", self.name, self.why)
        await self._log.send(notification)
        return Sent(note=f"to the log instead: the channel {self.why}")

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
        elif isinstance(channel, SmsChannelConfig):
            if channel.configured:
                notifiers[name] = SmsNotifier(name, channel)
            else:
                notifiers[name] = LogInstead(name, "is not configured (sms: no account_sid)")
        elif isinstance(channel, ImChannelConfig):
            notifiers[name] = im_notifier(name, channel)
        elif isinstance(channel, WebhookChannelConfig):
            notifiers[name] = WebhookNotifier(name, channel)
        else:
            notifiers[name] = LogNotifier(name, channel)
    return notifiers
