"""Open N plain incidents in a state database: what outbox and delivery tests notify about."""

from __future__ import annotations

import sqlite3

from alertd.model import Incident, IncidentState, Level, make_labels
from alertd.state.incidents import IncidentStore


def open_incidents(conn: sqlite3.Connection, count: int) -> list[Incident]:
    """Open ``count`` incidents (``f0``, ``f1``, ...: cpu high on h0, h1, ...) in one write."""
    store = IncidentStore(conn)
    with store.transaction():
        return [
            store.open(
                Incident(
                    0,
                    f"f{i}",
                    "cpu",
                    "cpu",
                    make_labels({"instance": f"h{i}"}),
                    Level.MAJOR,
                    "P2",
                    IncidentState.OPEN,
                    f"cpu high on h{i}",
                    99.0,
                    1000.0,
                    1000.0,
                )
            )
            for i in range(count)
        ]
