"""Persisted rule state (pending since, firing since, level) so a restart neither re-fires
nor forgets an alert."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from alertd.model import Level, StateRecord
from alertd.state.incidents import labels_json


def load_rule_state(conn: sqlite3.Connection) -> list[StateRecord]:
    rows = conn.execute(
        "SELECT fingerprint, rule, metric, labels, firing, firing_since, "
        "since_minor, since_major, since_critical FROM rule_state"
    )
    return [
        StateRecord(
            fingerprint=fp,
            rule=rule,
            metric=metric,
            labels=tuple((k, v) for k, v in json.loads(labels)),
            firing=Level(firing) if firing is not None else None,
            firing_since=firing_since,
            since=(s1, s2, s3),
        )
        for fp, rule, metric, labels, firing, firing_since, s1, s2, s3 in rows
    ]


def save_rule_state(conn: sqlite3.Connection, changes: Mapping[str, StateRecord | None]) -> None:
    """Apply changes (None deletes) in the caller's transaction."""
    deletes = [(fp,) for fp, rec in changes.items() if rec is None]
    upserts = [
        (
            rec.fingerprint,
            rec.rule,
            rec.metric,
            labels_json(rec.labels),
            int(rec.firing) if rec.firing is not None else None,
            rec.firing_since,
            *rec.since,
        )
        for rec in changes.values()
        if rec is not None
    ]
    if deletes:
        conn.executemany("DELETE FROM rule_state WHERE fingerprint = ?", deletes)
    if upserts:
        conn.executemany(
            "INSERT OR REPLACE INTO rule_state (fingerprint, rule, metric, labels, firing, "
            "firing_since, since_minor, since_major, since_critical) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            upserts,
        )
