"""Newer news wins: an incident change's notifications supersede the incident's older ones to
the same channel and team that have not gone out yet (``OutboxStore.enqueue(...,
supersede=True)``), so a provider that was down while an incident opened and resolved gets
"resolved", never a stale "opened" after it."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd.clock import FakeClock
from alertd.errors import FailureReason, NotifyError
from alertd.incidents.routing import failover_for, notifications_for
from alertd.model import Incident, IncidentState, Notification, Transition
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.notifier import Sent
from alertd.state.db import connect
from tests.open_incidents import open_incidents
from tests.unit.test_outbox import CHANNELS, Channel, delivery_for, fail, timeline


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path)
    yield conn
    conn.close()


def news(incident: Incident, transition: Transition, clock: FakeClock) -> list[Notification]:
    """What the daemon commits for an incident change (to team tier1, by mail)."""
    if transition is Transition.RESOLVED:
        incident = dataclasses.replace(
            incident, state=IncidentState.RESOLVED, resolved_at=clock.now()
        )
    return notifications_for(incident, transition, CHANNELS, clock.now())


def commit_news(d: Delivery, notes: list[Notification], clock: FakeClock) -> None:
    with d.store.transaction():
        d.store.enqueue(notes, clock.now(), supersede=True)


def failing_over(
    db: sqlite3.Connection, channels: dict[str, Channel], clock: FakeClock
) -> Delivery:
    return delivery_for(
        db,
        channels,
        clock,
        failover=lambda n, failed, why: failover_for(n, failed, why, CHANNELS),
    )


async def test_a_resolve_supersedes_an_opened_page_that_has_not_gone_out(
    db: sqlite3.Connection,
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [fail(True)])  # the provider is down for the first try
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=10.0))
    commit_news(d, news(incident, Transition.OPENED, clock), clock)
    await d.settle()
    assert d.store.counts() == {"pending": 1}  # the opened page waits for its retry
    clock.advance(2.0)
    commit_news(d, news(incident, Transition.RESOLVED, clock), clock)
    await d.settle()
    clock.advance(60.0)  # long past the opened page's retry
    await d.settle()
    assert [n.transition for n in mail.sent] == [Transition.RESOLVED]
    assert d.store.counts() == {"superseded": 1, "delivered": 1}
    assert (
        "opened via mail to wang@example.com, li@example.com: "
        "not sent: superseded by the resolved notification"
    ) in timeline(db, incident.id)


async def test_only_the_same_incidents_older_news_to_the_same_team_is_superseded(
    db: sqlite3.Connection,
) -> None:
    clock = FakeClock()
    first, second = open_incidents(db, 2)
    d = delivery_for(db, {}, clock)
    other_team = dataclasses.replace(news(first, Transition.OPENED, clock)[0], team="tier2")
    other_team = dataclasses.replace(other_team, key="other-team")
    commit_news(
        d,
        [
            *news(first, Transition.OPENED, clock),
            other_team,
            *news(second, Transition.OPENED, clock),
        ],
        clock,
    )
    commit_news(d, news(first, Transition.RESOLVED, clock), clock)
    states = dict(db.execute("SELECT key, state FROM outbox"))
    assert sorted(states.values()) == ["pending", "pending", "pending", "superseded"]
    (old,) = [k for k, v in states.items() if v == "superseded"]
    assert old.startswith(f"{first.id}.opened.")


class Gate(Channel):
    """The first send waits for ``gate``, then fails for good; the others go through."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        if len(self.attempts) == 1:
            await self.gate.wait()
            raise NotifyError("500 after all", retryable=False, reason=FailureReason.SERVER_ERROR)
        self.sent.append(n)
        return None


async def test_a_page_in_flight_when_superseded_is_neither_retried_nor_failed_over(
    db: sqlite3.Connection,
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail, log = Gate("mail"), Channel("log")
    d = failing_over(db, {"mail": mail, "log": log}, clock)
    commit_news(d, news(incident, Transition.OPENED, clock), clock)
    d.pump()
    await asyncio.sleep(0.02)
    assert d.store.counts() == {"sending": 1}
    commit_news(d, news(incident, Transition.RESOLVED, clock), clock)
    mail.gate.set()  # the opened page fails for good now: newer news is queued
    await d.settle()
    assert [n.transition for n in mail.sent] == [Transition.RESOLVED]
    assert log.sent == []  # no failover of the stale page
    assert d.store.counts() == {"superseded": 1, "delivered": 1}
    lines = timeline(db, incident.id)
    assert any("not tried again: a newer notification superseded it" in line for line in lines)


async def test_a_page_superseded_after_the_worker_read_it_is_not_claimed(
    db: sqlite3.Connection,
) -> None:
    # the worker reads what is due before its turn with the writer lock; the daemon's
    # resolve may commit in between
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail")
    d = delivery_for(db, {"mail": mail}, clock)
    commit_news(d, news(incident, Transition.OPENED, clock), clock)
    due = d.store.due(clock.now(), 10)
    commit_news(d, news(incident, Transition.RESOLVED, clock), clock)
    d._claim_due(due, 10)  # the turn that read ``due``
    await asyncio.sleep(0.02)
    assert mail.attempts == []
    await d.settle()
    assert [n.transition for n in mail.sent] == [Transition.RESOLVED]
