"""Unit tests of ``alertd.incidents.manager`` and ``alertd.incidents.actions`` on a real SQLite
file: open, dedup, level changes, resolve, reopen as a new incident, notifications, acks."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from alertd.incidents.actions import acknowledge, add_comment, resolve_by_hand
from alertd.incidents.manager import IncidentManager
from alertd.model import (
    AlertEvent,
    EventKind,
    Incident,
    IncidentState,
    Level,
    Notification,
    Transition,
    fingerprint,
    make_labels,
)
from alertd.state.incidents import IncidentStore, labels_json

from .conftest import T0, channels

LABELS = make_labels({"instance": "web1", "criticality": "high"})
FP = fingerprint("cpu", LABELS)


def event(
    kind: EventKind,
    level: Level | None,
    previous: Level | None = None,
    value: float | None = 97.0,
    ts: float = T0,
) -> AlertEvent:
    return AlertEvent(
        kind=kind,
        rule="cpu",
        metric="cpu",
        labels=LABELS,
        level=level,
        previous_level=previous,
        value=value,
        summary=f"cpu is {value} on web1",
        ts=ts,
        fingerprint=FP,
    )


FIRING_CRIT = event(EventKind.FIRING, Level.CRITICAL)
FIRING_MAJOR = event(EventKind.FIRING, Level.MAJOR, value=90.0)
RESOLVED_CRIT = event(EventKind.RESOLVED, None, Level.CRITICAL, value=40.0)


@pytest.fixture
def manager(store: IncidentStore) -> IncidentManager:
    return IncidentManager(store, channels())


def apply(manager: IncidentManager, now: float, *events: AlertEvent) -> list[Notification]:
    with manager.store.transaction():
        return manager.apply(events, now)


def only_incident(store: IncidentStore) -> Incident:
    (inc,) = store.find()
    return inc


def channels_of(notes: list[Notification]) -> dict[str, tuple[str, ...]]:
    return {n.channel: n.recipients for n in notes}


# -- opening and dedup ----------------------------------------------------------------------
def test_firing_opens_one_incident_with_priority_and_timeline(
    manager: IncidentManager, store: IncidentStore
) -> None:
    notes = apply(manager, T0, FIRING_CRIT)
    inc = only_incident(store)
    assert (inc.state, inc.level, inc.priority) == (IncidentState.OPEN, Level.CRITICAL, "P1")
    assert (inc.fingerprint, inc.rule, inc.metric, inc.labels) == (FP, "cpu", "cpu", LABELS)
    assert (inc.value, inc.opened_at, inc.updated_at) == (97.0, T0, T0)
    assert inc.summary == "cpu is 97.0 on web1"
    (entry,) = store.timeline(inc.id)
    assert (entry.kind, entry.actor, entry.ts) == ("opened", "alertd", T0)
    assert entry.detail.startswith("critical P1: cpu is 97.0 on web1")
    assert {n.transition for n in notes} == {Transition.OPENED}
    assert all(n.incident == inc for n in notes)
    assert channels_of(notes) == {"ops-mail": ("wang@example.com",), "audit-log": ()}


def test_repeat_firing_for_same_fingerprint_is_deduplicated(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    assert apply(manager, T0 + 60, FIRING_CRIT) == []  # e.g. after a restart
    inc = only_incident(store)
    assert inc.updated_at == T0
    assert [t.kind for t in store.timeline(inc.id)] == ["opened"]


def test_repeat_firing_in_one_batch_is_deduplicated(
    manager: IncidentManager, store: IncidentStore
) -> None:
    notes = apply(manager, T0, FIRING_CRIT, FIRING_CRIT)
    assert len(store.find()) == 1
    assert len(notes) == 2  # one OPENED per channel, not two


def test_partial_unique_index_rejects_a_second_active_incident(
    manager: IncidentManager, store: IncidentStore, conn: sqlite3.Connection
) -> None:
    apply(manager, T0, FIRING_CRIT)
    insert = (
        "INSERT INTO incidents (fingerprint, rule, metric, labels, level, priority, state, "
        "summary, value, opened_at, updated_at) VALUES (?, 'cpu', 'cpu', ?, 3, 'P1', ?, 's', "
        "1.0, ?, ?)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, (FP, labels_json(LABELS), "open", T0, T0))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, (FP, labels_json(LABELS), "acknowledged", T0, T0))
    conn.execute(insert, (FP, labels_json(LABELS), "resolved", T0, T0))  # history is fine
    conn.execute(insert, ("other", labels_json(LABELS), "open", T0, T0))
    assert len(store.find()) == 3


# -- level changes --------------------------------------------------------------------------
def test_level_change_updates_level_and_priority_and_is_recorded(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_MAJOR)
    assert only_incident(store).priority == "P2"
    change = event(EventKind.LEVEL_CHANGED, Level.CRITICAL, Level.MAJOR, value=99.0)
    notes = apply(manager, T0 + 60, change)
    inc = only_incident(store)
    assert (inc.level, inc.priority, inc.value, inc.updated_at) == (
        Level.CRITICAL,
        "P1",
        99.0,
        T0 + 60,
    )
    assert inc.opened_at == T0
    entries = store.timeline(inc.id)
    assert [t.kind for t in entries] == ["opened", "level_changed"]
    assert "major -> critical, P2 -> P1" in entries[1].detail
    assert {n.transition for n in notes} == {Transition.LEVEL_CHANGED}
    assert {(n.incident.level, n.previous_level) for n in notes} == {(Level.CRITICAL, Level.MAJOR)}


def test_firing_at_a_different_level_for_an_open_incident_changes_its_level(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_MAJOR)
    notes = apply(manager, T0 + 60, FIRING_CRIT)
    assert len(store.find()) == 1
    assert only_incident(store).level is Level.CRITICAL
    assert {n.transition for n in notes} == {Transition.LEVEL_CHANGED}


def test_level_change_by_firing_event_names_the_incidents_previous_level(
    manager: IncidentManager,
) -> None:
    apply(manager, T0, FIRING_MAJOR)
    notes = apply(manager, T0 + 60, FIRING_CRIT)
    assert notes
    assert {n.previous_level for n in notes} == {Level.MAJOR}


def test_level_change_keeps_acknowledgement(manager: IncidentManager, store: IncidentStore) -> None:
    apply(manager, T0, FIRING_MAJOR)
    acknowledge(store, only_incident(store), "wang", None, T0 + 10, how="cli")
    apply(manager, T0 + 60, event(EventKind.LEVEL_CHANGED, Level.CRITICAL, Level.MAJOR))
    inc = only_incident(store)
    assert (inc.state, inc.level, inc.acknowledged_by) == (
        IncidentState.ACKNOWLEDGED,
        Level.CRITICAL,
        "wang",
    )


# -- resolving ------------------------------------------------------------------------------
def test_resolved_event_resolves_and_notifies(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    notes = apply(manager, T0 + 300, RESOLVED_CRIT)
    inc = only_incident(store)
    assert (inc.state, inc.resolved_at, inc.value) == (IncidentState.RESOLVED, T0 + 300, 40.0)
    assert [t.kind for t in store.timeline(inc.id)] == ["opened", "resolved"]
    assert {n.transition for n in notes} == {Transition.RESOLVED}
    assert channels_of(notes) == {"ops-mail": ("wang@example.com",), "audit-log": ()}
    assert all(n.incident.state is IncidentState.RESOLVED for n in notes)


def test_resolved_event_without_value_keeps_last_value(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    apply(manager, T0 + 60, event(EventKind.RESOLVED, None, Level.CRITICAL, value=None))
    inc = only_incident(store)
    assert (inc.state, inc.value) == (IncidentState.RESOLVED, 97.0)
    assert "(value unknown)" in store.timeline(inc.id)[-1].detail


def test_firing_after_resolve_opens_a_new_incident(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    first = only_incident(store)
    apply(manager, T0 + 60, RESOLVED_CRIT)
    notes = apply(manager, T0 + 120, FIRING_CRIT)
    newest, oldest = store.find()
    assert oldest.id == first.id
    assert oldest.state is IncidentState.RESOLVED
    assert newest.id != first.id
    assert (newest.state, newest.opened_at) == (IncidentState.OPEN, T0 + 120)
    assert {n.transition for n in notes} == {Transition.OPENED}
    assert store.active(FP) == newest


def test_resolved_event_for_incident_resolved_by_hand_does_nothing(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    inc = only_incident(store)
    resolve_by_hand(store, inc, "wang", "rebooted", T0 + 30, how="cli")
    before = store.timeline(inc.id)
    assert apply(manager, T0 + 60, RESOLVED_CRIT) == []
    assert store.timeline(inc.id) == before
    assert only_incident(store).resolved_at == T0 + 30


def test_resolved_event_with_no_incident_does_nothing(
    manager: IncidentManager, store: IncidentStore
) -> None:
    assert apply(manager, T0, RESOLVED_CRIT) == []
    assert store.find() == []


def test_apply_is_atomic(
    manager: IncidentManager, store: IncidentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "add_timeline", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        apply(manager, T0, FIRING_CRIT)
    monkeypatch.undo()
    assert store.find() == []  # the incident row was rolled back with its timeline entry


def test_an_incident_is_said_opened_once_committed_never_for_a_rolled_back_write(
    manager: IncidentManager, store: IncidentStore, caplog: pytest.LogCaptureFixture
) -> None:
    # a full disk rolled each try back, and each logged "incident #5 opened" again
    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "opened" in r.getMessage()]

    def full_disk_at_commit() -> None:
        with store.transaction():
            manager.apply([FIRING_CRIT], T0)
            assert said() == []  # not before the commit
            raise sqlite3.OperationalError("database or disk is full")

    with caplog.at_level(logging.INFO, logger="alertd.incidents.manager"):
        with pytest.raises(sqlite3.OperationalError):
            full_disk_at_commit()
        assert said() == []
        apply(manager, T0 + 5, FIRING_CRIT)
    (line,) = said()
    assert line.startswith(f"incident #{only_incident(store).id} opened")


def test_after_commit_runs_once_committed_at_once_outside_and_never_on_rollback(
    store: IncidentStore,
) -> None:
    ran: list[str] = []
    store.after_commit(lambda: ran.append("outside"))
    assert ran == ["outside"]
    with store.transaction():
        store.after_commit(lambda: ran.append("committed"))
        assert ran == ["outside"]
    assert ran == ["outside", "committed"]

    def rolled_back() -> None:
        with store.transaction():
            store.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        rolled_back()
    assert ran == ["outside", "committed"]


def test_open_incidents_counted_by_priority(manager: IncidentManager, store: IncidentStore) -> None:
    apply(manager, T0, FIRING_CRIT)
    assert store.count_open_by_priority() == {"P1": 1}
    apply(manager, T0 + 60, RESOLVED_CRIT)
    assert store.count_open_by_priority() == {}


# -- actions --------------------------------------------------------------------------------
def test_acknowledge_records_who_and_how(manager: IncidentManager, store: IncidentStore) -> None:
    apply(manager, T0, FIRING_CRIT)
    inc = only_incident(store)
    message = acknowledge(store, inc, "wang", "looking", T0 + 30, how="sms")
    assert message == f"incident #{inc.id} acknowledged by wang"
    inc = only_incident(store)
    assert (inc.state, inc.acknowledged_by, inc.acknowledged_at, inc.updated_at) == (
        IncidentState.ACKNOWLEDGED,
        "wang",
        T0 + 30,
        T0 + 30,
    )
    entry = store.timeline(inc.id)[-1]
    assert (entry.kind, entry.actor, entry.ts) == ("acknowledged", "wang", T0 + 30)
    assert entry.detail == "acknowledged via sms: looking"


def test_resolve_by_hand_records_who_and_how(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    inc = only_incident(store)
    message = resolve_by_hand(store, inc, "li", None, T0 + 40, how="cli")
    assert message == f"incident #{inc.id} resolved by li"
    inc = only_incident(store)
    assert (inc.state, inc.resolved_at) == (IncidentState.RESOLVED, T0 + 40)
    entry = store.timeline(inc.id)[-1]
    assert (entry.kind, entry.actor, entry.detail) == ("resolved", "li", "resolved by hand via cli")
    assert store.active(FP) is None


def test_comment_records_who(manager: IncidentManager, store: IncidentStore) -> None:
    apply(manager, T0, FIRING_CRIT)
    inc = only_incident(store)
    assert add_comment(store, inc, "chen", "disk is fine", T0 + 5) == (
        f"comment added to incident #{inc.id}"
    )
    entry = store.timeline(inc.id)[-1]
    assert (entry.kind, entry.actor, entry.detail, entry.ts) == (
        "comment",
        "chen",
        "disk is fine",
        T0 + 5,
    )
    assert only_incident(store).state is IncidentState.OPEN


def test_acknowledge_of_resolved_incident_is_refused(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    apply(manager, T0 + 60, RESOLVED_CRIT)
    inc = only_incident(store)
    before = store.timeline(inc.id)
    message = acknowledge(store, inc, "wang", None, T0 + 90, how="cli")
    assert message == f"incident #{inc.id} is resolved; nothing to acknowledge"
    assert only_incident(store) == inc
    assert store.timeline(inc.id) == before


def test_acknowledge_twice_is_refused(manager: IncidentManager, store: IncidentStore) -> None:
    apply(manager, T0, FIRING_CRIT)
    acknowledge(store, only_incident(store), "wang", None, T0 + 10, how="cli")
    message = acknowledge(store, only_incident(store), "li", None, T0 + 20, how="sms")
    assert "is already acknowledged by wang" in message
    assert only_incident(store).acknowledged_by == "wang"


def test_resolve_by_hand_of_resolved_incident_is_refused(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    apply(manager, T0 + 60, RESOLVED_CRIT)
    inc = only_incident(store)
    assert resolve_by_hand(store, inc, "li", None, T0 + 90, how="cli") == (
        f"incident #{inc.id} is already resolved"
    )
    assert only_incident(store).resolved_at == T0 + 60


def test_acknowledge_with_a_stale_copy_of_a_since_resolved_incident_is_refused(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    stale = only_incident(store)  # the CLI / an SMS reply read it while it was open
    apply(manager, T0 + 60, RESOLVED_CRIT)  # the daemon resolves it meanwhile
    message = acknowledge(store, stale, "wang", None, T0 + 61, how="sms")
    assert message == f"incident #{stale.id} is resolved; nothing to acknowledge"
    assert only_incident(store).state is IncidentState.RESOLVED
    assert [t.kind for t in store.timeline(stale.id)] == ["opened", "resolved"]


def test_stale_ack_does_not_touch_the_new_incident_of_the_same_fingerprint(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    stale = only_incident(store)
    apply(manager, T0 + 60, RESOLVED_CRIT)
    apply(manager, T0 + 120, FIRING_CRIT)
    acknowledge(store, stale, "wang", None, T0 + 121, how="sms")
    newest, oldest = store.find()
    assert (oldest.state, newest.state) == (IncidentState.RESOLVED, IncidentState.OPEN)


def test_resolve_by_hand_with_a_stale_copy_keeps_the_original_resolution(
    manager: IncidentManager, store: IncidentStore
) -> None:
    apply(manager, T0, FIRING_CRIT)
    stale = only_incident(store)
    apply(manager, T0 + 60, RESOLVED_CRIT)
    message = resolve_by_hand(store, stale, "li", None, T0 + 90, how="cli")
    assert message == f"incident #{stale.id} is already resolved"
    assert only_incident(store).resolved_at == T0 + 60
