"""The batched write path of ``IncidentManager.apply`` (``IncidentStore.batch``): one SELECT
for the batch's unresolved incidents, timeline rows written together at the end, escalation
deadlines in the incident's INSERT, routing decided once per incident. Each must come to the
same rows as one statement at a time (real SQLite file)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alertd.config.channels import ChannelsFile
from alertd.incidents.maintenance import Window
from alertd.incidents.manager import IncidentManager
from alertd.incidents.priority import LEVEL_NAMES, priority_of
from alertd.incidents.routing import matching_routes, route_plan, route_targets
from alertd.model import (
    AlertEvent,
    EventKind,
    Incident,
    IncidentState,
    Level,
    Notification,
    fingerprint,
    make_labels,
)
from alertd.state.db import connect
from alertd.state.incidents import EscalationStore, IncidentStore

from .conftest import T0, channels

MIN = 60.0
ESCALATING: dict[str, Any] = {
    "channels": {"pager": {"type": "log"}, "mail": {"type": "log"}, "log": {"type": "log"}},
    "teams": {"tier1": {"channels": ["pager"]}, "tier2": {"channels": ["mail"]}},
    "routes": [
        {"match": {"role": "db"}, "notify": ["log"], "continue": True},
        {
            "match": {"priority": ["P1", "P2"]},
            "escalate": [{"notify": ["tier1"]}, {"after": "15m", "notify": ["tier2"]}],
            "repeat": "10m",
        },
        {"notify": ["log"]},
    ],
}


def event(kind: EventKind, instance: str, level: Level | None = Level.CRITICAL) -> AlertEvent:
    labels = make_labels({"instance": instance, "criticality": "high", "role": "db"})
    return AlertEvent(
        kind,
        "cpu",
        "cpu",
        labels,
        None if kind is EventKind.RESOLVED else level,
        None,
        97.0,
        f"cpu high on {instance}",
        T0,
        fingerprint("cpu", labels),
    )


def fire(instance: str, level: Level = Level.CRITICAL) -> AlertEvent:
    return event(EventKind.FIRING, instance, level)


def resolve(instance: str) -> AlertEvent:
    return event(EventKind.RESOLVED, instance)


@pytest.fixture
def manager(tmp_path: Path) -> IncidentManager:
    config = ChannelsFile.model_validate(ESCALATING)
    return IncidentManager(IncidentStore(connect(tmp_path)), config)


def apply(manager: IncidentManager, now: float, *events: AlertEvent) -> list[Notification]:
    with manager.store.transaction():
        return manager.apply(events, now)


def rows(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def test_a_batch_writes_the_same_rows_as_one_event_at_a_time(tmp_path: Path) -> None:
    # the same fingerprint fires, changes level, resolves and fires again in one batch:
    # each event must see what the one before wrote, not the batch's first look-up
    config = ChannelsFile.model_validate(ESCALATING)
    events = [
        fire("db1"),
        fire("db2"),
        fire("db1", Level.MAJOR),
        resolve("db1"),
        fire("db1"),
        resolve("db3"),  # nothing open: nothing written
        fire("db2"),  # a repeat: nothing
    ]
    one = IncidentManager(IncidentStore(connect(tmp_path / "one")), config)
    batched = IncidentManager(IncidentStore(connect(tmp_path / "batch")), config)
    one_notes = [n for e in events for n in apply(one, T0, e)]
    batch_notes = apply(batched, T0, *events)
    assert batch_notes == one_notes
    for table in ("incidents", "timeline"):
        assert rows(batched.store.conn, table) == rows(one.store.conn, table)
    assert [(i.id, i.state) for i in batched.store.find()] == [
        (3, IncidentState.OPEN),
        (2, IncidentState.OPEN),
        (1, IncidentState.RESOLVED),
    ]


def test_timeline_entries_keep_their_order_across_incidents(manager: IncidentManager) -> None:
    apply(manager, T0, fire("db1"), fire("db2"), fire("db1", Level.MAJOR), resolve("db2"))
    kinds = [
        (incident_id, kind)
        for incident_id, kind in manager.store.conn.execute(
            "SELECT incident_id, kind FROM timeline ORDER BY id"
        )
    ]
    assert kinds == [(1, "opened"), (2, "opened"), (1, "level_changed"), (2, "resolved")]


def test_an_error_in_a_batch_drops_its_held_timeline_and_later_writes_go_straight_in(
    manager: IncidentManager,
) -> None:
    store = manager.store

    def broken_batch() -> None:
        with store.transaction(), store.batch([]):
            store.add_timeline(1, T0, "comment", "held")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        broken_batch()
    assert rows(store.conn, "timeline") == []
    apply(manager, T0, fire("db1"))
    store.add_timeline(1, T0, "comment", "at once")  # outside a batch: written now
    assert [(t.kind, t.detail) for t in store.timeline(1)][1:] == [("comment", "at once")]


def test_active_answers_from_the_batch_until_the_incident_is_written(tmp_path: Path) -> None:
    store = IncidentStore(connect(tmp_path))
    draft = Incident(
        0, "fp1", "cpu", "cpu", (), Level.MAJOR, "P2", IncidentState.OPEN, "s", None, T0, T0
    )
    with store.transaction():
        opened = store.open(draft)
    with store.transaction(), store.batch(["fp1", "fp2"]):
        assert store.active("fp1") == opened
        assert store.active("fp2") is None
        store.conn.execute("DELETE FROM incidents")  # behind the batch's back: still answered
        assert store.active("fp1") == opened
        reopened = store.open(draft)  # a write through the store: read again
        assert store.active("fp1") == reopened
        store.resolve(reopened, T0)
        assert store.active("fp1") is None
    assert store.active("fp2") is None  # after the batch: straight from the table


def test_escalation_deadlines_are_written_with_the_new_incident(manager: IncidentManager) -> None:
    apply(manager, T0, fire("db1"))  # high x critical: P1, the escalating route
    state = EscalationStore(manager.store.conn).get(1)
    assert state is not None
    assert (state.step, state.next_escalation_at, state.next_repeat_at) == (
        0,
        T0 + 15 * MIN,
        T0 + 10 * MIN,
    )
    assert not state.resolve_escalated


def test_a_quiet_new_incident_gets_no_escalation_deadlines(manager: IncidentManager) -> None:
    window = Window("w", "maintenance", {"instance": ["db1"]}, "CHG-1", "ops", T0 - 1, T0 + 1)
    manager.windows = lambda now: [window]
    assert apply(manager, T0, fire("db1")) == []
    state = EscalationStore(manager.store.conn).get(1)
    assert state is not None
    assert (state.step, state.next_escalation_at, state.next_repeat_at) == (0, None, None)


def test_route_plan_agrees_with_the_matching_routes() -> None:
    config = ChannelsFile.model_validate(ESCALATING)
    prebuilt = [route.steps for route in config.routes]
    for level in Level:
        for role in ("db", "web"):
            labels = make_labels({"role": role, "criticality": "high"})
            priority = priority_of(labels, level, config.priorities)
            incident = Incident(
                1, "fp", "cpu", "cpu", labels, level, priority, IncidentState.OPEN, "", None, T0, T0
            )
            routes = matching_routes(incident, config)
            plan = route_plan(incident, config)
            assert plan == route_plan(incident, config, prebuilt)
            assert list(plan.targets) == route_targets(incident, config)
            assert plan.steps == routes[-1].steps
            assert plan.repeat == routes[-1].repeat
    assert route_plan(_incident(channels(), "nothing"), channels()).targets == ()


def _incident(config: ChannelsFile, role: str) -> Incident:
    labels = make_labels({"role": role})
    return Incident(
        1, "fp", "cpu", "cpu", labels, Level.MINOR, "P4", IncidentState.OPEN, "", None, T0, T0
    )


def test_level_names_are_the_levels_labels() -> None:
    assert {level: level.label for level in Level} == LEVEL_NAMES


def test_batches_do_not_nest(manager: IncidentManager) -> None:
    apply(manager, T0, fire("db1"))
    store = manager.store
    with store.transaction(), store.batch([]):
        with pytest.raises(RuntimeError, match="does not nest"), store.batch([]):
            pass
        store.add_timeline(1, T0, "comment", "still held")
    assert [t.detail for t in store.timeline(1)][-1] == "still held"
