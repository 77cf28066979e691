"""Track pushed alerts in ``external_alerts`` and turn their changes into ``AlertEvent``s.

The table is the memory Alertmanager lacks (its alerts live only in RAM): a firing alert whose
``endsAt`` passes without a refresh resolves, also across a restart. Functions here run in the
caller's transaction (they never BEGIN or COMMIT), so the incident manager can apply the events
in the same one. One POST costs one ``SELECT ... IN (...)`` per 500 distinct fingerprints and
one ``executemany`` upsert, whatever its size.

State machine per fingerprint (``model.fingerprint(alertname, all labels)``):

====================  =====================  =====================================================
stored                posted                 result
====================  =====================  =====================================================
none / resolved       endsAt > now           FIRING; row firing
firing                endsAt > now           same level: nothing; other level: LEVEL_CHANGED.
                                             ``starts_at`` keeps the earliest, ``ends_at`` the
                                             latest, annotations the newest
firing                endsAt <= now          RESOLVED (unless endsAt is before the stored
                                             startsAt: a late resolve of an older episode)
none / resolved       endsAt <= now          nothing, and nothing written
====================  =====================  =====================================================

``severity`` is a label, so it is part of the identity, as in Alertmanager: a Prometheus
warning rule and critical rule on the same series are two alerts. LEVEL_CHANGED happens only
when the mapping from labels to level changes (a new default level, for instance).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alertd import compact_json
from alertd.ingest.alertmanager import PostedAlert
from alertd.ingest.severity import summary_for
from alertd.model import (
    AlertEntry,
    AlertEvent,
    EventKind,
    Labels,
    Level,
    Notification,
)

EXTERNAL_METRIC = "alertmanager"  # AlertEvent.metric of every pushed alert
FIRING = "firing"
RESOLVED = "resolved"
EXPIRED_NOTE = " (endsAt passed without a refresh)"
_CHUNK = 500  # fingerprints per SELECT ... IN (...); SQLite allows 32766 variables since 3.32

_COLUMNS = (
    "fingerprint, rule, labels, annotations, level, starts_at, ends_at, generator_url, "
    "updated_at, state"
)
_UPSERT = (
    f"INSERT INTO external_alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(fingerprint) DO UPDATE SET rule = excluded.rule, labels = excluded.labels, "
    "annotations = excluded.annotations, level = excluded.level, "
    "starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
    "generator_url = excluded.generator_url, updated_at = excluded.updated_at, "
    "state = excluded.state"
)


@dataclass(frozen=True, slots=True)
class ExternalAlert:
    """One pushed alert as stored (for ``GET /api/v2/alerts`` and the CLI)."""

    fingerprint: str
    rule: str
    labels: Labels
    annotations: Labels
    level: Level
    starts_at: float
    ends_at: float
    generator_url: str
    updated_at: float
    state: str  # "firing" or "resolved"

    @property
    def summary(self) -> str:
        return summary_for(self.rule, dict(self.labels), dict(self.annotations))


@dataclass(frozen=True, slots=True)
class _Known:
    state: str
    level: Level
    starts_at: float
    ends_at: float


def receive(
    conn: sqlite3.Connection, alerts: Sequence[PostedAlert], now: float
) -> list[AlertEvent]:
    """Record a batch of posted alerts; return the events their changes make, in batch order.

    Several alerts with one fingerprint in a batch are applied in order, each seeing the
    previous one's result.
    """
    if not alerts:
        return []
    known = _load(conn, {a.fingerprint for a in alerts})
    rows: dict[str, tuple[object, ...]] = {}
    events: list[AlertEvent] = []
    for alert in alerts:
        old = known.get(alert.fingerprint)
        was_firing = old is not None and old.state == FIRING
        if not alert.firing(now):
            if old is None or not was_firing or alert.ends_at < old.starts_at:
                continue
            events.append(_event(EventKind.RESOLVED, alert, None, old.level, now))
            new = _Known(RESOLVED, alert.level, old.starts_at, alert.ends_at)
        elif old is None or not was_firing:
            events.append(_event(EventKind.FIRING, alert, alert.level, None, now))
            new = _Known(FIRING, alert.level, alert.starts_at, alert.ends_at)
        else:
            if old.level != alert.level:
                events.append(_event(EventKind.LEVEL_CHANGED, alert, alert.level, old.level, now))
            # never shorten: Alertmanager's Merge keeps a later explicit endsAt too
            starts_at = min(old.starts_at, alert.starts_at)
            new = _Known(FIRING, alert.level, starts_at, max(old.ends_at, alert.ends_at))
        known[alert.fingerprint] = new
        rows[alert.fingerprint] = _row(alert, new, now)
    if rows:
        conn.executemany(_UPSERT, rows.values())
    return events


def expire(conn: sqlite3.Connection, now: float) -> list[AlertEvent]:
    """Resolve every firing alert whose ``ends_at`` is at or before ``now``; return the events.

    Call it periodically: a sender that stopped refreshing (Prometheus gone, amtool's alert
    timed out) gets its alerts resolved, as Alertmanager does in memory.
    """
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM external_alerts WHERE state = 'firing' AND ends_at <= ?",
        (now,),
    ).fetchall()
    if not rows:
        return []
    expired = [_stored(row) for row in rows]
    conn.executemany(
        "UPDATE external_alerts SET state = 'resolved', updated_at = ? WHERE fingerprint = ?",
        [(now, a.fingerprint) for a in expired],
    )
    return [
        AlertEvent(
            kind=EventKind.RESOLVED,
            rule=a.rule,
            metric=EXTERNAL_METRIC,
            labels=a.labels,
            level=None,
            previous_level=a.level,
            value=None,
            summary=a.summary + EXPIRED_NOTE,
            ts=now,
            fingerprint=a.fingerprint,
        )
        for a in expired
    ]


def active(conn: sqlite3.Connection, now: float | None = None) -> list[ExternalAlert]:
    """Return the firing alerts sorted by fingerprint; with ``now``, only those not yet ended."""
    if now is None:
        cursor = conn.execute(
            f"SELECT {_COLUMNS} FROM external_alerts WHERE state = 'firing' ORDER BY fingerprint"
        )
    else:
        cursor = conn.execute(
            f"SELECT {_COLUMNS} FROM external_alerts WHERE state = 'firing' AND ends_at > ? "
            "ORDER BY fingerprint",
            (now,),
        )
    return [_stored(row) for row in cursor]


def with_sources(
    notes: Sequence[Notification], alerts: Mapping[str, PostedAlert | ExternalAlert]
) -> list[Notification]:
    """Give each notification about one pushed alert (by fingerprint, in ``alerts``) that
    alert as Alertmanager's webhook shows it: its own labels, annotations, generatorURL,
    startsAt, and endsAt once resolved. Grouped incidents and digests keep their entries."""
    out = []
    for n in notes:
        alert = alerts.get(n.incident.fingerprint)
        if alert is None or n.entries:
            out.append(n)
            continue
        inc = n.incident
        resolved = n.about_resolved
        entry = AlertEntry(
            status=RESOLVED if resolved else FIRING,
            labels=alert.labels,
            starts_at=alert.starts_at,
            ends_at=min(alert.ends_at, inc.resolved_at or alert.ends_at) if resolved else None,
            fingerprint=inc.fingerprint,
            annotations=alert.annotations,
            generator_url=alert.generator_url,
        )
        out.append(n.with_entries((entry,)))
    return out


def _lists_members(n: Notification) -> bool:
    """A grouped incident's notification (its member alerts listed), not a digest; a single
    pushed alert's own entry came from ``with_sources`` already."""
    return bool(n.alerts) and not n.digest


def _member_fingerprints(notes: Iterable[Notification]) -> set[str]:
    return {e.fingerprint for n in notes if _lists_members(n) for e in n.entries}


def with_member_sources(
    notes: Sequence[Notification], alerts: Mapping[str, ExternalAlert]
) -> list[Notification]:
    """Give the member entries of grouped incidents that are pushed alerts (by fingerprint,
    in ``alerts``) what Prometheus sent for each: annotations, generatorURL, startsAt."""
    out = []
    for n in notes:
        if not _lists_members(n) or not any(e.fingerprint in alerts for e in n.entries):
            out.append(n)
            continue
        entries = []
        for e in n.entries:
            if (alert := alerts.get(e.fingerprint)) is not None:
                e = replace(
                    e,
                    starts_at=alert.starts_at,
                    annotations=alert.annotations,
                    generator_url=alert.generator_url,
                )
            entries.append(e)
        out.append(n.with_entries(tuple(entries)))
    return out


def member_sources(conn: sqlite3.Connection, notes: Sequence[Notification]) -> list[Notification]:
    """``with_member_sources`` from the stored alerts (one SELECT per 500 members; none for a
    storm of single alerts)."""
    wanted = _member_fingerprints(notes)
    if not wanted:
        return list(notes)
    return with_member_sources(notes, _stored_by_fingerprint(conn, wanted))


def stored_sources(conn: sqlite3.Connection, notes: Sequence[Notification]) -> list[Notification]:
    """``with_sources`` and ``with_member_sources`` from the stored alerts: one lookup (a
    SELECT per 500) for the single pushed incidents and the grouped ones' members together."""
    singles = {
        n.incident.fingerprint
        for n in notes
        if n.incident.metric == EXTERNAL_METRIC and not n.entries
    }
    wanted = singles | _member_fingerprints(notes)
    if not wanted:
        return list(notes)
    stored = _stored_by_fingerprint(conn, wanted)
    return with_member_sources(with_sources(notes, stored), stored)


def _by_fingerprint(
    conn: sqlite3.Connection, columns: str, fingerprints: Iterable[str]
) -> Iterator[Any]:
    """The rows (``columns``, fingerprint first) of ``external_alerts`` for ``fingerprints``:
    a SELECT per ``_CHUNK`` (SQLite's bound-parameter limit)."""
    wanted = list(fingerprints)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        yield from conn.execute(
            f"SELECT {columns} FROM external_alerts WHERE fingerprint IN ({marks})", chunk
        )


def _stored_by_fingerprint(
    conn: sqlite3.Connection, fingerprints: Iterable[str]
) -> dict[str, ExternalAlert]:
    alerts = (_stored(row) for row in _by_fingerprint(conn, _COLUMNS, fingerprints))
    return {alert.fingerprint: alert for alert in alerts}


def _load(conn: sqlite3.Connection, fingerprints: Iterable[str]) -> dict[str, _Known]:
    columns = "fingerprint, state, level, starts_at, ends_at"
    return {
        fp: _Known(state, Level(level), starts_at, ends_at)
        for fp, state, level, starts_at, ends_at in _by_fingerprint(conn, columns, fingerprints)
    }


def _json(pairs: Labels) -> str:
    return compact_json.dumps(dict(pairs))


def _row(alert: PostedAlert, new: _Known, now: float) -> tuple[object, ...]:
    return (
        alert.fingerprint,
        alert.rule,
        _json(alert.labels),
        _json(alert.annotations),
        int(new.level),
        new.starts_at,
        new.ends_at,
        alert.generator_url,
        now,
        new.state,
    )


def _stored(row: Any) -> ExternalAlert:
    fp, rule, labels, annotations, level, starts_at, ends_at, url, updated_at, state = row
    return ExternalAlert(
        fingerprint=str(fp),
        rule=str(rule),
        labels=tuple(sorted(compact_json.loads(labels).items())),
        annotations=tuple(sorted(compact_json.loads(annotations).items())),
        level=Level(level),
        starts_at=float(starts_at),
        ends_at=float(ends_at),
        generator_url=str(url),
        updated_at=float(updated_at),
        state=str(state),
    )


def _event(
    kind: EventKind, alert: PostedAlert, level: Level | None, previous: Level | None, now: float
) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        rule=alert.rule,
        metric=EXTERNAL_METRIC,
        labels=alert.labels,
        level=level,
        previous_level=previous,
        value=None,
        summary=alert.summary,
        ts=now,
        fingerprint=alert.fingerprint,
    )
