"""The JSON shapes of ``/api/v1``: incidents, windows, teams and KPIs, as ``openapi.json``
documents them. Times are RFC 3339 in UTC with milliseconds (``2026-08-20T10:00:00.000Z``);
durations are seconds (numbers)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from alertd.config.channels import ChannelsFile
from alertd.incidents.kpi import GroupKpis, KpiReport
from alertd.incidents.maintenance import Window, from_config, from_rows
from alertd.incidents.routing import teams_paged
from alertd.model import Incident
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import as_label_matchers, stored_windows

CONTACT_KINDS = ("email", "phone", "im")


def rfc3339(ts: float | None) -> str | None:
    """Return ``ts`` (epoch seconds) as RFC 3339 UTC with milliseconds, or None."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def incident_json(incident: Incident, channels: ChannelsFile) -> dict[str, Any]:
    """Return one incident as the list and the detail show it."""
    targets = channels.priorities.targets.items()
    target = next((t for p, t in targets if p == incident.priority), None)
    return {
        "id": incident.id,
        "fingerprint": incident.fingerprint,
        "rule": incident.rule,
        "metric": incident.metric,
        "labels": incident.label_map,
        "level": incident.level.label,
        "priority": incident.priority,
        "state": incident.state.value,
        "summary": incident.summary,
        "value": _number(incident.value),
        "opened_at": rfc3339(incident.opened_at),
        "updated_at": rfc3339(incident.updated_at),
        "acknowledged_at": rfc3339(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": rfc3339(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "suppressed_by": incident.suppressed_by,
        "teams": teams_paged(incident, channels),
        "respond_by": rfc3339(incident.targets_from + target.respond_within) if target else None,
        "resolve_by": rfc3339(incident.targets_from + target.resolve_within) if target else None,
    }


def incident_detail_json(
    conn: sqlite3.Connection, incident: Incident, channels: ChannelsFile
) -> dict[str, Any]:
    """Return the incident with its member alerts, full timeline and outbox deliveries."""
    store = IncidentStore(conn)
    data = incident_json(incident, channels)
    data["alerts"] = [
        {
            "fingerprint": m.fingerprint,
            "rule": m.rule,
            "labels": dict(m.labels),
            "level": m.level.label,
            "state": m.state,
            "since": rfc3339(m.since),
        }
        for m in store.members([incident.id]).get(incident.id, [])
    ]
    data["timeline"] = [
        {"at": rfc3339(t.ts), "kind": t.kind, "actor": t.actor, "detail": t.detail}
        for t in store.timeline(incident.id)
    ]
    rows = conn.execute(
        "SELECT id, channel, team, transition, state, attempts, created_at, updated_at, "
        "provider_status, last_error FROM outbox WHERE incident_id = ? ORDER BY id",
        (incident.id,),
    )
    data["deliveries"] = [
        {
            "id": row[0],
            "channel": row[1],
            "team": row[2] or None,
            "transition": row[3],
            "state": row[4],
            "attempts": row[5],
            "created_at": rfc3339(row[6]),
            "updated_at": rfc3339(row[7]),
            "provider_status": row[8],
            "last_error": row[9],
        }
        for row in rows
    ]
    return data


def window_json(window: Window, window_id: int | None, now: float) -> dict[str, Any]:
    """Return one maintenance window or silence (``window_id``: a stored one's id).

    ``match`` is the equality form (label -> any of these values), None for a silence made
    with Alertmanager matchers (amtool); ``matchers`` is the Alertmanager form of either."""
    weekly = window.weekly
    return {
        "id": window_id,
        "name": window.name,
        "kind": window.kind,
        "source": "config" if window_id is None else "stored",
        "match": None if window.am else {k: list(v) for k, v in window.matchers.items()},
        "matchers": [
            {"name": m.name, "op": m.op, "value": m.value}
            for m in window.am or as_label_matchers(window.matchers)
        ],
        "start": rfc3339(window.start),
        "end": rfc3339(window.end),
        "weekly": None
        if weekly is None
        else {
            "days": list(weekly.days),
            "at": weekly.at,
            "duration": weekly.duration,
            "timezone": weekly.timezone,
        },
        "reason": window.reason,
        "owner": window.owner,
        "active": window.active_at(now),
    }


def windows_json(
    conn: sqlite3.Connection, channels: ChannelsFile, kind: str, now: float
) -> list[dict[str, Any]]:
    """Return the windows of ``kind`` in force or upcoming: ``channels.yaml``'s, then the
    stored ones (added with the API, the CLI or amtool), oldest first."""
    out = [
        window_json(w, None, now)
        for w in from_config(channels)
        if w.kind == kind and (w.weekly is not None or w.end is None or w.end > now)
    ]
    rows = [r for r in stored_windows(conn, now) if r.kind == kind]
    out.extend(window_json(w, r.id, now) for w, r in zip(from_rows(rows), rows, strict=True))
    return out


def teams_json(channels: ChannelsFile, contacts: bool) -> dict[str, Any]:
    """Return the teams with their members, and each route's escalation tiers.

    Members' addresses and numbers are personal data: only with ``contacts`` (the admin
    scope); otherwise each member shows which kinds of contact it has."""
    teams = []
    for name, team in channels.teams.items():
        members = []
        for member in team.members:
            entry: dict[str, Any] = {
                "name": member.name,
                "contacts": [k for k in CONTACT_KINDS if getattr(member, k)],
            }
            if contacts:
                entry.update({k: getattr(member, k) for k in CONTACT_KINDS})
            members.append(entry)
        teams.append({"name": name, "channels": list(team.channels), "members": members})
    routes = [
        {
            "index": index,
            "match": {k: list(v) for k, v in route.match.items()},
            "continue": route.continue_,
            "group_by": list(route.group_by),
            "repeat": route.repeat,
            "tiers": [
                {"tier": n + 1, "after": step.after, "notify": list(step.notify)}
                for n, step in enumerate(route.steps)
            ],
        }
        for index, route in enumerate(channels.routes)
    ]
    return {"teams": teams, "routes": routes}


def _group(group: GroupKpis) -> dict[str, Any]:
    return {k: _number(v) if isinstance(v, float) else v for k, v in asdict(group).items()}


def _groups(groups: Sequence[GroupKpis]) -> list[dict[str, Any]]:
    return [_group(g) for g in groups]


def kpis_json(report: KpiReport) -> dict[str, Any]:
    """Return the KPI report (durations in seconds)."""
    return {
        "since": rfc3339(report.since),
        "now": rfc3339(report.now),
        "total": _group(report.total),
        "by_priority": _groups(report.by_priority),
        "by_team": _groups(report.by_team),
        "noise": [asdict(n) for n in report.noise],
    }
