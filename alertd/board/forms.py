"""The board's form fields, checked: what a person typed becomes values or a list of problems."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from alertd.config.types import parse_duration

MAX_TEXT = 2000  # a comment, or the comment on an ack/resolve
MAX_REASON = 500
MAX_MATCHERS = 50
MAX_WINDOW = 366 * 86400.0  # a window added on the board lasts at most a year
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class WindowForm:
    """A maintenance window or silence to add."""

    matchers: dict[str, list[str]]
    start: float
    end: float
    reason: str


def text_field(form: Mapping[str, str], name: str, limit: int = MAX_TEXT) -> str | None:
    """Return the stripped field (None if missing or blank); raise ValueError if too long."""
    value = form.get(name, "").strip()
    if len(value) > limit:
        raise ValueError(f"{name} is too long ({len(value)} characters; at most {limit})")
    return value or None


def parse_window(form: Mapping[str, str], now: float) -> WindowForm | list[str]:
    """Return the window a filled-in add form describes, or the problems with it.

    ``matchers``: ``label=value`` pairs, one a line or comma-separated (a label given twice
    matches either value; at least one is needed, so a window never covers everything by
    accident). ``start``: ISO 8601, UTC unless it names a zone; empty means now. Then
    either ``duration`` (``90m``, ``2h``) or ``end``; ``reason`` is required.
    """
    problems: list[str] = []
    matchers: dict[str, list[str]] = {}
    raw = form.get("matchers", "")
    items = [item.strip() for line in raw.splitlines() for item in line.split(",")]
    for item in filter(None, items):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _LABEL.fullmatch(name):
            problems.append(f"matcher {item!r}: expected label=value")
        else:
            matchers.setdefault(name, []).append(value)
    if not matchers and not problems:
        problems.append("give at least one matcher (label=value)")
    if sum(len(v) for v in matchers.values()) > MAX_MATCHERS:
        problems.append(f"at most {MAX_MATCHERS} matchers")
    start = _moment(form.get("start", ""), "start", problems, default=now)
    duration, end_text = form.get("duration", "").strip(), form.get("end", "").strip()
    end: float | None = None
    if bool(duration) == bool(end_text):
        problems.append("give either a duration or an end, not both")
    elif duration:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            problems.append(f"duration {duration!r}: {exc}")
        else:
            end = None if start is None else start + seconds
    else:
        end = _moment(end_text, "end", problems, default=None)
    if start is not None and end is not None:
        if end <= start:
            problems.append("the window must end after it starts")
        elif end - start > MAX_WINDOW:
            problems.append("a window may last at most 366 days")
        elif end <= now:
            problems.append("the window is already over")
    reason = form.get("reason", "").strip()
    if not reason:
        problems.append("give a reason")
    elif len(reason) > MAX_REASON:
        problems.append(f"the reason is too long (at most {MAX_REASON} characters)")
    if problems or start is None or end is None:
        return problems
    return WindowForm(matchers, start, end, reason)


def _moment(text: str, name: str, problems: list[str], default: float | None) -> float | None:
    text = text.strip()
    if not text:
        if default is None:
            problems.append(f"give the {name} time")
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        problems.append(f"{name} {text!r}: expected a time like 2026-08-20T22:00 (UTC)")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
