"""Forgetting what is old, so the state database does not grow for as long as alertd runs.

Resolved incidents older than ``retention.incidents`` go with everything that hangs off them:
their timeline, their alerts, their notifications and each attempt's outcome. Open and
acknowledged incidents are never deleted, however old, nor any incident with a notification
still to be sent (waiting, in flight or held). Deletes run a bounded batch at a time
(``BATCH`` incidents), so a first purge of years of history holds the writer lock for short
turns, not for one long one. SQLite reuses the freed pages; the file itself does not shrink
(``VACUUM`` it offline for that).
"""

from __future__ import annotations

import sqlite3

from alertd.notify.outbox import forget_intents

BATCH = 500  # incidents per purge: a short turn with the writer lock, however much is old


def purge_resolved_incidents(conn: sqlite3.Connection, before: float, limit: int = BATCH) -> int:
    """Delete up to ``limit`` incidents resolved before ``before`` (within the caller's
    transaction), the oldest opened first, with their timeline, alerts and notifications; return
    how many incidents went."""
    ids = [
        row[0]
        for row in conn.execute(
            # through incidents_state (state, opened_at): only those opened before, too
            "SELECT id FROM incidents WHERE state = 'resolved' AND opened_at < ? "
            "AND resolved_at < ? AND id NOT IN (SELECT incident_id FROM outbox "
            "WHERE state IN ('pending', 'sending') UNION SELECT incident_id FROM outbox "
            "WHERE state = 'held') ORDER BY opened_at LIMIT ?",
            (before, before, limit),
        )
    ]
    if not ids:
        return 0
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS purged_incidents (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM purged_incidents")
    conn.executemany("INSERT INTO purged_incidents (id) VALUES (?)", [(i,) for i in ids])
    # a digest or a failover of a newer incident's page may point at one of these intents
    forget_intents(
        conn, "SELECT id FROM outbox WHERE incident_id IN (SELECT id FROM purged_incidents)"
    )
    for table in ("timeline", "incident_alerts"):
        conn.execute(f"DELETE FROM {table} WHERE incident_id IN (SELECT id FROM purged_incidents)")
    conn.execute("DELETE FROM incidents WHERE id IN (SELECT id FROM purged_incidents)")
    conn.execute("DELETE FROM purged_incidents")
    return len(ids)


def purge_resolved_external_alerts(conn: sqlite3.Connection, before: float) -> int:
    """Delete pushed alerts (``POST /api/v2/alerts``) that ended before ``before``; return how
    many. A firing one stays, whenever it started."""
    cur = conn.execute(
        "DELETE FROM external_alerts WHERE state = 'resolved' AND ends_at < ?", (before,)
    )
    return cur.rowcount
