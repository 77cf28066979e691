"""Slack incoming webhook: ``POST https://hooks.slack.com/services/T.../B.../XXXX``.

Sends ``{"text": <subject>, "blocks": [{"type": "section", "text": {"type": "mrkdwn",
"text": <short text + mentions>}}]}``; ``text`` is the notification fallback. ``&``, ``<`` and
``>`` are escaped as Slack asks, so a label value cannot smuggle in ``<!channel>`` or a link.
Recipients that are Slack ids (``U…``/``W…``) are mentioned as ``<@U…>``, ``@here`` and
``@channel`` as such; other names are shown as plain ``@name``. The section is cut to 3000
characters. Success is HTTP 200 with body ``ok``; 429 comes with ``Retry-After``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify import render
from alertd.notify.http import Response
from alertd.notify.im.base import ImNotifier, dumps
from alertd.notify.im.config import SlackChannelConfig

SECTION_MAX = 3000  # characters of a section block's text
FALLBACK_MAX = 3000  # characters of the top-level text (Slack allows far more; keep it short)

_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SPECIAL = {
    "@here": "<!here>",
    "here": "<!here>",
    "@channel": "<!channel>",
    "channel": "<!channel>",
}


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Return ``text`` with Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped_cut(text: str, limit: int) -> str:
    """Return ``escape(text)`` in at most ``limit`` characters, ending with an ellipsis if
    cut; an entity is never split."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = _ESCAPES.get(char, char)
        if size + len(piece) > limit - 1:  # room for the ellipsis
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces).rstrip() + "…"


def mentions(recipients: Sequence[str]) -> str:
    """Return the mentions of ``recipients`` as mrkdwn, space-separated."""
    out: list[str] = []
    for who in dict.fromkeys(r.strip() for r in recipients):
        if not who:
            continue
        if who.lower() in _SPECIAL:
            out.append(_SPECIAL[who.lower()])
        elif _SLACK_ID.match(who):
            out.append(f"<@{who}>")
        else:
            out.append("@" + escape(who.lstrip("@")))
    return " ".join(out)


def payload(text: str, subject: str, recipients: Sequence[str] = ()) -> dict[str, Any]:
    """Return the webhook message for ``text`` (already rendered) mentioning ``recipients``."""
    tail = mentions(recipients)
    if len(tail) > SECTION_MAX // 2:  # keep whole mentions, and room for the message
        tail = tail[: SECTION_MAX // 2].rpartition(" ")[0]
    room = SECTION_MAX - (len(tail) + 1 if tail else 0)
    section = _escaped_cut(text, room) + ("\n" + tail if tail else "")
    return {
        "text": _escaped_cut(subject, FALLBACK_MAX),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section}}],
    }


class SlackNotifier(ImNotifier):
    """A ``Notifier`` for a Slack incoming webhook."""

    kind = "slack"
    keep_path = 1  # /services/<secret>

    def __init__(
        self, name: str, config: SlackChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, config, wall=wall)

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        text = render.short_text(n, self.template)
        subject = render.subject(n, self.template)
        return dumps(payload(text, subject, n.recipients)), None

    def check(self, what: str, resp: Response) -> NotifyError | None:
        if not resp.ok:
            return self.http.status_error(what, resp)
        if resp.body.strip() == b"ok":
            return None
        why = f"HTTP {resp.status} but not 'ok': {resp.answer()}"
        return self.http.error(
            what, why, retryable=True, reason=FailureReason.SERVER_ERROR, ambiguous=True
        )
