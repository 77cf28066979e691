"""The SMS channel: one ``Notification`` -> one SMS to its one recipient through Twilio.

The body is the short form (``render.short_text``: priority, incident id, level, summary, link)
followed by how to answer ("Reply ACK 42 / RESOLVE 42"), cut to ``max_segments`` SMS segments
(``segments.fit``) so the answer hint always survives. The MessageSid comes back as
``Sent.provider_id``; status callbacks refer to it.

One attempt per send, classified (reliability.md §1.2, Twilio rows): 429/20429 is retryable
and certainly not sent (honour Retry-After); 5xx, timeouts and resets after the request left
are retryable but ambiguous (the message may exist); a refused connection is retryable and not
ambiguous; 21xxx, auth and other 4xx errors are permanent.
"""

from __future__ import annotations

import logging
from typing import Protocol

from alertd.errors import FailureReason, NotifyError
from alertd.model import IncidentState, Notification, Transition
from alertd.notify import render
from alertd.notify.notifier import Sent
from alertd.notify.sms import segments
from alertd.notify.sms.config import E164, SmsChannelConfig
from alertd.notify.sms.twilio_api import (
    MessageCreated,
    TwilioApiError,
    TwilioMessages,
    TwilioTransportError,
)

log = logging.getLogger(__name__)

# Twilio REST error codes about the recipient: permanent for this phone, fail over to another
# channel (twilio.com/docs/api/errors/NNNNN)
RECIPIENT_ERRORS = frozenset(
    {
        21211,  # invalid 'To' phone number
        21217,  # phone number does not appear to be valid
        21265,  # 'To' number cannot be a short code
        21401,  # invalid phone number
        21407,  # this phone number type does not support SMS
        21408,  # permission to send an SMS has not been enabled for the region
        21421,  # phone number is invalid
        21608,  # unverified number (trial account)
        21610,  # the recipient replied STOP
        21612,  # the 'To' number is not currently reachable / unroutable
        21614,  # 'To' number is not a valid mobile number
        21635,  # 'To' number cannot be a landline
    }
)
AUTH_ERRORS = frozenset({20003, 20005, 20008})  # authenticate; account not active; test creds
RATE_LIMIT_ERRORS = frozenset({20429, 14107})  # too many requests; SMS send rate exceeded


class MessagesApi(Protocol):
    """What the notifier needs of Twilio (``TwilioMessages``; a fake in tests)."""

    async def create(
        self,
        *,
        to: str,
        body: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
    ) -> MessageCreated: ...

    async def close(self) -> None: ...


# a digest stands for several incidents: the reply names one of them
DIGEST_REPLY_HINT = "Reply ACK n / RESOLVE n for any #n above"


def reply_hint(n: Notification) -> str:
    """Return how a recipient answers by SMS, e.g. ``Reply ACK 42 / RESOLVE 42``; "" when
    there is nothing to answer (resolved, a test)."""
    inc = n.incident
    if n.transition in (Transition.RESOLVED, Transition.TEST):
        return ""
    if n.digest:
        return DIGEST_REPLY_HINT
    if inc.state is IncidentState.OPEN:
        return f"Reply ACK {inc.id} / RESOLVE {inc.id}"
    if inc.state is IncidentState.ACKNOWLEDGED:
        return f"Reply RESOLVE {inc.id}"
    return ""


def sms_body(n: Notification, config: SmsChannelConfig) -> str:
    """Return the SMS text for ``n``: the short form plus the reply hint, within
    ``config.max_segments`` segments."""
    if n.digest and (config.template is None or config.template.short is None):
        return _digest_body(n, config.max_segments)
    return segments.fit(render.short_text(n, config.template), config.max_segments, reply_hint(n))


def _digest_body(n: Notification, max_segments: int) -> str:
    """A digest's text: as many whole lines of its list as fit with the count of the rest
    and the reply hint (user test: cut mid-line, it lost "and N more", and its hint named
    the newest incident alone, which the cut list did not show)."""

    def text(shown: int) -> str:
        return f"{render.digest_list(n, shown)}\n{DIGEST_REPLY_HINT}"

    lo, hi = 1, min(len(n.digest), render.DIGEST_SHORT_MAX)
    if segments.segment_count(text(lo)) > max_segments:
        # not one whole line fits (UCS-2 text is 67 characters a segment): the first cut
        # short, so there is at least one number to answer with (verification finding)
        rest = render.digest_rest(n, 1)
        tail = f"{rest}\n{DIGEST_REPLY_HINT}" if rest else DIGEST_REPLY_HINT
        return segments.fit(render.digest_list(n, 1, counted=False), max_segments, tail)
    while lo < hi:  # the most lines that fit: one more line never costs fewer segments
        mid = (lo + hi + 1) // 2
        if segments.segment_count(text(mid)) <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    return text(lo)


def classify(where: str, exc: TwilioApiError | TwilioTransportError) -> NotifyError:
    """Translate a Twilio failure into a ``NotifyError`` (what the outbox should do next)."""
    r = FailureReason
    if isinstance(exc, TwilioTransportError):
        if exc.certificate:
            # a wrong certificate needs a human (a proxy, a CA bundle), not a retry
            return NotifyError(f"{where}: {exc}", retryable=False, reason=r.CONNECT)
        reason = r.TIMEOUT if exc.timed_out else r.CONNECT
        note = " (the request was sent: the message may exist)" if exc.sent else ""
        return NotifyError(
            f"{where}: {exc}{note}", retryable=True, reason=reason, ambiguous=exc.sent
        )
    what = f"{where}: {exc}"
    code, status = exc.code, exc.status
    if status == 429 or code in RATE_LIMIT_ERRORS:
        # "never processed and always safe to retry" (twilio.com/docs/api/errors/20429)
        return NotifyError(what, retryable=True, reason=r.RATE_LIMITED, retry_after=exc.retry_after)
    if status >= 500:
        return NotifyError(
            what,
            retryable=True,
            reason=r.SERVER_ERROR,
            ambiguous=True,
            retry_after=exc.retry_after,
        )
    if code in AUTH_ERRORS or status in (401, 403):
        return NotifyError(what, retryable=False, reason=r.AUTH)
    if code in RECIPIENT_ERRORS:
        return NotifyError(what, retryable=False, reason=r.RECIPIENT)
    return NotifyError(what, retryable=False, reason=r.CLIENT_ERROR)


class SmsNotifier:
    """A ``Notifier`` that texts each notification to its recipient's phone via Twilio."""

    def __init__(
        self, name: str, config: SmsChannelConfig, *, api: MessagesApi | None = None
    ) -> None:
        """Build the channel; reads ``auth_token_file`` now (raises ``ConfigError`` if
        unreadable). ``api`` replaces the Twilio client (tests)."""
        self.name = name
        self._config = config
        token = config.resolve_auth_token()
        if api is None and config.configured and token is not None:
            api = TwilioMessages(
                account_sid=config.account_sid,
                auth_token=token,
                base_url=config.api_base_url,
                timeout=config.timeout,
            )
        self._api = api

    def __repr__(self) -> str:
        return f"SmsNotifier(name={self.name!r}, api={self._config.api_base_url!r})"

    async def send(self, notification: Notification) -> Sent:
        """Send ``notification`` as one SMS and return its MessageSid, or raise
        ``NotifyError``."""
        cfg = self._config
        n = notification
        what = f"sms {self.name} incident #{n.incident.id}"
        if self._api is None:
            raise NotifyError(
                f"{what}: channel not configured (no account_sid/auth_token)",
                retryable=False,
                reason=FailureReason.UNCONFIGURED,
            )
        if len(n.recipients) != 1:
            # routing makes one intent per phone (ONE_MESSAGE_PER_RECIPIENT)
            raise NotifyError(
                f"{what}: want exactly one recipient phone, got {len(n.recipients)}",
                retryable=False,
                reason=FailureReason.RECIPIENT,
            )
        to = n.recipients[0]
        if not E164.match(to):
            raise NotifyError(
                f"{what}: {to!r} is not a phone number in E.164 form",
                retryable=False,
                reason=FailureReason.RECIPIENT,
            )
        body = sms_body(n, cfg)
        where = f"{what} to {to}"
        try:
            created = await self._api.create(
                to=to,
                body=body,
                from_=cfg.from_,
                messaging_service_sid=cfg.messaging_service_sid,
                status_callback=cfg.status_callback_url,
            )
        except (TwilioApiError, TwilioTransportError) as exc:
            raise classify(where, exc) from exc
        log.debug(
            "%s: accepted as %s (%s, %d segments)",
            where,
            created.sid,
            created.status,
            segments.segment_count(body),
        )
        return Sent(provider_id=created.sid)

    async def close(self) -> None:
        """Close the HTTP session to Twilio."""
        if self._api is not None:
            await self._api.close()
