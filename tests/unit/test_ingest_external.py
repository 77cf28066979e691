"""The pushed-alert tracker over ``external_alerts``, on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertd.ingest.alertmanager import IngestLimits, PostedAlert, parse_postable_alerts
from alertd.ingest.external import (
    EXPIRED_NOTE,
    EXTERNAL_METRIC,
    ExternalAlert,
    active,
    expire,
    member_sources,
    receive,
    with_sources,
)
from alertd.model import AlertEvent, EventKind, Level, fingerprint
from alertd.state.db import connect

T0 = 1_787_220_000.0  # 2026-08-20T10:00:00Z


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def posted(
    name: str = "HostDown",
    *,
    now: float = T0,
    ends: float | None = None,
    starts: float | None = None,
    default_level: Level = Level.MAJOR,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> PostedAlert:
    """One alert as a POST would deliver it at ``now``; ``ends=None`` omits endsAt."""
    item: dict[str, Any] = {"labels": {"alertname": name, "instance": "sw1", **labels}}
    if ends is not None:
        item["endsAt"] = iso(ends)
    if starts is not None:
        item["startsAt"] = iso(starts)
    if annotations is not None:
        item["annotations"] = annotations
    alerts, errors = parse_postable_alerts(
        json.dumps([item]).encode(), now, IngestLimits(), default_level=default_level
    )
    assert errors == []
    return alerts[0]


def push(conn: sqlite3.Connection, now: float, *alerts: PostedAlert) -> list[AlertEvent]:
    """Receive in a transaction, as the lead's caller does."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        return receive(conn, alerts, now)
    finally:
        conn.execute("COMMIT")


def run_expire(conn: sqlite3.Connection, now: float) -> list[AlertEvent]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        return expire(conn, now)
    finally:
        conn.execute("COMMIT")


def row(conn: sqlite3.Connection, fp: str) -> dict[str, Any] | None:
    cursor = conn.execute("SELECT * FROM external_alerts WHERE fingerprint = ?", (fp,))
    found = cursor.fetchone()
    if found is None:
        return None
    return dict(zip([d[0] for d in cursor.description], found, strict=True))


def kinds(events: list[AlertEvent]) -> list[EventKind]:
    return [e.kind for e in events]


def test_a_new_firing_alert_fires(conn: sqlite3.Connection) -> None:
    alert = posted(severity="critical", ends=T0 + 240, annotations={"summary": "sw1 down"})
    events = push(conn, T0, alert)
    assert events == [
        AlertEvent(
            kind=EventKind.FIRING,
            rule="HostDown",
            metric=EXTERNAL_METRIC,
            labels=alert.labels,
            level=Level.CRITICAL,
            previous_level=None,
            value=None,
            summary="sw1 down",
            ts=T0,
            fingerprint=fingerprint("HostDown", alert.labels),
        )
    ]
    stored = row(conn, alert.fingerprint)
    assert stored == {
        "fingerprint": alert.fingerprint,
        "rule": "HostDown",
        "labels": json.dumps(
            {"alertname": "HostDown", "instance": "sw1", "severity": "critical"},
            separators=(",", ":"),
        ),
        "annotations": '{"summary":"sw1 down"}',
        "level": 3,
        "starts_at": T0,
        "ends_at": T0 + 240,
        "generator_url": "",
        "updated_at": T0,
        "state": "firing",
    }


def test_a_resend_changes_nothing_but_refreshes_the_row(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 240, annotations={"summary": "old"}))
    again = posted(now=T0 + 60, ends=T0 + 300, starts=T0 + 30, annotations={"summary": "new"})
    assert push(conn, T0 + 60, again) == []
    stored = row(conn, again.fingerprint)
    assert stored is not None
    assert (stored["starts_at"], stored["ends_at"], stored["updated_at"]) == (T0, T0 + 300, T0 + 60)
    assert stored["annotations"] == '{"summary":"new"}'
    assert stored["state"] == "firing"


def test_a_resend_never_shortens_the_end(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 600))
    push(conn, T0 + 10, posted(now=T0 + 10, ends=T0 + 240))
    assert [a.ends_at for a in active(conn)] == [T0 + 600]


def test_a_resend_without_ends_at_pushes_the_timeout_further(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted())
    push(conn, T0 + 200, posted(now=T0 + 200))
    assert [a.ends_at for a in active(conn)] == [T0 + 500]
    assert run_expire(conn, T0 + 400) == []


def test_a_level_change_on_the_same_labels(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 240))
    changed = posted(ends=T0 + 300, default_level=Level.CRITICAL)
    events = push(conn, T0 + 60, changed)
    assert kinds(events) == [EventKind.LEVEL_CHANGED]
    assert (events[0].level, events[0].previous_level) == (Level.CRITICAL, Level.MAJOR)
    stored = row(conn, changed.fingerprint)
    assert stored is not None
    assert stored["level"] == 3


def test_another_severity_is_another_alert_as_in_alertmanager(conn: sqlite3.Connection) -> None:
    warning = posted(severity="warning", ends=T0 + 240)
    critical = posted(severity="critical", ends=T0 + 240)
    events = push(conn, T0, warning, critical)
    assert kinds(events) == [EventKind.FIRING, EventKind.FIRING]
    assert warning.fingerprint != critical.fingerprint
    assert [e.level for e in events] == [Level.MINOR, Level.CRITICAL]


def test_ends_at_passed_resolves_a_firing_alert(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(severity="critical", ends=T0 + 240))
    resolved = posted(now=T0 + 60, ends=T0 + 50, severity="critical")
    events = push(conn, T0 + 60, resolved)
    assert kinds(events) == [EventKind.RESOLVED]
    assert (events[0].level, events[0].previous_level) == (None, Level.CRITICAL)
    assert events[0].ts == T0 + 60
    stored = row(conn, resolved.fingerprint)
    assert stored is not None
    assert (stored["state"], stored["ends_at"], stored["starts_at"]) == ("resolved", T0 + 50, T0)
    assert active(conn) == []


def test_ends_at_equal_to_now_is_resolved(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 240))
    assert kinds(push(conn, T0 + 60, posted(now=T0 + 60, ends=T0 + 60))) == [EventKind.RESOLVED]


def test_a_resolved_alert_never_seen_is_not_stored(conn: sqlite3.Connection) -> None:
    alert = posted(now=T0, ends=T0 - 10)
    assert push(conn, T0, alert) == []
    assert row(conn, alert.fingerprint) is None


def test_resolving_again_says_nothing(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 240))
    push(conn, T0 + 60, posted(now=T0 + 60, ends=T0 + 50))
    # Prometheus keeps re-sending resolved alerts for 15 minutes
    assert push(conn, T0 + 120, posted(now=T0 + 120, ends=T0 + 50)) == []


def test_a_resolved_alert_firing_again_fires_again(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(ends=T0 + 240))
    push(conn, T0 + 60, posted(now=T0 + 60, ends=T0 + 50))
    again = posted(now=T0 + 600, starts=T0 + 590, ends=T0 + 840)
    events = push(conn, T0 + 600, again)
    assert kinds(events) == [EventKind.FIRING]
    assert events[0].previous_level is None
    stored = row(conn, again.fingerprint)
    assert stored is not None
    assert (stored["state"], stored["starts_at"]) == ("firing", T0 + 590)


def test_a_late_resolve_of_an_older_episode_is_ignored(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted(starts=T0, ends=T0 + 240))
    # an HA twin's stale resolve: it ended before the stored episode started
    assert push(conn, T0 + 10, posted(now=T0 + 10, starts=T0 - 300, ends=T0 - 100)) == []
    assert len(active(conn)) == 1


def test_one_fingerprint_twice_in_a_batch_applies_in_order(conn: sqlite3.Connection) -> None:
    events = push(conn, T0, posted(ends=T0 + 240), posted(ends=T0 - 1, starts=T0 - 60))
    assert kinds(events) == [EventKind.FIRING]  # the resolve ended before this episode began
    events = push(conn, T0 + 5, posted(now=T0 + 5, ends=T0 + 240), posted(now=T0 + 5, ends=T0 + 5))
    assert kinds(events) == [EventKind.RESOLVED]
    events = push(conn, T0 + 9, posted(now=T0 + 9, ends=T0 + 240), posted(now=T0 + 9, ends=T0 + 9))
    assert kinds(events) == [EventKind.FIRING, EventKind.RESOLVED]


def test_empty_batch_does_nothing(conn: sqlite3.Connection) -> None:
    assert push(conn, T0) == []


# -- expiry ------------------------------------------------------------------------------------


def test_expire_resolves_alerts_whose_end_passed_without_refresh(conn: sqlite3.Connection) -> None:
    short = posted("Short", ends=T0 + 100, annotations={"summary": "short one"})
    long = posted("Long", ends=T0 + 1000)
    push(conn, T0, short, long)
    assert run_expire(conn, T0 + 99) == []
    events = run_expire(conn, T0 + 100)
    assert events == [
        AlertEvent(
            kind=EventKind.RESOLVED,
            rule="Short",
            metric=EXTERNAL_METRIC,
            labels=short.labels,
            level=None,
            previous_level=Level.MAJOR,
            value=None,
            summary="short one" + EXPIRED_NOTE,
            ts=T0 + 100,
            fingerprint=short.fingerprint,
        )
    ]
    stored = row(conn, short.fingerprint)
    assert stored is not None
    assert (stored["state"], stored["updated_at"]) == ("resolved", T0 + 100)
    assert run_expire(conn, T0 + 200) == []
    assert [a.rule for a in active(conn)] == ["Long"]


def test_an_expired_alert_fires_again_when_resent(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted())
    assert kinds(run_expire(conn, T0 + 300)) == [EventKind.RESOLVED]
    assert kinds(push(conn, T0 + 310, posted(now=T0 + 310))) == [EventKind.FIRING]


def test_expiry_survives_a_restart(tmp_path: Path) -> None:
    first = connect(tmp_path)
    push(first, T0, posted(ends=T0 + 240))
    first.close()
    second = connect(tmp_path)
    try:
        assert kinds(run_expire(second, T0 + 3600)) == [EventKind.RESOLVED]
    finally:
        second.close()


def test_expire_uses_the_partial_index(conn: sqlite3.Connection) -> None:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    expire(conn, T0)
    conn.set_trace_callback(None)
    select = next(s for s in statements if s.startswith("SELECT"))
    plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + select))
    assert "USING INDEX external_alerts_firing" in plan


# -- reading -----------------------------------------------------------------------------------


def test_active_lists_firing_alerts_by_fingerprint(conn: sqlite3.Connection) -> None:
    alerts = [
        posted(f"A{i}", ends=T0 + 100 * (i + 1), annotations={"summary": f"s{i}"}) for i in range(5)
    ]
    push(conn, T0, *alerts)
    push(conn, T0 + 1, posted("A0", now=T0 + 1, ends=T0))
    listed = active(conn)
    assert [a.fingerprint for a in listed] == sorted(a.fingerprint for a in alerts[1:])
    assert {a.rule for a in active(conn, now=T0 + 250)} == {"A2", "A3", "A4"}
    a1 = next(a for a in listed if a.rule == "A1")
    assert a1 == ExternalAlert(
        fingerprint=alerts[1].fingerprint,
        rule="A1",
        labels=alerts[1].labels,
        annotations=(("summary", "s1"),),
        level=Level.MAJOR,
        starts_at=T0,
        ends_at=T0 + 200,
        generator_url="",
        updated_at=T0,
        state="firing",
    )
    assert a1.summary == "s1"


def test_unicode_labels_round_trip(conn: sqlite3.Connection) -> None:
    alert = posted(site="東京 🗼")
    push(conn, T0, alert)
    assert active(conn)[0].labels == alert.labels


# -- transactions and cost ---------------------------------------------------------------------


def test_receive_runs_in_the_callers_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    events = receive(conn, [posted()], T0)
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert kinds(events) == [EventKind.FIRING]
    assert conn.execute("SELECT count(*) FROM external_alerts").fetchone() == (0,)


def test_expire_runs_in_the_callers_transaction(conn: sqlite3.Connection) -> None:
    push(conn, T0, posted())
    conn.execute("BEGIN IMMEDIATE")
    assert len(expire(conn, T0 + 1000)) == 1
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert len(active(conn)) == 1


@pytest.mark.parametrize(("count", "selects"), [(64, 1), (500, 1), (501, 2), (1200, 3)])
def test_a_batch_costs_one_select_per_500_fingerprints(
    conn: sqlite3.Connection, count: int, selects: int
) -> None:
    batch = [posted(f"A{i}", ends=T0 + 240) for i in range(count)]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    push(conn, T0, *batch)
    conn.set_trace_callback(None)
    assert sum(s.startswith("SELECT") for s in statements) == selects
    assert conn.execute("SELECT count(*) FROM external_alerts").fetchone() == (count,)


class NoQueries:
    """A connection that must not be used."""

    def execute(self, *args: object) -> None:
        raise AssertionError("a storm of single pushed alerts needs no member lookup")


def test_member_sources_reads_nothing_for_single_pushed_alerts() -> None:
    # each single alert's notification has its own entry (with_sources) but no members: the
    # storm path must not look its fingerprints up again (a SELECT per POST)
    from alertd.model import Incident, IncidentState, Notification, Transition

    alert = posted(annotations={"summary": "down"})
    incident = Incident(
        1, alert.fingerprint, alert.rule, EXTERNAL_METRIC, alert.labels, Level.MAJOR, "P2",
        IncidentState.OPEN, "down", None, T0, T0,
    )  # fmt: skip
    notes = with_sources(
        [Notification(incident, Transition.OPENED, "hook")], {alert.fingerprint: alert}
    )
    assert len(notes[0].entries) == 1
    assert member_sources(NoQueries(), notes) == notes  # type: ignore[arg-type]
