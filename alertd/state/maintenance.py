"""Maintenance windows and silences added from the CLI, kept in the state database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One stored window, as written by ``alertd maintenance|silence add``."""

    id: int
    kind: str
    matchers: dict[str, list[str]]
    start: float
    end: float
    reason: str
    owner: str


def add_window(
    conn: sqlite3.Connection,
    *,
    kind: str,
    matchers: Mapping[str, Sequence[str]],
    start: float,
    end: float,
    reason: str,
    owner: str,
    now: float,
) -> int:
    cur = conn.execute(
        "INSERT INTO maintenance (kind, matchers, start, end, reason, owner, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            json.dumps({k: list(v) for k, v in matchers.items()}),
            start,
            end,
            reason,
            owner,
            now,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def stored_windows(
    conn: sqlite3.Connection, now: float, *, expired: bool = False
) -> list[WindowRow]:
    """Return the windows not removed (and, unless ``expired``, not yet over)."""
    query = (
        "SELECT id, kind, matchers, start, end, reason, owner FROM maintenance "
        "WHERE removed_at IS NULL"
    )
    params: tuple[float, ...] = ()
    if not expired:
        query += " AND end > ?"
        params = (now,)
    return [
        WindowRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6])
        for row in conn.execute(query + " ORDER BY id", params)
    ]


def remove_window(conn: sqlite3.Connection, window_id: int, kind: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE maintenance SET removed_at = ? WHERE id = ? AND kind = ? AND removed_at IS NULL",
        (now, window_id, kind),
    )
    return cur.rowcount == 1
