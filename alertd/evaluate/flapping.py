"""Flap detection, the Nagios/Icinga way: a weighted share of state changes.

The last ``window`` evaluations of a series are kept as bits (1: firing). Each change between
neighbours counts with a weight from 0.8 (oldest) to 1.2 (newest); the sum over the number of
possible changes, in percent, is the state change. Above ``high`` the series is flapping,
below ``low`` it has settled. Pure functions on ints: cheap enough to run on every step.
"""

from __future__ import annotations


def push(history: int, firing: bool, window: int) -> int:
    """Return ``history`` with the newest result shifted in (bit 0 is the newest)."""
    return ((history << 1) | int(firing)) & ((1 << window) - 1)


def state_change_percent(history: int, checks: int, window: int) -> float:
    """Return the weighted percentage of state changes over the recorded evaluations."""
    seen = min(checks, window)
    changes = seen - 1
    if changes < 1:
        return 0.0
    total = 0.0
    span = window - 2 or 1
    for i in range(changes):  # i = 0 compares the two newest results
        if ((history >> i) ^ (history >> (i + 1))) & 1:
            total += 0.8 + 0.4 * (span - min(i, span)) / span
    return 100.0 * total / (window - 1)
