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
from collections.abc import Callable

POLL = 0.005  # seconds between looks at the backlog while holding a request


class Backpressure:
    """Waits while ``backlog(cap)`` (due, unsent notifications, counted up to ``cap``) is over
    the limit. ``settings`` is read per request, so a reload applies at once."""

    def __init__(
        self,
        backlog: Callable[[int], int],
        settings: Callable[[], tuple[int, float]],
        held: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.backlog = backlog  # counts up to its argument: the cost stays bounded
        self.settings = settings  # (max_backlog, max_wait); max_backlog 0 turns it off
        self.held = held  # told how long each held request waited

    async def wait(self) -> float:
        """Return once the backlog is at most ``max_backlog``, or ``max_wait`` has passed;
        the seconds waited."""
        limit, max_wait = self.settings()
        if limit <= 0 or max_wait <= 0 or self.backlog(limit + 1) <= limit:
            return 0.0
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + max_wait
        while loop.time() < deadline:
            await asyncio.sleep(min(POLL, max(0.0, deadline - loop.time())))
            if self.backlog(limit + 1) <= limit:
                break
        waited = loop.time() - start
        self.held(waited)
        return waited
