"""One log line for many of the same kind: the first at once, then a count once a while.

300 pages to a provider that answers 500 retry about 3,000 times a minute; a line for each
buries the log. The first failure of a kind says all there is to say, and a line every
``every`` seconds says how many more there were meanwhile (each is on its incident's
timeline anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class Repeats:
    """Decides which of a run of same-kind log lines are written."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[Hashable, float] = {}  # kind -> when its last line was written
        self._quiet: dict[Hashable, int] = {}  # kind -> lines left out since then

    def note(self, kind: Hashable) -> int | None:
        """One more of ``kind``: return None to leave it out of the log, else how many of
        that kind were left out since its last line (0: none, or the first of its kind)."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            self._quiet[kind] = self._quiet.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._quiet.pop(kind, 0)
