"""Feishu (飞书) / Lark custom bot: ``POST .../open-apis/bot/v2/hook/TOKEN``.

Sends ``msg_type: text`` (``<at user_id="...">`` mentions in the text), or ``msg_type: post``
with a link to the incident when the notification has a ``url``. Recipients are Feishu user
ids (``ou_...``); ``@all`` mentions everyone. The whole body is kept under 20 KB.

Signing, when ``secret`` is set, per request, in the JSON body (not the URL)::

    timestamp = str(current epoch SECONDS)
    sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))

(key and message are the other way round from DingTalk's.) Feishu rejects a timestamp more
than an hour off its clock with 19021, as it does a wrong secret. Success is ``code == 0``
(older answers say ``StatusCode == 0``); 11232 is Feishu's rate limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify import render
from alertd.notify.http import Response
from alertd.notify.im.base import (
    Code,
    ImNotifier,
    check_code,
    dumps,
    split_mentions,
    text_after_title,
)
from alertd.notify.im.config import FeishuChannelConfig
from alertd.notify.render import truncate_utf8

BODY_MAX = 20 * 1024  # bytes of the whole JSON request body
LINK_TEXT = "Open incident"

CODES: dict[int, Code] = {
    11232: Code(FailureReason.RATE_LIMITED, retryable=True, hint="over 5/s or 100/min"),
    19021: Code(
        FailureReason.AUTH,
        hint="signature rejected: check the clock (within 1 hour of Feishu's) / the secret",
    ),
    19022: Code(FailureReason.AUTH, hint="this host's IP is not on the bot's allow-list"),
    19024: Code(FailureReason.CLIENT_ERROR, hint="the message lacks the bot's keyword"),
    9499: Code(FailureReason.CLIENT_ERROR, hint="bad request"),
}

_AT_TAG = re.compile(r"<(?=at\b)", re.IGNORECASE)


def sign(secret: str, timestamp: int) -> str:
    """Return the body's ``sign`` for ``timestamp`` (epoch seconds)."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def payload(
    text: str, recipients: Sequence[str], *, title: str = "", url: str = ""
) -> dict[str, Any]:
    """Return the bot's message for ``text`` (already rendered) mentioning ``recipients``;
    a ``post`` titled ``title`` with a link when ``url`` is set, else ``text``."""
    users, _, everyone = split_mentions(recipients)  # Feishu mentions by user id only
    ids = [*users, *(["all"] if everyone else [])]
    # an "<at" in the text would mention whoever it names: break it with a zero-width space
    text = _AT_TAG.sub("<\u200b", text)
    if url:
        line: list[dict[str, str]] = [
            {"tag": "text", "text": text_after_title(text, title, url) + " "},
            {"tag": "a", "text": LINK_TEXT, "href": url},
        ]
        line += [{"tag": "at", "user_id": uid} for uid in ids]
        post = {"zh_cn": {"title": title, "content": [line]}}
        return {"msg_type": "post", "content": {"post": post}}
    mentions = "".join(f' <at user_id="{_attr(uid)}"></at>' for uid in ids)
    return {"msg_type": "text", "content": {"text": text + mentions}}


def body(
    text: str,
    recipients: Sequence[str],
    *,
    title: str = "",
    url: str = "",
    signature: tuple[str, str] | None = None,
) -> bytes:
    """Return the JSON request body, the text cut until it fits ``BODY_MAX`` bytes.

    ``signature`` is ``(timestamp, sign)``. Raises ``ValueError`` if even an empty text does
    not fit (thousands of mentions).
    """
    for _ in range(4):  # JSON escapes make the first cut a little short at worst
        message = payload(text, recipients, title=title, url=url)
        if signature is not None:
            message = {"timestamp": signature[0], "sign": signature[1], **message}
        data = dumps(message)
        over = len(data) - BODY_MAX
        if over <= 0:
            return data
        text = truncate_utf8(text, max(0, len(text.encode()) - over - 16))
    raise ValueError(f"message is {len(data)} bytes even cut short (limit {BODY_MAX})")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class FeishuNotifier(ImNotifier):
    """A ``Notifier`` for a Feishu or Lark custom bot."""

    kind = "feishu"
    keep_path = 4  # /open-apis/bot/v2/hook/<token>

    def __init__(
        self, name: str, config: FeishuChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, config, wall=wall)

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        text = render.short_text(n, self.template)
        title = render.subject(n, self.template) if n.url else ""
        signature = None
        if self.secret is not None:
            ts = int(self.wall())
            signature = (str(ts), sign(self.secret, ts))
        try:
            data = body(text, n.recipients, title=title, url=n.url, signature=signature)
        except ValueError as exc:
            raise NotifyError(
                f"{self.kind} {self.name} incident #{n.incident.id}: {exc}",
                retryable=False,
                reason=FailureReason.CLIENT_ERROR,
            ) from exc
        return data, None

    def check(self, what: str, resp: Response) -> NotifyError | None:
        return check_code(
            self.http,
            what,
            resp,
            CODES,
            code_keys=("code", "StatusCode"),
            message_keys=("msg", "StatusMessage"),
        )
