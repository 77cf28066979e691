"""Whether an alert storm is going on, so that housekeeping can wait for it to pass.

During a storm the CPU and the state's single writer lock should go to incidents and pages.
Work that can wait a few minutes (the 30-day KPI gauges, purging old outbox rows) waits while
alert events arrive at ``threshold`` per second or more, but never longer than ``max_delay``
past when it was due.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STORM_EVENTS_PER_SECOND = 100
MAX_DELAY = 300.0  # seconds housekeeping may be put off, however long the storm


class StormWatch:
    """Counts alert events per second of a monotonic clock; a storm is ``threshold`` or more
    in the current second or the one before."""

    def __init__(
        self,
        threshold: int = STORM_EVENTS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.clock = clock
        self._second = 0
        self._now = 0  # events in ``_second``
        self._before = 0  # events in ``_second - 1``

    def count(self, events: int) -> None:
        self._roll()
        self._now += events

    def raging(self) -> bool:
        self._roll()
        return max(self._now, self._before) >= self.threshold

    def _roll(self) -> None:
        second = int(self.clock())
        if second == self._second:
            return
        self._before = self._now if second == self._second + 1 else 0
        self._now = 0
        self._second = second


def put_off(due_since: float, storm: StormWatch, max_delay: float = MAX_DELAY) -> bool:
    """Whether housekeeping due for ``due_since`` seconds should wait for the storm to pass."""
    return due_since < max_delay and storm.raging()
