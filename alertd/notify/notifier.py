"""The boundary every channel implements.

A channel turns one ``Notification`` into one delivery attempt. It returns a ``Sent`` (or
``None`` when there is nothing to report) or raises ``NotifyError`` saying whether a retry can
help (``retryable``), whether the provider may have got the message anyway (``ambiguous``) and
how long the provider asked us to wait (``retry_after``). The durable outbox decides what to do
next; a channel never retries on its own.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from alertd.model import Notification


@dataclass(frozen=True, slots=True)
class Sent:
    """What a provider said about an accepted message."""

    provider_id: str = ""  # e.g. Twilio's MessageSid: status callbacks refer to it
    # recipients refused while the others got the message: (address, the server's reply
    # starting with its code) pairs; the outbox retries a 4xx one alone and fails a 5xx over
    refused: tuple[tuple[str, str], ...] = ()
    note: str = ""  # said after "sent" on the timeline, e.g. that it went to the log instead


# Whether the current send (its own task) has written nothing to the provider yet: a channel
# that can tell sets it (the HTTP pool while a request waits for a free connection; email
# until DATA), so a send cut off then is known unsent, not ambiguous. Unset: it cannot tell.
_UNSENT: ContextVar[bool] = ContextVar("alertd_send_unsent", default=False)


def nothing_written_yet(unsent: bool) -> None:
    """Say whether the current send has written nothing yet (set True before waiting for a
    connection, False just before the request (or the mail's DATA) is written; left as it
    is on a failure)."""
    _UNSENT.set(unsent)


def known_unsent() -> bool:
    """Whether the current send is known to have written nothing to the provider."""
    return _UNSENT.get()


class Notifier(Protocol):
    """One configured channel."""

    name: str

    async def send(self, notification: Notification) -> Sent | None:
        """Deliver ``notification`` or raise ``NotifyError``."""
        ...

    async def close(self) -> None:
        """Release connections; called on shutdown and when a reload replaces the channel."""
        ...
