"""Counters -> per-second rates, with Counter32 wraps and agent restarts handled.

A counter that went down is a wrap for a 32-bit counter (add 2**32) and a discontinuity for a
64-bit one (skip one interval, re-seed). An agent restart (sysUpTime went backwards) re-seeds
every counter of the device: the first interval after it yields no rate, never a spike.
"""

from __future__ import annotations

from collections.abc import Hashable

WRAP32 = 2**32


class RateTracker:
    """Per-device memory of the last value of each counter."""

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[int, float]] = {}
        self._uptime: float | None = None
        self.restarts = 0

    def observe_uptime(
        self, uptime_seconds: float | None, elapsed: float | None = None, slack: float = 5.0
    ) -> bool:
        """Record the agent's sysUpTime; return True (and forget every counter) on a restart.

        ``elapsed`` (seconds since the previous poll) catches a restart whose new uptime is
        already past the old one: the uptime must have grown by about the time that passed,
        give or take ``slack`` (how late a poll's first answer may come).
        """
        if uptime_seconds is None:
            return False
        previous, self._uptime = self._uptime, uptime_seconds
        if previous is None:
            return False
        restarted = uptime_seconds < previous
        if not restarted and elapsed is not None:
            grew = uptime_seconds - previous
            # grew too little: it rebooted in between; too much: not the same agent run
            restarted = grew < elapsed - slack or grew > elapsed + slack + 60
        if restarted:
            self._last.clear()
            self.restarts += 1
        return restarted

    def rate(self, key: Hashable, value: int, bits: int, now: float) -> float | None:
        """Return the per-second rate since the last value of ``key``, or None if unknown."""
        previous = self._last.get(key)
        self._last[key] = (value, now)
        if previous is None:
            return None
        last_value, last_time = previous
        elapsed = now - last_time
        if elapsed <= 0:
            return None
        delta = value - last_value
        if delta < 0:
            if bits != 32:
                return None  # a 64-bit counter doesn't wrap in practice: it was reset
            delta += WRAP32
        return delta / elapsed

    def forget_except(self, keep: set[Hashable]) -> None:
        """Drop counters no longer reported (an interface removed), so memory stays bounded."""
        for key in [k for k in self._last if k not in keep]:
            del self._last[key]
