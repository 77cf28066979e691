"""Deliver a batch of notifications: channels run concurrently, each with bounded retries.

A failing channel never blocks another. Each outcome is handed to ``record`` (the incident
timeline) and counted. The durable outbox (the notifications issue) replaces the in-memory
retry here; its seam is the same ``Notifier.send`` and the same ``record`` call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

from alertd.errors import FailureReason, NotifyError
from alertd.metrics import Metrics
from alertd.model import Notification
from alertd.notify.notifier import Notifier
from alertd.notify.ratelimit import Limiter

log = logging.getLogger(__name__)

Recorder = Callable[[Notification, str], None]


class Dispatcher:
    """Sends notifications through their channel's notifier."""

    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        metrics: Metrics,
        record: Recorder,
        *,
        attempts: int = 3,
        backoff: float = 2.0,
        send_timeout: float = 30.0,
        limiter: Limiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter or Limiter({}, {})
        self.monotonic = monotonic
        self._digest_members: dict[str, list[Notification]] = {}
        self.notifiers = notifiers
        self.metrics = metrics
        self.record = record
        self.attempts = attempts
        self.backoff = backoff
        self.send_timeout = send_timeout

    async def deliver(self, batch: Sequence[Notification]) -> None:
        """Deliver every notification in ``batch`` that its rate limits admit; hold the rest
        for a digest. Never raises for a channel failure."""
        now = self.monotonic()
        admitted = []
        for n in batch:
            if self.limiter.admit(n, now):
                admitted.append(n)
            else:
                self.metrics.notifications_held.labels(n.channel).inc()
                self.record(n, "held by the rate limit: it goes out in the next digest")
        await asyncio.gather(*(self._deliver_one(n) for n in admitted))

    async def flush_digests(self) -> None:
        """Send a digest for every channel holding notifications whose limit allows one."""
        digests = self.limiter.digests(self.monotonic())
        for digest, members in digests:
            self._digest_members[digest.key] = members
            log.info("digest of %d held notifications via %s", len(members), digest.channel)
        try:
            await asyncio.gather(*(self._deliver_one(d) for d, _ in digests))
        finally:
            for digest, _ in digests:
                self._digest_members.pop(digest.key, None)

    def _record(self, n: Notification, outcome: str) -> None:
        members = self._digest_members.get(n.key)
        if members is None:
            self.record(n, outcome)
            return
        for member in members:  # each held notification's incident learns how it went out
            self.record(member, f"in a digest of {len(members)}: {outcome}")

    async def _deliver_one(self, n: Notification) -> None:
        notifier = self.notifiers.get(n.channel)
        if notifier is None:
            self._failed(
                n,
                NotifyError(
                    "channel no longer configured",
                    retryable=False,
                    reason=FailureReason.UNCONFIGURED,
                ),
                final=True,
            )
            return
        last_reason = ""
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(self.send_timeout):
                    await notifier.send(n)
            except NotifyError as exc:
                final = not exc.retryable or attempt == self.attempts
                if str(exc) != last_reason or final:  # warn once per distinct error
                    self._failed(n, exc, final=final, attempt=attempt)
                else:
                    self.metrics.notifications_failed.labels(n.channel, exc.reason.value).inc()
                last_reason = str(exc)
                if final:
                    return
            except TimeoutError:
                timeout = NotifyError(
                    f"no answer in {self.send_timeout:g}s",
                    retryable=True,
                    reason=FailureReason.TIMEOUT,
                )
                self._failed(n, timeout, final=attempt == self.attempts, attempt=attempt)
                if attempt == self.attempts:
                    return
            except Exception as exc:  # a bug in a channel must not kill the dispatcher
                log.exception("channel %s crashed sending incident #%d", n.channel, n.incident.id)
                self._failed(
                    n,
                    NotifyError(
                        f"internal error: {exc!r}", retryable=False, reason=FailureReason.OTHER
                    ),
                    final=True,
                )
                return
            else:
                self.metrics.notifications_sent.labels(n.channel).inc()
                log.info(
                    "notification sent: incident #%d %s via %s",
                    n.incident.id,
                    n.transition.value,
                    n.channel,
                )
                self._record(n, "sent" if attempt == 1 else f"sent (attempt {attempt})")
                return
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2))

    def _failed(self, n: Notification, exc: NotifyError, *, final: bool, attempt: int = 1) -> None:
        self.metrics.notifications_failed.labels(n.channel, exc.reason.value).inc()
        if final:
            log.error(
                "notification given up: incident #%d via %s after %d attempt(s): %s",
                n.incident.id,
                n.channel,
                attempt,
                exc,
            )
            self._record(n, f"failed ({exc.reason.value}): {exc}")
        else:
            log.warning("notification via %s failed, will retry: %s", n.channel, exc)
