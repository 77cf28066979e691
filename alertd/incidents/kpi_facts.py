"""Facts for the KPIs, read from the state database.

Two queries whatever the number of incidents: the incidents opened in the window, and one
aggregate over their timelines (notification deliveries, the latest acknowledgement). The
team is not stored; it is the first team paged at step 0 of the incident's route under the
current ``channels.yaml``, found with the same routing code the daemon pages with.

``FactsCache`` keeps the facts of incidents resolved long enough ago that they cannot change
any more, so the daemon's refresh every minute reads only the open and recently resolved
ones (100,000 incidents in the window: 1.9 s of CPU a refresh, most of it here, without it).
"""

from __future__ import annotations

import math
import sqlite3

from alertd.config.channels import ChannelsFile
from alertd.incidents.kpi import NO_TEAM, IncidentFacts
from alertd.incidents.routing import escalation_steps
from alertd.model import Incident
from alertd.state.incidents import INCIDENT_COLUMNS, incident_from_row

_INCIDENTS = """
    SELECT {columns}, escalation_step > 0 OR resolve_escalated != 0
    FROM incidents
    WHERE opened_at >= ? AND (resolved_at IS NULL OR resolved_at >= ?)
    ORDER BY id
"""

# per incident in the window: notification deliveries, and who/how of the latest ack
_TIMELINE = """
    WITH scoped AS (
        SELECT t.id, t.incident_id, t.kind, t.actor, t.detail
        FROM timeline t JOIN incidents i ON i.id = t.incident_id
        WHERE i.opened_at >= ? AND (i.resolved_at IS NULL OR i.resolved_at >= ?)
    ),
    acks AS (
        SELECT incident_id, actor, detail,
               ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY id DESC) AS n
        FROM scoped WHERE kind = 'acknowledged'
    )
    SELECT s.incident_id,
           -- a page is a send ("...: sent", also "in a digest of 37: sent"); failed attempts,
           -- failovers and holds are lines too, but reached nobody
           SUM(s.kind = 'notification' AND s.detail LIKE '%: sent%'),
           MAX(a.actor), MAX(a.detail)
    FROM scoped s LEFT JOIN acks a ON a.incident_id = s.incident_id AND a.n = 1
    GROUP BY s.incident_id
"""

_ESCALATED = INCIDENT_COLUMNS.count(",") + 1  # the column after the incident's own
_ACK_PREFIX = "acknowledged via "


def ack_how(detail: str | None) -> str | None:
    """Return the channel an acknowledgement came through ("cli", "sms", ...) from its
    timeline detail (``acknowledged via cli: comment``), or ``None``."""
    if detail is None or not detail.startswith(_ACK_PREFIX):
        return None
    rest = detail[len(_ACK_PREFIX) :].split(":", 1)[0].split()
    return rest[0] if rest else None


def team_of(incident: Incident, channels: ChannelsFile) -> str:
    """Return the first team paged at step 0 of ``incident``'s route, or ``NO_TEAM``."""
    steps = escalation_steps(incident, channels)
    first = steps[0].notify if steps else []
    return next((name for name in first if name in channels.teams), NO_TEAM)


def incident_facts(
    conn: sqlite3.Connection,
    since: float,
    channels: ChannelsFile,
    resolved_since: float = -math.inf,
) -> list[IncidentFacts]:
    """Return the facts of every incident opened at or after ``since``, oldest first; with
    ``resolved_since``, leave out those resolved before it."""
    window = (since, resolved_since)
    timeline = {
        row[0]: (int(row[1] or 0), row[2], row[3]) for row in conn.execute(_TIMELINE, window)
    }
    facts: list[IncidentFacts] = []
    for row in conn.execute(_INCIDENTS.format(columns=INCIDENT_COLUMNS), window):
        incident = incident_from_row(row)
        pages, ack_actor, ack_detail = timeline.get(incident.id, (0, None, None))
        facts.append(
            IncidentFacts(
                id=incident.id,
                priority=incident.priority,
                rule=incident.rule,
                team=team_of(incident, channels),
                opened_at=incident.opened_at,
                acknowledged_at=incident.acknowledged_at,
                resolved_at=incident.resolved_at,
                escalated=bool(row[_ESCALATED]),
                acknowledged_by=incident.acknowledged_by or ack_actor,
                acknowledged_how=ack_how(ack_detail) if incident.acknowledged_at else None,
                pages=pages,
                reopened_at=incident.reopened_at,
            )
        )
    return facts


SETTLE_MARGIN = 600.0  # seconds past the retries: a send in flight, a late provider status


def settle_time(channels: ChannelsFile) -> float:
    """How long after its resolve an incident's KPI facts may still change: its resolve
    notification and then a failover's may each retry for ``delivery.max_age``."""
    return 2 * channels.delivery.max_age + SETTLE_MARGIN


class FactsCache:
    """``incident_facts`` for a refresh that comes back every minute: the facts of incidents
    resolved more than ``settle`` seconds ago are kept, not read again.

    A resolved incident changes no more, except for its pages: a resolve notification (or
    its failover) can still be delivered while retries last, so ``settle`` covers twice the
    outbox's ``max_age`` (``settle_time``, the default). One that reopens is read fresh, and
    a fresh fact always wins. A new ``channels`` (a reload) starts over: the team comes from
    the routes.
    """

    def __init__(self, settle: float | None = None) -> None:
        """Keep facts ``settle`` seconds after a resolve; ``None``: ``settle_time`` of the
        channels of each refresh."""
        self.settle = settle
        self._stable: dict[int, IncidentFacts] = {}
        self._stable_before = -math.inf  # resolved before this: in _stable (if in the window)
        self._channels: ChannelsFile | None = None

    def facts(
        self, conn: sqlite3.Connection, since: float, channels: ChannelsFile, now: float
    ) -> list[IncidentFacts]:
        """Return what ``incident_facts(conn, since, channels)`` returns, reading less."""
        if channels is not self._channels:
            self._stable, self._stable_before, self._channels = {}, -math.inf, channels
        fresh = incident_facts(conn, since, channels, resolved_since=self._stable_before)
        stable_before = now - (settle_time(channels) if self.settle is None else self.settle)
        for f in fresh:
            if f.resolved_at is not None and f.resolved_at < stable_before:
                self._stable[f.id] = f
            else:
                self._stable.pop(f.id, None)  # reopened: no longer as kept
        self._stable_before = max(self._stable_before, stable_before)
        self._stable = {i: f for i, f in self._stable.items() if f.opened_at >= since}
        merged = {**self._stable, **{f.id: f for f in fresh}}
        return [merged[i] for i in sorted(merged)]
