"""What the board shows, read straight from the state database and the running config.

Plain values for the templates: incidents with their team, age and time left to their
priority's response target, deliveries from the outbox, and the maintenance windows and
silences in force or upcoming. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alertd.config.channels import ChannelsFile, ResponseTarget
from alertd.incidents.kpi import NO_TEAM
from alertd.incidents.kpi_facts import team_of
from alertd.incidents.maintenance import Window, from_config, from_rows
from alertd.incidents.routing import teams_paged
from alertd.model import Incident, IncidentState
from alertd.state.incidents import (
    INCIDENT_COLUMNS,
    GroupMember,
    IncidentStore,
    TimelineEntry,
    incident_from_row,
)
from alertd.state.maintenance import stored_windows

PRIORITIES = ("P1", "P2", "P3", "P4")
STATES = ("active", "open", "acknowledged", "resolved")  # the list's state filter
MAX_LISTED = 500  # incidents per list page; the rest are counted, not shown
RESOLVED_LISTED = 200  # the most recent resolved incidents the list looks at


def human_duration(seconds: float) -> str:
    """Return ``seconds`` as the two largest units: ``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes}m"
    if s < 86400:
        return f"{hours}h {minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{days}d {hours % 24}h" if hours % 24 else f"{days}d"


def when(ts: float | None) -> str:
    """Return a UTC timestamp as ``2026-08-20 10:00:05Z`` ("-" for none)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(ts: float | None) -> str:
    """Return a ``<time datetime>`` value."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def by_priority(channels: ChannelsFile) -> dict[str, ResponseTarget]:
    """Return ``priorities.targets`` keyed by plain strings."""
    return {str(p): t for p, t in channels.priorities.targets.items()}


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Where an incident stands against its priority's respond or resolve target."""

    goal: str  # "respond" (not yet acknowledged) or "resolve"
    text: str  # "respond within 8m" / "respond overdue by 12m"
    overdue: bool


def target_status(
    incident: Incident, targets: Mapping[str, ResponseTarget], now: float
) -> TargetStatus | None:
    """Return the time left to the respond target (unacknowledged) or resolve target
    (acknowledged), or None for a resolved incident or a priority without targets."""
    target = targets.get(incident.priority)
    if target is None or incident.state is IncidentState.RESOLVED:
        return None
    if incident.state is IncidentState.OPEN:
        goal, deadline = "respond", incident.targets_from + target.respond_within
    else:
        goal, deadline = "resolve", incident.targets_from + target.resolve_within
    left = deadline - now
    if left < 0:
        return TargetStatus(goal, f"{goal} overdue by {human_duration(-left)}", True)
    return TargetStatus(goal, f"{goal} within {human_duration(left)}", False)


@dataclass(frozen=True, slots=True)
class Listed:
    """One incident on the list."""

    incident: Incident
    team: str  # the team paged first (the owner, as in the KPIs)
    age: str
    target: TargetStatus | None
    teams: tuple[str, ...] = ()  # every team any tier pages (what the team filter matches)

    @property
    def instance(self) -> str:
        return self.incident.label_map.get("instance", "")


@dataclass(frozen=True, slots=True)
class Filters:
    """The list's GET query: state, priority, team and free text over labels and summary."""

    state: str = "active"
    priority: str = ""
    team: str = ""
    text: str = ""

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        state = query.get("state", "active")
        priority = query.get("priority", "")
        return cls(
            state=state if state in STATES else "active",
            priority=priority if priority in PRIORITIES else "",
            team=query.get("team", "")[:200],
            text=query.get("q", "")[:200].strip(),
        )

    @property
    def states(self) -> list[IncidentState]:
        if self.state == "active":
            return [IncidentState.OPEN, IncidentState.ACKNOWLEDGED]
        return [IncidentState(self.state)]

    def accepts(self, listed: Listed) -> bool:
        i = listed.incident
        if self.priority and i.priority != self.priority:
            return False
        if self.team == NO_TEAM and listed.teams:
            return False
        if self.team not in ("", NO_TEAM) and self.team not in listed.teams:
            return False  # the API's team filter means the same (routing.teams_paged)
        if not self.text:
            return True
        haystack = [f"{k}={v}".casefold() for k, v in i.labels]
        haystack.append(i.summary.casefold())
        return all(any(t in h for h in haystack) for t in self.text.casefold().split())


@dataclass(slots=True)
class Board:
    """The list page: incidents grouped by priority (P1 first; others last)."""

    groups: dict[str, list[Listed]] = field(default_factory=dict)
    shown: int = 0
    matched: int = 0


def incidents(
    conn: sqlite3.Connection, channels: ChannelsFile, filters: Filters, now: float
) -> Board:
    """Return the incidents ``filters`` select, most urgent priority first, oldest first."""
    query = f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state IN ({{}})"
    states = filters.states
    sql = query.format(", ".join("?" for _ in states))
    params: list[object] = [s.value for s in states]
    if filters.state == "resolved":
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(RESOLVED_LISTED)
    rows = conn.execute(sql, params).fetchall()
    board = Board({p: [] for p in PRIORITIES})
    targets = by_priority(channels)
    listed = []
    for row in rows:
        incident = incident_from_row(row)
        item = Listed(
            incident,
            team_of(incident, channels),
            human_duration(now - incident.opened_at),
            target_status(incident, targets, now),
            tuple(teams_paged(incident, channels)) if filters.team else (),
        )
        if filters.accepts(item):
            listed.append(item)
    listed.sort(key=lambda x: (_rank(x.incident.priority), x.incident.opened_at, x.incident.id))
    board.matched = len(listed)
    for item in listed[:MAX_LISTED]:
        board.groups.setdefault(item.incident.priority, []).append(item)
    board.shown = min(len(listed), MAX_LISTED)
    return board


def _rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One notification intent about an incident, from the outbox."""

    id: int
    transition: str
    channel: str
    team: str
    recipients: int
    state: str
    attempts: int
    provider_status: str | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Detail:
    """The incident page."""

    listed: Listed
    members: list[GroupMember]
    timeline: list[TimelineEntry]
    deliveries: list[DeliveryRow]


def detail(
    conn: sqlite3.Connection, channels: ChannelsFile, incident_id: int, now: float
) -> Detail | None:
    """Return everything the incident page shows, or None for an unknown id."""
    store = IncidentStore(conn)
    incident = store.get(incident_id)
    if incident is None:
        return None
    listed = Listed(
        incident,
        team_of(incident, channels),
        human_duration(now - incident.opened_at),
        target_status(incident, by_priority(channels), now),
    )
    rows = conn.execute(
        "SELECT id, transition, channel, team, recipients, state, attempts, provider_status, "
        "last_error, created_at, updated_at FROM outbox WHERE incident_id = ? ORDER BY id",
        (incident_id,),
    )
    deliveries = [DeliveryRow(r[0], r[1], r[2], r[3], len(json.loads(r[4])), *r[5:]) for r in rows]
    return Detail(
        listed,
        store.members([incident_id]).get(incident_id, []),
        store.timeline(incident_id),
        deliveries,
    )


@dataclass(frozen=True, slots=True)
class WindowItem:
    """A maintenance window or silence on its page."""

    window: Window
    stored_id: int | None  # None: configured in channels.yaml (not removable here)
    status: str  # "active", "upcoming: starts in 2h", "weekly (not now)"
    active: bool

    @property
    def matchers(self) -> list[str]:
        """Each matcher as text: ``instance=a | b``; Alertmanager ones (silences made through
        its API) as Alertmanager writes them: ``job=~"node|snmp"``."""
        am: Sequence[object] = getattr(self.window, "am", ())
        if am:
            return [str(m) for m in am]
        return [f"{k}={' | '.join(v)}" for k, v in self.window.matchers.items()]

    @property
    def when(self) -> str:
        w = self.window
        if w.weekly is not None:
            days = ",".join(w.weekly.days)
            hours = human_duration(w.weekly.duration)
            return f"weekly {days} at {w.weekly.at} {w.weekly.timezone} for {hours}"
        return f"{when(w.start)} to {when(w.end)}"


def windows(
    conn: sqlite3.Connection, channels: ChannelsFile, kind: str, now: float
) -> list[WindowItem]:
    """Return the windows of ``kind`` ("maintenance" or "silence") not yet over: configured
    ones first, then the stored ones in the order they were added."""
    found: list[tuple[Window, int | None]] = [
        (w, None) for w in from_config(channels) if w.kind == kind and not _over(w, now)
    ]
    rows = [r for r in stored_windows(conn, now) if r.kind == kind]
    found += [(w, r.id) for w, r in zip(from_rows(rows), rows, strict=True)]
    return [_item(w, stored_id, now) for w, stored_id in found]


def _over(w: Window, now: float) -> bool:
    return w.weekly is None and w.end is not None and w.end <= now


def _item(w: Window, stored_id: int | None, now: float) -> WindowItem:
    if w.active_at(now):
        left = "" if w.end is None or w.weekly else f", {human_duration(w.end - now)} left"
        return WindowItem(w, stored_id, f"active{left}", True)
    if w.weekly is not None:
        return WindowItem(w, stored_id, "weekly, not in force now", False)
    starts = "" if w.start is None else f": starts in {human_duration(w.start - now)}"
    return WindowItem(w, stored_id, f"upcoming{starts}", False)


def team_names(channels: ChannelsFile) -> Sequence[str]:
    return sorted(channels.teams)
