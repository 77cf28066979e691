"""WeCom (企业微信) group robot: ``POST .../cgi-bin/webhook/send?key=KEY``.

``format: text`` sends ``{"msgtype": "text", "text": {"content", "mentioned_list",
"mentioned_mobile_list"}}``: recipients that are digits are mentioned by mobile, ``@all`` and
anything else by user id. ``format: markdown`` sends the text as markdown with ``<@userid>``
mentions (WeCom ignores ``mentioned_*`` there). Content is cut to 2048 (text) or 4096
(markdown) UTF-8 bytes. Success is HTTP 200 with ``errcode == 0``; 45009 is WeCom's rate limit
(back off more than a minute). There is no signing: the ``key`` is the secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify import render
from alertd.notify.http import Response
from alertd.notify.im.base import Code, ImNotifier, check_code, dumps, split_mentions, with_mentions
from alertd.notify.im.config import WecomChannelConfig
from alertd.notify.render import truncate_utf8

TEXT_MAX = 2048  # bytes of text content
MARKDOWN_MAX = 4096  # bytes of markdown content

CODES: dict[int, Code] = {
    -1: Code(FailureReason.SERVER_ERROR, retryable=True, hint="system busy"),
    45009: Code(
        FailureReason.RATE_LIMITED,
        retryable=True,
        retry_after=61.0,  # "back off for more than 60 s": a minute exactly may be too soon
        hint="over 20 messages a minute; back off for more than a minute",
    ),
    93000: Code(FailureReason.AUTH, hint="the webhook key is invalid or the robot was removed"),
}


def payload(text: str, recipients: Sequence[str], fmt: str = "text") -> dict[str, Any]:
    """Return the robot's message for ``text`` (already rendered) mentioning ``recipients``."""
    users, mobiles, everyone = split_mentions(recipients)
    if fmt == "markdown":
        # "<@" in the text would mention whoever it names: break it with a zero-width space
        body = text.replace("<@", "<\u200b@")
        markdown = with_mentions(body, [f"<@{u}>" for u in users], MARKDOWN_MAX, joiner="")
        return {"msgtype": "markdown", "markdown": {"content": markdown}}
    content: dict[str, Any] = {"content": truncate_utf8(text, TEXT_MAX)}
    if users or everyone:
        content["mentioned_list"] = [*users, *(["@all"] if everyone else [])]
    if mobiles:
        content["mentioned_mobile_list"] = mobiles
    return {"msgtype": "text", "text": content}


class WecomNotifier(ImNotifier):
    """A ``Notifier`` for a WeCom group robot."""

    kind = "wecom"
    keep_path = None  # the key is in the query

    def __init__(
        self, name: str, config: WecomChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, config, wall=wall)
        self.format = config.format

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        text = render.short_text(n, self.template, markdown=self.format == "markdown")
        return dumps(payload(text, n.recipients, self.format)), None

    def check(self, what: str, resp: Response) -> NotifyError | None:
        return check_code(self.http, what, resp, CODES)
