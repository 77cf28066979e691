"""Microsoft Teams via a Workflows webhook (Power Automate "When a Teams webhook request is
received" -> "Post card in a chat or channel").

Posts ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}``: the subject as
a bold TextBlock, the rest of the short text, a FactSet (incident, priority, level, state) and
an ``Action.OpenUrl`` to the incident when it has a URL. Recipients (a member's UPN or Entra
object id) are mentioned with ``<at>…</at>`` and ``msteams.entities``. The ack link is never
put on a card: link previews would follow it. Success is any 2xx (Workflows answer 202).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from yarl import URL

from alertd.model import Notification
from alertd.notify import render
from alertd.notify.im.base import ImNotifier, dumps, text_after_title
from alertd.notify.im.config import TeamsChannelConfig

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
LINK_TEXT = "Open incident"


def payload(
    title: str,
    text: str,
    facts: Sequence[tuple[str, str]] = (),
    *,
    url: str = "",
    recipients: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the webhook message: an Adaptive Card with ``title``, ``text`` and ``facts``."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    if text:
        body.append({"type": "TextBlock", "text": text, "wrap": True})
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    people = [r.strip() for r in dict.fromkeys(recipients) if r.strip()]
    if people:
        body.append({"type": "TextBlock", "text": " ".join(f"<at>{p}</at>" for p in people)})
        content["msteams"] = {
            "entities": [
                {"type": "mention", "text": f"<at>{p}</at>", "mentioned": {"id": p, "name": p}}
                for p in people
            ]
        }
    if url:
        content["actions"] = [{"type": "Action.OpenUrl", "title": LINK_TEXT, "url": url}]
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": content}],
    }


class TeamsNotifier(ImNotifier):
    """A ``Notifier`` for a Teams Workflows webhook."""

    kind = "teams"
    keep_path = None  # the credential is the query's ``sig``

    def __init__(
        self, name: str, config: TeamsChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, config, wall=wall)

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        inc = n.incident
        # a TextBlock renders markdown (links among it)
        title = render.subject(n, self.template, markdown=True)
        text = text_after_title(render.short_text(n, self.template, markdown=True), title, n.url)
        facts = [
            ("Incident", f"#{inc.id}"),
            ("Priority", inc.priority),
            ("Level", inc.level.label),
            ("State", inc.state.value),
        ]
        message = payload(title, text, facts, url=n.url, recipients=n.recipients)
        return dumps(message), None
