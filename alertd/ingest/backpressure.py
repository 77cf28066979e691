"""Ingest yields to delivery: a POST of alerts waits, briefly, while the outbox has many
notifications due and unsent.

In a storm on a machine whose CPU is the limit, an alert accepted while the delivery worker is
behind only joins the back of the outbox queue: its page waits there anyway, and the CPU spent
accepting it is taken from sending. Holding the next POST back until the backlog is under
``max_backlog`` keeps the two stages in step, so pages go out sooner and the storm is over
sooner (``bench/bench_pipeline.py``). Nothing is refused or dropped, and one request waits at
most ``max_wait``: the sender (Prometheus keeps one request in flight per Alertmanager) sends
its next batch a moment later. A backlog that does not shrink (a slow provider) costs each
POST ``max_wait`` at most, never more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL = 0.01  # seconds between looks at the backlog, shared by every request held
ERROR_LOG_EVERY = 60.0  # seconds between log lines about a backlog that cannot be read


class Backpressure:
    """Waits while ``backlog(cap)`` (due, unsent notifications, counted up to ``cap``) is over
    the limit. ``settings`` is read per request, so a reload applies at once.

    However many requests are held, the backlog is read at most once per ``POLL``: held
    requests must not spend the CPU they are holding back for. A backlog that cannot be read
    (a database error) holds nothing back: this is only about speed, never a reason to fail
    or delay a request.
    """

    def __init__(
        self,
        backlog: Callable[[int], int],
        settings: Callable[[], tuple[int, float]],
        held: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.backlog = backlog  # counts up to its argument: the cost stays bounded
        self.settings = settings  # (max_backlog, max_wait); max_backlog 0 turns it off
        self.held = held  # told how long each held request waited
        self._seen = (float("-inf"), 0, 0)  # (when, for which limit, how many)
        self._error_logged = float("-inf")

    async def wait(self) -> float:
        """Return once the backlog is at most ``max_backlog``, or ``max_wait`` has passed;
        the seconds waited."""
        limit, max_wait = self.settings()
        if limit <= 0 or max_wait <= 0 or not self._over(limit):
            return 0.0
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + max_wait
        while loop.time() < deadline:
            await asyncio.sleep(min(POLL, max(0.0, deadline - loop.time())))
            if not self._over(limit):
                break
        waited = loop.time() - start
        self.held(waited)
        return waited

    def _over(self, limit: int) -> bool:
        now = asyncio.get_running_loop().time()
        when, seen_limit, count = self._seen
        if now - when < POLL and seen_limit == limit:
            return count > limit
        try:
            count = self.backlog(limit + 1)
        except Exception as exc:
            if now - self._error_logged >= ERROR_LOG_EVERY:
                self._error_logged = now
                log.warning("ingest backpressure off for now: cannot read the backlog: %s", exc)
            count = 0
        self._seen = (now, limit, count)
        return count > limit
