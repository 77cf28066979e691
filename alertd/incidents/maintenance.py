"""Maintenance windows (approved change windows) and silences: when an alert is expected.

Pure: a window says whether it covers a series at a given time. Incidents covered when they
open are recorded but page nobody; one still open when its window ends pages then.

A window matches either by equality (label -> any of these values; a missing label is "")
or, for silences made through the Alertmanager API, by Alertmanager matchers: ``=``, ``!=``,
``=~``, ``!~``, all of which must hold, with regexes anchored at both ends (``^(?:re)$``) in
RE2 syntax, as Alertmanager's ``pkg/labels`` does. Regexes run on RE2 itself (the
``google-re2`` package: linear time, so no pattern can stall the daemon) when it is
installed, else on Python's ``re`` with what RE2 refuses (backreferences, look-arounds)
refused too.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alertd.config.channels import ChannelsFile
from alertd.evaluate.thresholds import matches
from alertd.state.maintenance import LabelMatcher, WindowRow

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Weekly:
    """Every week on ``days`` at ``at`` (local time in ``timezone``) for ``duration`` s."""

    days: tuple[str, ...]
    at: str  # "HH:MM"
    duration: float
    timezone: str = "UTC"

    def active_at(self, now: float) -> bool:
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(now, zone)
        hour, minute = (int(part) for part in self.at.split(":"))
        # a window that started on an earlier day may still be running: look back
        for back in range(int(self.duration // 86400) + 2):
            day = local - timedelta(days=back)
            if DAYS[day.weekday()] not in self.days:
                continue
            start = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if start.timestamp() <= now < start.timestamp() + self.duration:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window or silence: which series, when, why, and whose."""

    name: str  # config name, or "#<id>" for one added from the CLI
    kind: str  # "maintenance" or "silence"
    matchers: Mapping[str, Sequence[str]]
    reason: str
    owner: str
    start: float | None = None  # one-off: [start, end)
    end: float | None = None
    weekly: Weekly | None = None
    am: tuple[LabelMatcher, ...] = ()  # Alertmanager matchers: then ``matchers`` is unused
    id: int | None = None  # the stored window's row id

    def active_at(self, now: float) -> bool:
        if self.weekly is not None:
            return self.weekly.active_at(now)
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)

    def covers(self, labels: Mapping[str, str], now: float) -> bool:
        if not self.active_at(now):
            return False
        return all_match(self.am, labels) if self.am else matches(self.matchers, labels)

    def label(self) -> str:
        """How an incident names it: ``maintenance CHG-1234 (reason)``."""
        return f"{self.kind} {self.name}" + (f" ({self.reason})" if self.reason else "")

    def describe(self) -> str:
        if self.am:
            match = ", ".join(str(m) for m in self.am)
        else:
            match = ", ".join(f"{k}={'|'.join(v)}" for k, v in self.matchers.items())
        weekly = self.weekly
        if weekly is not None:
            days = ",".join(weekly.days)
            when = f"weekly {days} {weekly.at} {weekly.timezone} for {weekly.duration / 3600:g}h"
        else:
            when = f"{_iso(self.start)} .. {_iso(self.end)}"
        owner = self.owner or "-"
        return f"{self.kind} {self.name}: {match or '(all)'}  {when}  owner={owner}  {self.reason}"


def _iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def covering(windows: Sequence[Window], labels: Mapping[str, str], now: float) -> Window | None:
    """Return the first window that covers a series with ``labels`` at ``now``, if any."""
    return next((w for w in windows if w.covers(labels, now)), None)


def from_config(config: ChannelsFile) -> list[Window]:
    """Return the windows ``channels.yaml`` defines."""
    out = []
    for w in config.maintenance:
        weekly = None
        if w.weekly is not None:
            weekly = Weekly(tuple(w.weekly.days), w.weekly.at, w.weekly.duration, w.weekly.timezone)
        start = w.start.timestamp() if w.start else None
        end = w.end.timestamp() if w.end else None
        if start is not None and end is None and w.duration is not None:
            end = start + w.duration
        out.append(Window(w.name, "maintenance", w.match, w.reason, w.owner, start, end, weekly))
    return out


def from_rows(rows: Sequence[WindowRow]) -> list[Window]:
    """Return the windows added from the CLI or the Alertmanager API (one removed by hand
    ends when it was removed)."""
    return [
        Window(
            f"#{r.id}",
            r.kind,
            r.matchers,
            r.reason,
            r.owner,
            r.start,
            r.end if r.removed_at is None else min(r.end, max(r.start, r.removed_at)),
            am=r.am,
            id=r.id,
        )
        for r in rows
    ]


# -- Alertmanager matchers -------------------------------------------------------------------


class MatcherError(ValueError):
    """A matcher that cannot be used: its regex does not compile, for instance."""


def matcher_matches(m: LabelMatcher, value: str) -> bool:
    """Return whether ``m`` accepts a label value (Alertmanager's ``Matcher.Matches``)."""
    if m.is_regex:
        return compile_matcher_regex(m.value)(value) == m.is_equal
    return (value == m.value) == m.is_equal


def all_match(matchers: Sequence[LabelMatcher], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher accepts its label's value (a missing label is "").

    A stored regex that no longer compiles (google-re2 uninstalled, say) matches nothing: the
    window covers less, never more, and incident processing goes on."""
    try:
        return all(matcher_matches(m, labels.get(m.name, "")) for m in matchers)
    except MatcherError as exc:
        if str(exc) not in _warned:
            _warned.add(str(exc))
            log.warning("a stored window's matcher is unusable, it covers nothing: %s", exc)
        return False


_warned: set[str] = set()


def check_matcher(m: LabelMatcher) -> None:
    """Raise ``MatcherError`` unless ``m`` can be used (its regex compiles)."""
    if m.is_regex:
        compile_matcher_regex(m.value)


@functools.cache
def _re2() -> Any:
    try:
        return importlib.import_module("re2")  # google-re2: untyped, hence no plain import
    except ImportError:
        log.info("google-re2 is not installed: matcher regexes run on Python's re")
        return None


_LEADING_FLAGS = re.compile(r"\(\?[ims]+\)")
_NOT_RE2 = re.compile(r"\\[1-9]|\\[Zg]|\(\?(?:=|!|<=|<!|P=|>|\(|#)")


@functools.lru_cache(maxsize=1024)
def compile_matcher_regex(pattern: str) -> Callable[[str], bool]:
    """Return a test for ``^(?:pattern)$``, compiled as Alertmanager does; raise
    ``MatcherError`` if RE2 would refuse it."""
    re2 = _re2()
    if re2 is not None:
        options = re2.Options()
        options.log_errors = False
        try:
            compiled = re2.compile("^(?:" + pattern + ")$", options)
        except re2.error as exc:
            raise MatcherError(f"invalid regex {pattern!r}: {_text(exc)}") from None
        search = compiled.search
        return lambda value: search(value) is not None
    if _NOT_RE2.search(pattern.replace("\\\\", "")):
        raise MatcherError(f"invalid regex {pattern!r}: not RE2 syntax")
    flags = _LEADING_FLAGS.match(pattern)  # RE2 takes "(?i)x"; inside "^(?:...)" Python doesn't
    prefix, body = (flags.group(0), pattern[flags.end() :]) if flags else ("", pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and friends
            std = re.compile(prefix + "\\A(?:" + body.replace("\\z", "\\Z") + ")\\Z", re.ASCII)
    except re.error as exc:
        raise MatcherError(f"invalid regex {pattern!r}: {exc}") from None
    return lambda value: std.search(value) is not None


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
