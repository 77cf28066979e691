"""RFC 3339 times as Alertmanager's API reads them, including Go's zero time.

Go clients (amtool, anything using the go-openapi client) serialise an unset ``time.Time`` as
``0001-01-01T00:00:00Z``; Alertmanager treats that instant as "not given". ``parse_time``
returns None for it, so the caller applies the same defaults as for a missing field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

GO_ZERO_TIME = -62135596800.0  # 0001-01-01T00:00:00Z in Unix seconds: Go's time.Time{}

_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> float | None:
    """Parse an RFC 3339 time (fractions up to nanoseconds, any offset) into Unix seconds.

    Return None for Go's zero time (any offset that denotes that instant). A missing offset
    means UTC, and seconds may be left out, as go-openapi's ``strfmt.DateTime`` accepts.
    Raise ValueError when the text is no such time.
    """
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 time")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        base = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {exc}") from None
    seconds = (base - _EPOCH).total_seconds()
    if zone and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError("not an RFC 3339 time offset")
        offset = hours * 3600 + minutes * 60
        seconds = seconds - offset if zone[0] == "+" else seconds + offset
    if seconds == GO_ZERO_TIME and not (frac and int(frac)):
        return None
    if frac:
        seconds += int(frac.ljust(9, "0")) / 1e9
    return seconds
