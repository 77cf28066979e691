"""Incidents and their timelines in the state database.

Each public method is one transaction. The daemon and the CLI both use this class on the same
file; the partial unique index on unresolved fingerprints keeps dedup true even between them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from alertd import compact_json
from alertd.model import Incident, IncidentState, Labels, Level
from alertd.state.db import after_commit, write_transaction


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    incident_id: int
    ts: float
    kind: str
    actor: str
    detail: str


INCIDENT_COLUMNS = (
    "id, fingerprint, rule, metric, labels, level, priority, state, summary, value, "
    "opened_at, updated_at, acknowledged_at, acknowledged_by, resolved_at, suppressed_by, "
    "reopened_at, resolved_by"
)


def incident_from_row(row: Sequence[Any]) -> Incident:
    """Build an ``Incident`` from a row selected with ``INCIDENT_COLUMNS`` first."""
    return Incident(
        id=row[0],
        fingerprint=row[1],
        rule=row[2],
        metric=row[3],
        labels=tuple((k, v) for k, v in compact_json.loads(row[4])),
        level=Level(row[5]),
        priority=row[6],
        state=IncidentState(row[7]),
        summary=row[8],
        value=row[9],
        opened_at=row[10],
        updated_at=row[11],
        acknowledged_at=row[12],
        acknowledged_by=row[13],
        resolved_at=row[14],
        suppressed_by=row[15],
        reopened_at=row[16],
        resolved_by=row[17],
    )


def labels_json(labels: Labels) -> str:
    return compact_json.dumps(labels)


_CHUNK = 500  # fingerprints per SELECT ... IN (...)
_TIMELINE_INSERT = (
    "INSERT INTO timeline (incident_id, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)"
)
TimelineRow = tuple[int, float, str, str, str]


class IncidentStore:
    """Reads and writes incidents; every change also appends to the timeline."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # inside ``batch()``: the prefetched ``active`` answers, and timeline rows not yet written
        self._active: dict[str, Incident | None] | None = None
        self._timeline: list[TimelineRow] | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several changes into one atomic write."""
        with write_transaction(self.conn):
            yield

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the write under way commits (``db.after_commit``)."""
        after_commit(self.conn, action)

    @contextmanager
    def batch(self, fingerprints: Iterable[str]) -> Iterator[None]:
        """Apply a batch of changes inside the caller's transaction with fewer statements.

        ``active`` answers for ``fingerprints`` from one ``SELECT ... IN (...)`` per 500,
        and timeline entries are written with one ``executemany`` when the block ends, in the
        order they were added (nothing inside may read the timeline). A write to an incident
        drops its fingerprint from the answers, so a later ``active`` reads it again. If the
        block raises, the held timeline entries are dropped with the transaction.
        """
        if self._timeline is not None:  # an inner batch would drop the outer one's entries
            raise RuntimeError("IncidentStore.batch() does not nest")
        wanted = list(dict.fromkeys(fingerprints))
        active: dict[str, Incident | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = self.conn.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents "
                f"WHERE fingerprint IN ({', '.join('?' * len(chunk))}) AND state != 'resolved'",
                chunk,
            )
            for row in rows:
                active[row[1]] = incident_from_row(row)
        self._active, self._timeline = active, []
        try:
            yield
            if self._timeline:
                self.conn.executemany(_TIMELINE_INSERT, self._timeline)
        finally:
            self._active = self._timeline = None

    def _changed(self, fingerprint: str) -> None:
        """An incident with ``fingerprint`` was written: ``active`` must read it again."""
        if self._active is not None:
            self._active.pop(fingerprint, None)

    # -- reads ----------------------------------------------------------------------------
    def get(self, incident_id: int) -> Incident | None:
        row = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return incident_from_row(row) if row else None

    def active(self, fingerprint: str) -> Incident | None:
        """Return the unresolved incident for ``fingerprint``, if there is one."""
        if self._active is not None and fingerprint in self._active:
            return self._active[fingerprint]
        row = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents "
            "WHERE fingerprint = ? AND state != 'resolved'",
            (fingerprint,),
        ).fetchone()
        return incident_from_row(row) if row else None

    def find(self, states: Sequence[IncidentState] = (), limit: int = 1000) -> list[Incident]:
        """The newest incidents in ``states`` (any state if none), at most ``limit`` (-1: all,
        as SQLite's LIMIT reads it)."""
        query = f"SELECT {INCIDENT_COLUMNS} FROM incidents"
        params: list[Any] = []
        if states:
            query += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params.extend(s.value for s in states)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [incident_from_row(row) for row in self.conn.execute(query, params)]

    def count_open_by_priority(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT priority, COUNT(*) FROM incidents INDEXED BY incidents_open_priority "
            "WHERE state != 'resolved' GROUP BY priority"
        )
        return {str(priority): int(count) for priority, count in rows.fetchall()}

    def timeline(self, incident_id: int) -> list[TimelineEntry]:
        rows = self.conn.execute(
            "SELECT incident_id, ts, kind, actor, detail FROM timeline "
            "WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
        return [TimelineEntry(*row) for row in rows]

    # -- writes (call inside ``transaction()`` when grouping) ---------------------------------
    def add_timeline(
        self, incident_id: int, ts: float, kind: str, detail: str, actor: str = "alertd"
    ) -> None:
        if self._timeline is not None:
            self._timeline.append((incident_id, ts, kind, actor, detail))
        else:
            self.conn.execute(_TIMELINE_INSERT, (incident_id, ts, kind, actor, detail))

    def open(
        self,
        draft: Incident,
        next_escalation_at: float | None = None,
        next_repeat_at: float | None = None,
        paged: Sequence[str] = (),
    ) -> Incident:
        """Insert a new incident (``draft.id`` is ignored) and return it with its id.

        The escalation deadlines of a new incident (step 0 paged) and who that pages
        (``paged``) go into the same row, so arming it costs no UPDATE of its own."""
        self._changed(draft.fingerprint)
        cur = self.conn.execute(
            "INSERT INTO incidents (fingerprint, rule, metric, labels, level, priority, state, "
            "summary, value, opened_at, updated_at, suppressed_by, next_escalation_at, "
            "next_repeat_at, paged_targets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                draft.fingerprint,
                draft.rule,
                draft.metric,
                labels_json(draft.labels),
                int(draft.level),
                draft.priority,
                IncidentState.OPEN.value,
                draft.summary,
                draft.value,
                draft.opened_at,
                draft.updated_at,
                draft.suppressed_by,
                next_escalation_at,
                next_repeat_at,
                ",".join(paged),
            ),
        )
        assert cur.lastrowid is not None
        # not dataclasses.replace: its field introspection was 7% of absorbing a storm
        return Incident(
            id=cur.lastrowid,
            fingerprint=draft.fingerprint,
            rule=draft.rule,
            metric=draft.metric,
            labels=draft.labels,
            level=draft.level,
            priority=draft.priority,
            state=IncidentState.OPEN,
            summary=draft.summary,
            value=draft.value,
            opened_at=draft.opened_at,
            updated_at=draft.updated_at,
            acknowledged_at=draft.acknowledged_at,
            acknowledged_by=draft.acknowledged_by,
            resolved_at=draft.resolved_at,
            suppressed_by=draft.suppressed_by,
        )

    def update_level(
        self,
        incident: Incident,
        level: Level,
        priority: str,
        summary: str,
        value: float | None,
        now: float,
    ) -> Incident:
        self._changed(incident.fingerprint)
        self.conn.execute(
            "UPDATE incidents SET level = ?, priority = ?, summary = ?, value = ?, updated_at = ? "
            "WHERE id = ?",
            (int(level), priority, summary, value, now, incident.id),
        )
        return replace(
            incident, level=level, priority=priority, summary=summary, value=value, updated_at=now
        )

    def resolve(
        self, incident: Incident, now: float, value: float | None = None, by: str | None = None
    ) -> Incident:
        """Resolve ``incident``: its source recovered, or ``by`` someone by hand."""
        self._changed(incident.fingerprint)
        self.conn.execute(
            "UPDATE incidents SET state = 'resolved', resolved_at = ?, updated_at = ?, "
            "value = COALESCE(?, value), resolved_by = ? WHERE id = ?",
            (now, now, value, by, incident.id),
        )
        return replace(
            incident,
            state=IncidentState.RESOLVED,
            resolved_at=now,
            updated_at=now,
            value=incident.value if value is None else value,
            resolved_by=by,
        )

    def recently_resolved(self, fingerprint: str, after: float) -> Incident | None:
        """Return the incident for ``fingerprint`` resolved at or after ``after``, if any."""
        row = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents "
            "WHERE fingerprint = ? AND state = 'resolved' "
            "AND resolved_at >= ? ORDER BY resolved_at DESC LIMIT 1",
            (fingerprint, after),
        ).fetchone()
        return incident_from_row(row) if row else None

    def reopen(self, incident: Incident, now: float) -> Incident:
        self._changed(incident.fingerprint)
        self.conn.execute(
            "UPDATE incidents SET state = 'open', resolved_at = NULL, acknowledged_at = NULL, "
            "acknowledged_by = NULL, updated_at = ?, reopened_at = ?, paged_step = 0, "
            "resolved_by = NULL, paged_targets = '' WHERE id = ?",
            (now, now, incident.id),
        )
        return replace(
            incident,
            state=IncidentState.OPEN,
            resolved_at=None,
            acknowledged_at=None,
            acknowledged_by=None,
            updated_at=now,
            reopened_at=now,
            resolved_by=None,
        )

    def expired_acks(self, acked_before: float) -> list[Incident]:
        rows = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state = 'acknowledged' "
            "AND acknowledged_at <= ?",
            (acked_before,),
        )
        return [incident_from_row(row) for row in rows]

    def unacknowledge(self, incident: Incident, now: float) -> Incident:
        self._changed(incident.fingerprint)
        self.conn.execute(
            "UPDATE incidents SET state = 'open', updated_at = ? WHERE id = ?", (now, incident.id)
        )
        return replace(incident, state=IncidentState.OPEN, updated_at=now)

    def set_suppressed(self, incident: Incident, by: str | None) -> Incident:
        self._changed(incident.fingerprint)
        self.conn.execute("UPDATE incidents SET suppressed_by = ? WHERE id = ?", (by, incident.id))
        return replace(incident, suppressed_by=by)

    def down_targets(self, target_up_metric: str) -> set[str]:
        """Return the instances with an unresolved "target down" incident."""
        rows = self.conn.execute(
            "SELECT labels FROM incidents WHERE state != 'resolved' AND metric = ?",
            (target_up_metric,),
        )
        return {dict(compact_json.loads(labels)).get("instance", "") for (labels,) in rows}

    def suppressed_by_window(self) -> list[Incident]:
        """Return unresolved incidents held back by a maintenance window or a silence."""
        rows = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' "
            "AND suppressed_by IS NOT NULL "
            "AND (suppressed_by LIKE 'maintenance %' OR suppressed_by LIKE 'silence %')"
        )
        return [incident_from_row(row) for row in rows]

    def suppressed_children(self, parent: str) -> list[Incident]:
        """Return unresolved incidents suppressed because ``parent`` was down."""
        rows = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' "
            "AND suppressed_by IS NOT NULL AND suppressed_by = ?",
            (f"parent {parent}",),
        )
        return [incident_from_row(row) for row in rows]

    def acknowledge(self, incident: Incident, by: str, now: float) -> Incident:
        self._changed(incident.fingerprint)
        self.conn.execute(
            "UPDATE incidents SET state = 'acknowledged', acknowledged_at = ?, "
            "acknowledged_by = ?, updated_at = ? WHERE id = ?",
            (now, by, now, incident.id),
        )
        return replace(
            incident,
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by=by,
            updated_at=now,
        )

    # -- grouping: member alerts of a grouped incident, and its delayed first page ----------
    def group_of(self, member_fingerprint: str) -> Incident | None:
        """Return the unresolved incident ``member_fingerprint`` is firing in, if any."""
        row = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' AND id IN "
            "(SELECT incident_id FROM incident_alerts INDEXED BY incident_alerts_fingerprint "
            "WHERE fingerprint = ? AND state = 'firing') ORDER BY id DESC LIMIT 1",
            (member_fingerprint,),
        ).fetchone()
        return incident_from_row(row) if row else None

    def member(self, incident_id: int, member_fingerprint: str) -> GroupMember | None:
        row = self.conn.execute(
            "SELECT fingerprint, rule, labels, level, state, since, resolved_at "
            "FROM incident_alerts WHERE incident_id = ? AND fingerprint = ?",
            (incident_id, member_fingerprint),
        ).fetchone()
        return _member(row) if row else None

    def set_member(
        self,
        incident_id: int,
        member_fingerprint: str,
        rule: str,
        labels: Labels,
        level: Level,
        since: float,
    ) -> None:
        """Add a firing member alert to a grouped incident, or refresh it (level, firing)."""
        self.conn.execute(
            "INSERT INTO incident_alerts (incident_id, fingerprint, rule, labels, level, state, "
            "since) VALUES (?, ?, ?, ?, ?, 'firing', ?) "
            "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET level = excluded.level, "
            "since = CASE WHEN state = 'firing' THEN since ELSE excluded.since END, "
            "state = 'firing', resolved_at = NULL",
            (incident_id, member_fingerprint, rule, labels_json(labels), int(level), since),
        )

    def member_count(self, incident_id: int) -> int:
        """How many alerts ever joined a grouped incident (firing or resolved)."""
        (count,) = self.conn.execute(
            "SELECT COUNT(*) FROM incident_alerts WHERE incident_id = ?", (incident_id,)
        ).fetchone()
        return int(count)

    def set_summary(self, incident: Incident, summary: str) -> Incident:
        self.conn.execute("UPDATE incidents SET summary = ? WHERE id = ?", (summary, incident.id))
        return replace(incident, summary=summary)

    def resolve_member(
        self, incident_id: int, member_fingerprint: str, now: float | None = None
    ) -> None:
        self.conn.execute(
            "UPDATE incident_alerts SET state = 'resolved', resolved_at = ? WHERE incident_id = ? "
            "AND fingerprint = ?",
            (now, incident_id, member_fingerprint),
        )

    def firing_members(self, incident_id: int) -> tuple[int, Level | None]:
        """Return how many member alerts still fire, and the worst level among them."""
        count, worst = self.conn.execute(
            "SELECT COUNT(*), MAX(level) FROM incident_alerts WHERE incident_id = ? "
            "AND state = 'firing'",
            (incident_id,),
        ).fetchone()
        return int(count), None if worst is None else Level(worst)

    def worst_firing(self, incident_id: int) -> Level | None:
        """Return the worst level among the member alerts still firing (None: none fire)."""
        row = self.conn.execute(
            "SELECT MAX(level) FROM incident_alerts INDEXED BY incident_alerts_firing "
            "WHERE incident_id = ? AND state = 'firing'",
            (incident_id,),
        ).fetchone()
        return None if row is None or row[0] is None else Level(row[0])

    def members(self, incident_ids: Sequence[int]) -> dict[int, list[GroupMember]]:
        """Return the member alerts of each grouped incident (firing first, then by time)."""
        out: dict[int, list[GroupMember]] = {}
        ids = list(dict.fromkeys(incident_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.conn.execute(
                "SELECT incident_id, fingerprint, rule, labels, level, state, since, "
                "resolved_at "
                f"FROM incident_alerts WHERE incident_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY incident_id, state = 'resolved', since, rowid",
                chunk,
            )
            for row in rows:
                out.setdefault(row[0], []).append(_member(row[1:]))
        return out

    def first_page_at(self, incident_id: int) -> float | None:
        row = self.conn.execute(
            "SELECT first_page_at FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return None if row is None else row[0]

    def set_first_page(self, incident_id: int, at: float | None) -> None:
        """Hold a new group's first page until ``at`` (None: paged, or never to be)."""
        self.conn.execute("UPDATE incidents SET first_page_at = ? WHERE id = ?", (at, incident_id))

    def schedule_group_update(self, incident_id: int, at: float) -> None:
        """A group changed since its last page: its update is due at ``at``, unless one is
        due already (the first change since the page sets when)."""
        self.conn.execute(
            "UPDATE incidents SET group_update_at = ? WHERE id = ? AND group_update_at IS NULL",
            (at, incident_id),
        )

    def clear_group_update(self, incident_id: int) -> None:
        """The group was paged (or resolved) with all its alerts: no update is waiting."""
        self.conn.execute(
            "UPDATE incidents SET group_update_at = NULL "
            "WHERE id = ? AND group_update_at IS NOT NULL",
            (incident_id,),
        )

    def group_updates_due(self, now: float) -> list[Incident]:
        """Return the grouped incidents whose update is due at ``now`` (any state: a
        resolved one's is cleared by the caller)."""
        rows = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents INDEXED BY incidents_group_update "
            "WHERE group_update_at IS NOT NULL AND group_update_at <= ? ORDER BY id",
            (now,),
        )
        return [incident_from_row(row) for row in rows]

    def next_deadline(self) -> float | None:
        """The earliest of: a held first page (``group_wait``), a group's update
        (``group_interval``), an open incident's next escalation step, a pushed alert's
        ``endsAt``; None if there is none. Each through its index."""
        row = self.conn.execute(
            "SELECT MIN(t) FROM ("
            "SELECT MIN(first_page_at) AS t FROM incidents INDEXED BY incidents_first_page "
            "WHERE first_page_at IS NOT NULL AND state != 'resolved' "
            "UNION ALL SELECT MIN(group_update_at) FROM incidents "
            "INDEXED BY incidents_group_update WHERE group_update_at IS NOT NULL "
            "UNION ALL SELECT MIN(next_escalation_at) FROM incidents "
            "WHERE state = 'open' AND next_escalation_at IS NOT NULL "
            "UNION ALL SELECT MIN(ends_at) FROM external_alerts WHERE state = 'firing')"
        ).fetchone()
        return None if row is None else row[0]

    def first_pages_due(self, now: float) -> list[Incident]:
        """Return unresolved incidents whose held first page is due at ``now``."""
        rows = self.conn.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents INDEXED BY incidents_first_page "
            "WHERE first_page_at IS NOT NULL AND first_page_at <= ? AND state != 'resolved' "
            "ORDER BY id",
            (now,),
        )
        return [incident_from_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One alert that joined a grouped incident."""

    fingerprint: str
    rule: str
    labels: Labels
    level: Level
    state: str  # firing, resolved
    since: float
    resolved_at: float | None = None  # when it resolved (None: firing, or not recorded)


def _member(row: Sequence[Any]) -> GroupMember:
    labels = tuple((k, v) for k, v in compact_json.loads(row[2]))
    return GroupMember(row[0], row[1], labels, Level(row[3]), row[4], row[5], row[6])


@dataclass(frozen=True, slots=True)
class EscalationState:
    """Where one unresolved incident stands in its escalation policy."""

    incident_id: int
    step: int  # index of the last step paged
    next_escalation_at: float | None
    next_repeat_at: float | None
    resolve_escalated: bool
    paged_step: int = 0  # the furthest step paged since it (re)opened (``step`` goes back
    # to 0 when an acknowledgement lapses)
    paged: tuple[str, ...] = ()  # who was paged since it (re)opened, whatever the route
    # now; () for incidents from before that was recorded (``paged_step`` tells then)


class EscalationStore:
    """The escalation columns of the incidents table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, incident_id: int) -> EscalationState | None:
        row = self.conn.execute(
            "SELECT id, escalation_step, next_escalation_at, next_repeat_at, resolve_escalated, "
            "paged_step, paged_targets FROM incidents WHERE id = ?",
            (incident_id,),
        ).fetchone()
        if row is None:
            return None
        paged = tuple(row[6].split(",")) if row[6] else ()
        return EscalationState(row[0], row[1], row[2], row[3], bool(row[4]), row[5], paged)

    def add_paged(self, incident_id: int, targets: Sequence[str]) -> None:
        """Record that ``targets`` (teams or channels) were paged about the incident."""
        state = self.get(incident_id)
        if state is None:
            return
        paged = state.paged + tuple(t for t in dict.fromkeys(targets) if t not in state.paged)
        if paged != state.paged:
            self.conn.execute(
                "UPDATE incidents SET paged_targets = ? WHERE id = ?",
                (",".join(paged), incident_id),
            )

    def arm(
        self,
        incident_id: int,
        step: int,
        next_escalation_at: float | None,
        next_repeat_at: float | None,
        resolve_escalated: bool = False,
    ) -> None:
        self.conn.execute(
            "UPDATE incidents SET escalation_step = ?, next_escalation_at = ?, "
            "next_repeat_at = ?, resolve_escalated = ?, paged_step = MAX(paged_step, ?) "
            "WHERE id = ?",
            (step, next_escalation_at, next_repeat_at, int(resolve_escalated), step, incident_id),
        )

    def due(self, now: float, resolve_deadline_before: Mapping[str, float]) -> list[int]:
        """Return ids of incidents with something due: an unacknowledged one whose next step
        or re-page time has come, or an acknowledged one opened before its priority's
        resolve deadline (``resolve_deadline_before``: priority -> opened-before time)."""
        ids = [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM incidents WHERE state = 'open' AND "
                "(next_escalation_at <= ? OR next_repeat_at <= ?)",
                (now, now),
            )
        ]
        for priority, before in resolve_deadline_before.items():
            ids.extend(
                row[0]
                for row in self.conn.execute(
                    # a reopened incident's resolve target counts from its reopening
                    "SELECT id FROM incidents WHERE state = 'acknowledged' AND "
                    "resolve_escalated = 0 AND priority = ? "
                    "AND COALESCE(reopened_at, opened_at) <= ?",
                    (priority, before),
                )
            )
        return sorted(set(ids))
