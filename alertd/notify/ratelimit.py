"""Rate limits per channel and per recipient, as exact sliding windows.

A provider's "20 a minute" means no 60 s span holds more than 20 messages (a token bucket
would let a full bucket plus a minute's refill through: 40), so each window remembers when
its last ``count`` sends went. A channel may have several windows at once (Feishu: 5 a second
*and* 100 a minute). The limiter only answers "may this go now?"; what it refuses is held in
the durable outbox and goes out later as one digest, never dropped (``notify/delivery.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

Window = tuple[float, float]  # (count, per seconds): e.g. (20, 60) is 20 a minute


def margin(seconds: float) -> float:
    """How much longer than the provider's window ours is: a send is counted when admitted,
    but reaches the provider later (a queue, a new connection's TLS), so sends admitted a
    window apart can arrive less than one apart: 21 in 59.9 s to a robot that allows 20 a
    minute and then throttles it for 10 minutes (user-test finding). 5 %, at least 0.3 s."""
    return max(0.3, 0.05 * seconds)


@dataclass(slots=True)
class SlidingWindow:
    """At most ``count`` sends in any ``seconds`` long span."""

    count: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)

    @classmethod
    def of(cls, window: Window) -> SlidingWindow:
        """The window for ``window``, a little longer than the provider's (``margin``)."""
        count, seconds = window
        if count < 1:  # "0.5 a second" is one every 2 s
            count, seconds = 1, seconds / count
        return cls(int(count), seconds + margin(seconds))

    def peek(self, now: float) -> bool:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        return len(self.sent) < self.count

    def take(self, now: float) -> None:
        self.sent.append(now)


@dataclass(slots=True)
class Limiter:
    """The windows of every channel and recipient."""

    per_channel: dict[str, tuple[Window, ...]] = field(default_factory=dict)
    per_recipient: dict[str, float] = field(default_factory=dict)  # channel -> per minute
    # channel -> the channel whose windows it counts in: channels posting to one robot share
    # its limit (the provider counts per robot, not per alertd channel)
    shared: dict[str, str] = field(default_factory=dict)
    windows: dict[tuple[str, str, int], tuple[Window, SlidingWindow]] = field(default_factory=dict)

    def _window(self, channel: str, who: str, index: int, window: Window) -> SlidingWindow:
        key = (channel, who, index)
        known = self.windows.get(key)
        if known is None or known[0] != window:  # new, or a reload changed the limit
            known = self.windows[key] = (window, SlidingWindow.of(window))
        return known[1]

    def _windows_for(self, channel: str, recipients: Sequence[str]) -> list[SlidingWindow]:
        counted_as = self.shared.get(channel, channel)
        out = [
            self._window(counted_as, "", i, window)
            for i, window in enumerate(self.per_channel.get(counted_as, ()))
        ]
        if (limit := self.per_recipient.get(channel)) is not None:
            out += [self._window(channel, r, 0, (limit, 60.0)) for r in recipients]
        return out

    def admit(self, channel: str, recipients: Sequence[str], now: float) -> bool:
        """Count a send now if every window that applies has room; else count nothing."""
        windows = self._windows_for(channel, recipients)
        if not all(w.peek(now) for w in windows):
            return False
        for w in windows:
            w.take(now)
        return True

    def remember(self, channel: str, recipients: Sequence[str], at: float) -> None:
        """Count a send made at ``at`` (before a restart), room or not: sends must be
        remembered in time order."""
        for w in self._windows_for(channel, recipients):
            w.take(at)

    def horizon(self) -> float:
        """How far back a send still counts against some window (0: no limits)."""
        spans = [SlidingWindow.of(w).seconds for ws in self.per_channel.values() for w in ws]
        spans += [SlidingWindow.of((1, 60.0)).seconds for _ in self.per_recipient]
        return max(spans, default=0.0)

    def check(self, channel: str, recipients: Sequence[str], now: float) -> tuple[bool, list[str]]:
        """Return whether the channel's own windows have room, and which recipients' windows
        are full (nothing is counted: ``admit`` the part that goes)."""
        free = all(w.peek(now) for w in self._windows_for(channel, ()))
        limit = self.per_recipient.get(channel)
        if limit is None:
            return free, []
        busy = [r for r in recipients if not self._window(channel, r, 0, (limit, 60.0)).peek(now)]
        return free, busy
