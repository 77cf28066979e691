"""DingTalk (钉钉) custom robot: ``POST .../robot/send?access_token=TOKEN[&timestamp&sign]``.

Sends ``{"msgtype": "text"|"markdown", ..., "at": {"atMobiles", "atUserIds", "isAtAll"}}``.
Recipients that are digits go to ``atMobiles``, ``@all`` sets ``isAtAll``, anything else goes
to ``atUserIds``; each is also written into the text as ``@<id>``, or DingTalk does not notify.

Signing (加签), when ``secret`` is set, per request::

    timestamp = current epoch milliseconds
    sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))
    url += f"&timestamp={timestamp}&sign={sign}"

DingTalk rejects timestamps more than an hour off its clock. Success is HTTP 200 with
``errcode == 0``; 130101 means over 20 messages a minute, which throttles the robot for 10
minutes; 310000 is a security-setting mismatch (keyword, signature, IP allow-list).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote_plus, urlsplit

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify import render
from alertd.notify.http import Response
from alertd.notify.im.base import Code, ImNotifier, check_code, dumps, split_mentions, with_mentions
from alertd.notify.im.config import DingtalkChannelConfig

# DingTalk documents no byte limit for text; 20000 bytes is the figure commonly quoted
TEXT_MAX = 20000
TITLE_MAX = 100  # the markdown title shows in the notification preview

CODES: dict[int, Code] = {
    -1: Code(FailureReason.SERVER_ERROR, retryable=True, hint="system busy"),
    130101: Code(
        FailureReason.RATE_LIMITED,
        retryable=True,
        retry_after=600.0,
        hint="over 20 messages a minute: the robot is throttled for 10 minutes",
    ),
    310000: Code(
        FailureReason.AUTH,
        hint="security settings: check the keyword, the secret, the IP allow-list and the clock",
    ),
    300001: Code(FailureReason.AUTH, hint="the access_token is invalid"),
    400102: Code(FailureReason.AUTH, hint="the robot is disabled"),
}


def sign(secret: str, timestamp_ms: int) -> str:
    """Return the base64 signature of ``timestamp_ms`` (not yet URL-encoded)."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """Return ``url`` with ``timestamp`` and the URL-encoded ``sign`` appended to its query."""
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def payload(
    text: str, recipients: Sequence[str], fmt: str = "text", title: str = ""
) -> dict[str, Any]:
    """Return the robot's message for ``text`` (already rendered) mentioning ``recipients``."""
    users, mobiles, everyone = split_mentions(recipients)
    at: dict[str, Any] = {"atMobiles": mobiles, "atUserIds": users, "isAtAll": everyone}
    mentions = [f"@{who}" for who in [*mobiles, *users]]
    if fmt == "markdown":
        body = with_mentions(text, mentions, TEXT_MAX, sep="\n\n")
        title = render.truncate(title or text, TITLE_MAX)
        return {"msgtype": "markdown", "markdown": {"title": title, "text": body}, "at": at}
    content = with_mentions(text, mentions, TEXT_MAX, sep=" ")
    return {"msgtype": "text", "text": {"content": content}, "at": at}


class DingtalkNotifier(ImNotifier):
    """A ``Notifier`` for a DingTalk custom robot."""

    kind = "dingtalk"
    keep_path = None  # the token is in the query

    def __init__(
        self, name: str, config: DingtalkChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, config, wall=wall)
        self.format = config.format

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        markdown = self.format == "markdown"
        text = render.short_text(n, self.template, markdown=markdown)
        title = render.subject(n, self.template, markdown=True) if markdown else ""
        body = dumps(payload(text, n.recipients, self.format, title))
        if self.secret is None:
            return body, None
        url = signed_url(str(self.http.url), self.secret, int(self.wall() * 1000))
        return body, URL(url, encoded=True)

    def check(self, what: str, resp: Response) -> NotifyError | None:
        return check_code(self.http, what, resp, CODES)
