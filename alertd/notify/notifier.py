"""The boundary every channel implements.

A channel turns one ``Notification`` into one delivery attempt. It raises ``NotifyError``
with ``retryable`` set when it fails; the caller (today a direct dispatch, later the durable
outbox of the notification issue) decides what to do next.
"""

from __future__ import annotations

from typing import Protocol

from alertd.model import Notification


class Notifier(Protocol):
    """One configured channel."""

    name: str

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification`` or raise ``NotifyError``."""
        ...

    async def close(self) -> None:
        """Release connections; called on shutdown and when a reload replaces the channel."""
        ...
