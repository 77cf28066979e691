"""Maintenance windows (approved change windows) and silences: when an alert is expected.

Pure: a window says whether it covers a series at a given time. Incidents covered when they
open are recorded but page nobody; one still open when its window ends pages then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alertd.config.channels import ChannelsFile
from alertd.evaluate.thresholds import matches
from alertd.state.maintenance import WindowRow

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

    def active_at(self, now: float) -> bool:
        if self.weekly is not None:
            return self.weekly.active_at(now)
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)

    def covers(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active_at(now) and matches(self.matchers, labels)

    def label(self) -> str:
        """How an incident names it: ``maintenance CHG-1234 (reason)``."""
        return f"{self.kind} {self.name}" + (f" ({self.reason})" if self.reason else "")

    def describe(self) -> str:
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
    """Return the windows added from the CLI."""
    return [Window(f"#{r.id}", r.kind, r.matchers, r.reason, r.owner, r.start, r.end) for r in rows]
