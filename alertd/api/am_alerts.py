"""What ``GET /api/v2/alerts`` and ``/alerts/groups`` show: alertd's alerts as Alertmanager's
``gettableAlert``s.

Two sources, sorted by fingerprint as Alertmanager sorts:

* the pushed alerts still firing (``external_alerts``): their own labels, annotations, times
  and generator URL;
* alertd's own open (or acknowledged) incidents that were not pushed (threshold rules, SNMP
  traps...), one alert each: the incident's labels plus ``alertname`` = its rule,
  annotations ``summary``, ``incident`` (its id) and ``priority``, ``startsAt`` = opened,
  ``endsAt`` = Go's zero time (no end is known).

The fingerprint is Alertmanager's (FNV-1a over the sorted label pairs), so the same alert
has the same fingerprint here as in an Alertmanager. Status is worked out at request time:
an alert an active silence covers is ``suppressed`` with the silence in ``silencedBy``; one a
maintenance window covers is ``suppressed`` with the window's name in ``mutedBy`` (windows
are alertd's mute time intervals); an incident suppressed because its ``parent`` is down is
``suppressed`` with ``parent <name>`` in ``inhibitedBy``. Receivers are the teams and
channels its routes page at once (see ``am_config``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from alertd.api.am_config import routed
from alertd.config.channels import ChannelsFile, Route
from alertd.incidents.maintenance import Window
from alertd.incidents.manager import window_view
from alertd.incidents.priority import priority_of
from alertd.ingest.external import EXTERNAL_METRIC, ExternalAlert, active
from alertd.model import Incident, IncidentState
from alertd.state.incidents import INCIDENT_COLUMNS, incident_from_row

GO_ZERO_TIME = "0001-01-01T00:00:00.000Z"
_UUID_PREFIX = "a1e7d000-0000-4000-8000-"  # + the row id in 12 decimal digits


def silence_uuid(window_id: int) -> str:
    """Return the Alertmanager id of stored window ``window_id``: a UUID whose last group is
    the row id in decimal (``#42`` is ``a1e7d000-0000-4000-8000-000000000042``)."""
    return f"{_UUID_PREFIX}{window_id:012d}"


def parse_silence_id(text: str) -> int | None:
    """Return the row id of a silence id: the UUID form, or the plain number; else None."""
    text = text.strip().lower().removeprefix("#")
    if text.startswith(_UUID_PREFIX):
        text = text.removeprefix(_UUID_PREFIX)
        if len(text) != 12:
            return None
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    number = int(text)
    return number if number > 0 else None


def am_time(ts: float | None) -> str:
    """Format a time as Alertmanager does (UTC, milliseconds); None is Go's zero time."""
    if ts is None:
        return GO_ZERO_TIME
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def am_fingerprint(labels: Mapping[str, str]) -> str:
    """Return Alertmanager's fingerprint of a label set (``model.LabelSet.Fingerprint``)."""
    return _fingerprint(tuple(sorted(labels.items())))


@lru_cache(maxsize=65536)  # a byte loop in Python: remember it across GETs
def _fingerprint(pairs: tuple[tuple[str, str], ...]) -> str:
    h = 14695981039346656037
    for name, value in pairs:
        for part in (name, value):
            for byte in part.encode() + b"\xff":
                h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(frozen=True, slots=True)
class ApiAlert:
    """One alert as the Alertmanager API shows it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None  # None: no end known (Go's zero time)
    updated_at: float
    generator_url: str
    fingerprint: str
    routes: list[tuple[str, Route | None]]  # (receiver, the alertd route that pages it)
    silenced_by: list[str] = field(default_factory=list)
    inhibited_by: list[str] = field(default_factory=list)
    muted_by: list[str] = field(default_factory=list)

    @property
    def receivers(self) -> list[str]:
        return [name for name, _ in self.routes]

    @property
    def state(self) -> str:
        quiet = self.silenced_by or self.inhibited_by or self.muted_by
        return "suppressed" if quiet else "active"

    def to_json(self) -> dict[str, Any]:
        body = {
            "annotations": self.annotations,
            "endsAt": am_time(self.ends_at),
            "fingerprint": self.fingerprint,
            "receivers": [{"name": name} for name in self.receivers],
            "startsAt": am_time(self.starts_at),
            "status": {
                "inhibitedBy": self.inhibited_by,
                "mutedBy": self.muted_by,
                "silencedBy": self.silenced_by,
                "state": self.state,
            },
            "updatedAt": am_time(self.updated_at),
            "generatorURL": self.generator_url,
            "labels": self.labels,
        }
        if not self.generator_url:
            del body["generatorURL"]  # as Alertmanager (omitempty)
        return body


def collect_alerts(
    conn: sqlite3.Connection, channels: ChannelsFile, windows: Sequence[Window], now: float
) -> list[ApiAlert]:
    """Return every alert in force at ``now``, with its status, sorted by fingerprint."""
    parents = dict(
        conn.execute(
            "SELECT fingerprint, suppressed_by FROM incidents WHERE state != 'resolved' "
            "AND suppressed_by LIKE 'parent %'"
        ).fetchall()
    )
    alerts = [_pushed(a, channels, windows, parents, now) for a in active(conn, now)]
    rows = conn.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' AND metric != ?",
        (EXTERNAL_METRIC,),
    )
    alerts += [_own(incident_from_row(row), channels, windows, now) for row in rows]
    alerts.sort(key=lambda a: a.fingerprint)
    return alerts


def _quiet(
    labels: Mapping[str, str], windows: Sequence[Window], now: float
) -> tuple[list[str], list[str]]:
    silenced, muted = [], []
    for w in windows:
        if w.covers(labels, now):
            if w.kind == "silence" and w.id is not None:
                silenced.append(silence_uuid(w.id))
            else:
                muted.append(w.name)
    return silenced, muted


def _pushed(
    a: ExternalAlert,
    channels: ChannelsFile,
    windows: Sequence[Window],
    parents: Mapping[str, str],
    now: float,
) -> ApiAlert:
    labels = dict(a.labels)
    incident = Incident(
        id=0,
        fingerprint=a.fingerprint,
        rule=a.rule,
        metric=EXTERNAL_METRIC,
        labels=a.labels,
        level=a.level,
        priority=priority_of(a.labels, a.level, channels.priorities),
        state=IncidentState.OPEN,
        summary=a.summary,
        value=None,
        opened_at=a.starts_at,
        updated_at=a.updated_at,
    )
    silenced, muted = _quiet(window_view(labels, a.rule), windows, now)
    parent = parents.get(a.fingerprint)
    return ApiAlert(
        labels=labels,
        annotations=dict(a.annotations),
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        updated_at=a.updated_at,
        generator_url=a.generator_url,
        fingerprint=am_fingerprint(labels),
        routes=routed(incident, channels),
        silenced_by=silenced,
        inhibited_by=[parent] if parent else [],
        muted_by=muted,
    )


def _own(
    incident: Incident, channels: ChannelsFile, windows: Sequence[Window], now: float
) -> ApiAlert:
    labels = {"alertname": incident.rule, **incident.label_map}
    silenced, muted = _quiet(window_view(incident.label_map, incident.rule), windows, now)
    by = incident.suppressed_by or ""
    return ApiAlert(
        labels=labels,
        annotations={
            "summary": incident.summary,
            "incident": str(incident.id),
            "priority": incident.priority,
        },
        starts_at=incident.opened_at,
        ends_at=None,
        updated_at=incident.updated_at,
        generator_url="",
        fingerprint=am_fingerprint(labels),
        routes=routed(incident, channels),
        silenced_by=silenced,
        inhibited_by=[by] if by.startswith("parent ") else [],
        muted_by=muted,
    )


def group_alerts(alerts: Sequence[ApiAlert]) -> list[dict[str, Any]]:
    """Return ``alertGroups``: per receiver, alerts alike in the route's ``group_by`` labels
    (every label when the route does not group, as Alertmanager's ``group_by: [...]``)."""
    groups: dict[tuple[str, int, tuple[tuple[str, str], ...]], list[ApiAlert]] = {}
    for alert in alerts:
        for receiver, route in alert.routes:
            if route is not None and route.group_by:
                key = tuple((k, alert.labels.get(k, "")) for k in sorted(route.group_by))
            else:
                key = tuple(sorted(alert.labels.items()))
            groups.setdefault((receiver, id(route), key), []).append(alert)
    return [
        {
            "alerts": [a.to_json() for a in members],
            "labels": {k: v for k, v in key if v},
            "receiver": {"name": receiver},
        }
        for (receiver, _, key), members in sorted(groups.items(), key=lambda g: (g[0][0], g[0][2]))
    ]
