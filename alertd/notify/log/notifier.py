"""The log channel: one ``render.one_line`` log record per notification, on ``alertd.notify``.

It never fails, so it is a safe fallback when every external channel is down.
"""

from __future__ import annotations

import logging

from alertd.model import Notification
from alertd.notify import render
from alertd.notify.log.config import LogChannelConfig

log = logging.getLogger("alertd.notify")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


class LogNotifier:
    """A ``Notifier`` that logs instead of delivering."""

    def __init__(self, name: str, config: LogChannelConfig) -> None:
        self.name = name
        self._level = _LEVELS[config.level]

    async def send(self, notification: Notification) -> None:
        """Log ``notification`` as one line at the configured level."""
        log.log(self._level, "%s channel=%s", render.one_line(notification), self.name)

    async def close(self) -> None:
        """Do nothing: the channel holds no resources."""
