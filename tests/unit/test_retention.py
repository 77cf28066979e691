"""What is past its retention is forgotten, everything it owns with it, and nothing else."""

from __future__ import annotations

import sqlite3

import pytest

from alertd.config.server import ServerFile
from alertd.model import Incident, Notification, Transition
from alertd.notify.outbox import AttemptResult, OutboxStore
from alertd.state.incidents import IncidentStore
from alertd.state.retention import purge_resolved_external_alerts, purge_resolved_incidents
from tests.open_incidents import open_incidents

DAY = 86400.0
NOW = 1000.0 + 400 * DAY  # open_incidents opens at 1000.0


def resolve(conn: sqlite3.Connection, incident: Incident, at: float) -> None:
    conn.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at = ? WHERE id = ?", (at, incident.id)
    )


def page(store: OutboxStore, incident: Incident, at: float) -> int:
    """Commit one page about ``incident`` and record it delivered; return the intent's id."""
    n = Notification(incident, Transition.OPENED, "mail", ("a@example.com",), key=f"k{incident.id}")
    with store.transaction():
        store.enqueue([n], at)
    (intent,) = store.due(at, 10)
    with store.transaction():
        store.record([AttemptResult(intent, "ok", "sent", "delivered")], at)
    return intent.id


def count(conn: sqlite3.Connection, table: str, incident_id: int) -> int:
    column = "id" if table == "incidents" else "incident_id"
    return int(
        conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (incident_id,)).fetchone()[
            0
        ]
    )


def test_an_old_resolved_incident_goes_with_all_it_owns_and_nothing_else(
    conn: sqlite3.Connection,
) -> None:
    incidents = IncidentStore(conn)
    outbox = OutboxStore(conn)
    old, recent, still_open = open_incidents(conn, 3)
    old_page = page(outbox, old, 2000.0)
    recent_page = page(outbox, recent, NOW - DAY)
    # a newer page that a digest or a failover ties to the old one's
    conn.execute(
        "UPDATE outbox SET digest_id = ?, failover_of = ? WHERE id = ?",
        (old_page, old_page, recent_page),
    )
    with incidents.transaction():
        for i in (old, recent, still_open):
            incidents.add_timeline(i.id, 2000.0, "note", "something happened")
            conn.execute(
                "INSERT INTO incident_alerts (incident_id, fingerprint, rule, labels, level, "
                "state, since) VALUES (?, ?, 'cpu', '[]', 2, 'resolved', 1000.0)",
                (i.id, f"m{i.id}"),
            )
        resolve(conn, old, 3000.0)
        resolve(conn, recent, NOW - DAY)

    with incidents.transaction():
        gone = purge_resolved_incidents(conn, NOW - 365 * DAY)

    assert gone == 1
    for table in ("incidents", "timeline", "incident_alerts", "outbox"):
        assert count(conn, table, old.id) == 0, table
    for table in ("incidents", "timeline", "incident_alerts", "outbox"):
        assert count(conn, table, recent.id) >= 1, table
        assert count(conn, table, still_open.id) >= (0 if table == "outbox" else 1), table
    orphans = conn.execute(
        "SELECT COUNT(*) FROM outbox_attempts WHERE outbox_id NOT IN (SELECT id FROM outbox)"
    ).fetchone()[0]
    assert orphans == 0
    assert (
        conn.execute("SELECT COUNT(*) FROM outbox_body WHERE id = ?", (old_page,)).fetchone()[0]
        == 0
    )
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # the newer page keeps its own story; only its links to what is gone are cut
    assert conn.execute(
        "SELECT state, digest_id, failover_of FROM outbox WHERE id = ?", (recent_page,)
    ).fetchone() == ("delivered", None, None)


def test_open_incidents_stay_however_old_and_a_backlog_goes_a_batch_at_a_time(
    conn: sqlite3.Connection,
) -> None:
    incidents = IncidentStore(conn)
    first, second, third, open_one = open_incidents(conn, 4)
    with incidents.transaction():
        for i in (first, second, third):
            resolve(conn, i, 2000.0)
    with incidents.transaction():
        assert purge_resolved_incidents(conn, NOW - 365 * DAY, limit=2) == 2
    with incidents.transaction():
        assert purge_resolved_incidents(conn, NOW - 365 * DAY, limit=2) == 1
    with incidents.transaction():
        assert purge_resolved_incidents(conn, NOW - 365 * DAY, limit=2) == 0
    left = [row[0] for row in conn.execute("SELECT id FROM incidents")]
    assert left == [open_one.id]


def test_an_incident_with_a_notification_still_to_send_stays(conn: sqlite3.Connection) -> None:
    # the delivery worker down for a year: its pages are not deleted unsent
    incidents, outbox = IncidentStore(conn), OutboxStore(conn)
    waiting, held = open_incidents(conn, 2)
    with outbox.transaction():
        outbox.enqueue(
            [
                Notification(i, Transition.RESOLVED, "mail", ("a@example.com",), key=f"k{i.id}")
                for i in (waiting, held)
            ],
            2000.0,
        )
    with outbox.transaction():
        outbox.hold([outbox.due(2000.0, 10)[1]], 2000.0)
    with incidents.transaction():
        for i in (waiting, held):
            resolve(conn, i, 2000.0)
    with incidents.transaction():
        assert purge_resolved_incidents(conn, NOW - 365 * DAY) == 0
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2


def test_pushed_alerts_go_once_ended_long_enough_ago_and_firing_ones_stay(
    conn: sqlite3.Connection,
) -> None:
    for fingerprint, state, ends_at in (
        ("ended-long-ago", "resolved", 2000.0),
        ("ended-lately", "resolved", NOW - DAY),
        ("firing-for-ever", "firing", 2000.0),
    ):
        conn.execute(
            "INSERT INTO external_alerts (fingerprint, rule, labels, annotations, level, "
            "starts_at, ends_at, generator_url, updated_at, state) "
            "VALUES (?, 'x', '{}', '{}', 2, 1000.0, ?, '', ?, ?)",
            (fingerprint, ends_at, ends_at, state),
        )
    assert purge_resolved_external_alerts(conn, NOW - 365 * DAY) == 1
    left = sorted(row[0] for row in conn.execute("SELECT fingerprint FROM external_alerts"))
    assert left == ["ended-lately", "firing-for-ever"]


def test_retention_defaults_and_limits() -> None:
    keep = ServerFile().retention
    assert (keep.incidents, keep.notifications, keep.events) == (365 * DAY, 30 * DAY, 30 * DAY)
    assert ServerFile.model_validate({"retention": {"incidents": "90d"}}).retention.incidents == (
        90 * DAY
    )
    with pytest.raises(ValueError, match="at least 30d: the KPIs"):
        ServerFile.model_validate({"retention": {"incidents": "7d"}})  # the KPIs read 30 days
    with pytest.raises(ValueError, match="no longer than incidents"):
        ServerFile.model_validate({"retention": {"incidents": "40d", "notifications": "60d"}})
