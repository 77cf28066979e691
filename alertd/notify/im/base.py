"""What the IM channels share: render, build the provider's request, post it, read the answer.

A provider module subclasses ``ImNotifier`` with its ``request`` (JSON body, and the URL when
the query is signed) and, for robots that answer HTTP 200 with an error code, a ``check``
built on ``check_code``. Messages come from ``render.short_text``/``render.subject`` with the
channel's ``template``; label values are data, never templates.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from yarl import URL

from alertd.errors import FailureReason, NotifyError
from alertd.model import Notification
from alertd.notify.http import JSON_HEADERS, HttpClient, Response
from alertd.notify.http_config import HttpChannelConfig, SignedHttpChannelConfig
from alertd.notify.render import truncate_utf8

log = logging.getLogger(__name__)

_MOBILE = re.compile(r"^\+?[0-9]{6,15}$")
EVERYONE = frozenset({"@all", "all"})


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Return ``payload`` as compact UTF-8 JSON (Chinese text stays 3 bytes a character)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def split_mentions(recipients: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """Split recipients into (user ids, mobile numbers, everyone?): ``@all``/``all`` is
    everyone, digits (optionally ``+``) a mobile, anything else a user id; duplicates dropped."""
    users: list[str] = []
    mobiles: list[str] = []
    everyone = False
    for raw in dict.fromkeys(r.strip() for r in recipients):
        if not raw:
            continue
        if raw.lower() in EVERYONE:
            everyone = True
        elif _MOBILE.match(raw):
            mobiles.append(raw)
        else:
            users.append(raw)
    return users, mobiles, everyone


def with_mentions(
    text: str, mentions: Sequence[str], limit: int, *, sep: str = "\n", joiner: str = " "
) -> str:
    """Return ``text`` cut so that ``text + sep + mentions`` fits ``limit`` UTF-8 bytes.

    Mentions are kept whole (a cut one notifies nobody) and take at most half the limit, so
    the message itself still shows; those beyond are dropped.
    """
    kept: list[str] = []
    size = 0
    for mention in mentions:
        size += len(mention.encode()) + len(joiner.encode())
        if size > limit // 2:
            break
        kept.append(mention)
    if not kept:
        return truncate_utf8(text, limit)
    tail = joiner.join(kept)
    return truncate_utf8(text, limit - len((sep + tail).encode())) + sep + tail


def text_after_title(text: str, title: str, url: str = "") -> str:
    """Return the short text without what a card already shows: the title it starts with
    (the default short text does) and the link at its end (the card has a button)."""
    if url:
        text = text.removesuffix(url).rstrip()
    if title and text.startswith(title):
        text = text[len(title) :].strip()
    return text


@dataclass(frozen=True, slots=True)
class Code:
    """What a provider's error code means for a retry."""

    reason: FailureReason
    retryable: bool = False
    retry_after: float | None = None
    hint: str = ""


_UNKNOWN_CODE = Code(FailureReason.CLIENT_ERROR)


def _first(data: Mapping[str, Any], keys: Sequence[str], kind: type) -> Any:
    for key in keys:
        value = data.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
    return None


def check_code(
    http: HttpClient,
    what: str,
    resp: Response,
    codes: Mapping[int, Code],
    *,
    code_keys: Sequence[str] = ("errcode",),
    message_keys: Sequence[str] = ("errmsg",),
) -> NotifyError | None:
    """Return ``None`` if a code-answering robot accepted the message, else its error.

    Success is HTTP 2xx *and* a code of 0. A 4xx carrying a code listed in ``codes`` is
    classified by the code (it says more than the status); 429, 5xx and other answers by the
    HTTP status. A 2xx without a readable code did reach something: an ambiguous failure.
    """
    try:
        data = json.loads(resp.body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        data = None
    code = msg = None
    if isinstance(data, dict):
        code = _first(data, code_keys, int)
        msg = _first(data, message_keys, str)
    if resp.ok:
        if code == 0:
            return None
        if code is None:
            why = f"HTTP {resp.status} without a result code: {resp.answer()}"
            return http.error(
                what, why, retryable=True, reason=FailureReason.SERVER_ERROR, ambiguous=True
            )
    elif resp.status == 429 or not 400 <= resp.status < 500 or code not in codes:
        return http.status_error(what, resp)  # the status says more than no or an unknown code
    assert code is not None  # every code-less answer returned above
    meaning = codes.get(code, _UNKNOWN_CODE)
    why = f"HTTP {resp.status}, error {code}: {msg or '(no message)'}"
    if meaning.hint:
        why += f" ({meaning.hint})"
    return http.error(
        what,
        why,
        retryable=meaning.retryable,
        reason=meaning.reason,
        retry_after=meaning.retry_after,
    )


class ImNotifier:
    """A ``Notifier`` posting one JSON message per notification to an IM webhook."""

    kind: ClassVar[str] = ""  # the channel type, in messages
    keep_path: ClassVar[int | None] = None  # path segments that may be shown (redact_url)

    def __init__(
        self, name: str, config: HttpChannelConfig, *, wall: Callable[[], float] = time.time
    ) -> None:
        """Build the channel; reads ``url_file``/``secret_file`` now (``ConfigError`` if
        unreadable). ``wall`` reads wall-clock time (signature timestamps, Retry-After)."""
        self.name = name
        self.template = config.template
        self.wall = wall
        self.secret = (
            config.resolve_secret() if isinstance(config, SignedHttpChannelConfig) else None
        )
        self.http = HttpClient(
            config.resolve_url(),
            timeout=config.timeout,
            keep_path=self.keep_path,
            secrets=[self.secret] if self.secret else [],
            wall=wall,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self.http.shown!r})"

    async def send(self, notification: Notification) -> None:
        """Post ``notification`` to the provider or raise ``NotifyError``."""
        what = f"{self.kind} {self.name} incident #{notification.incident.id}"
        body, url = self.request(notification)
        resp = await self.http.post(what, body, JSON_HEADERS, url)
        error = self.check(what, resp)
        if error is not None:
            raise error
        log.debug("%s: delivered", what)

    def request(self, n: Notification) -> tuple[bytes, URL | None]:
        """Return the JSON body for ``n`` and the URL to post it to (``None``: as configured)."""
        raise NotImplementedError

    def check(self, what: str, resp: Response) -> NotifyError | None:
        """Return ``None`` if the provider accepted the message (here: any 2xx), else why not."""
        return None if resp.ok else self.http.status_error(what, resp)

    async def close(self) -> None:
        """Close the channel's connections."""
        await self.http.close()
