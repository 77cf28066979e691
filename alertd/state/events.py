"""Device events in the state database: what a device told us that is not an incident.

The SNMP trap receiver records coldStart/warmStart traps and traps with an OID nobody mapped
here (``kind`` cold_start, warm_start, unknown_trap), so an operator can see that a switch
rebooted or sent something new, without anyone being paged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alertd.errors import StoreError
from alertd.model import Level


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One thing a device reported: when, who (IP and instance), what, and the trap's data.

    ``level`` is ``None`` for informational events (a restart) and ``Level.MINOR`` for an
    unknown trap OID.
    """

    ts: float
    source: str
    instance: str
    kind: str
    trap_oid: str
    detail: str
    level: Level | None = None


_COLUMNS = "ts, source, instance, kind, level, trap_oid, detail"


def _event(row: Sequence[Any]) -> DeviceEvent:
    return DeviceEvent(
        ts=row[0],
        source=row[1],
        instance=row[2],
        kind=row[3],
        level=None if row[4] is None else Level(row[4]),
        trap_oid=row[5],
        detail=row[6],
    )


def record_device_event(conn: sqlite3.Connection, event: DeviceEvent) -> int:
    """Append ``event`` to the events log; return its row id."""
    try:
        cursor = conn.execute(
            f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.ts,
                event.source,
                event.instance,
                event.kind,
                None if event.level is None else int(event.level),
                event.trap_oid,
                event.detail,
            ),
        )
    except sqlite3.Error as exc:
        raise StoreError(f"record device event {event.kind} from {event.source}: {exc}") from exc
    row_id = cursor.lastrowid
    assert row_id is not None
    return row_id


def recent_device_events(
    conn: sqlite3.Connection, limit: int = 100, *, instance: str | None = None
) -> list[DeviceEvent]:
    """Return up to ``limit`` events, newest first (optionally of one ``instance`` only)."""
    where, args = ("WHERE instance = ?", (instance,)) if instance is not None else ("", ())
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events {where} ORDER BY ts DESC, id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_event(row) for row in rows]


def prune_device_events(conn: sqlite3.Connection, before: float) -> int:
    """Delete events older than ``before`` (wall-clock seconds); return how many went."""
    return conn.execute("DELETE FROM events WHERE ts < ?", (before,)).rowcount
