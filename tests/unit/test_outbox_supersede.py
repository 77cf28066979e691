"""Newer news wins: an incident change's notifications supersede the incident's older ones to
the same channel and team that have not gone out yet (``OutboxStore.enqueue(...,
supersede=True)``), so a provider that was down while an incident opened and resolved gets
"resolved", never a stale "opened" after it."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import pytest

from alertd.clock import FakeClock
from alertd.inbound import Inbound
from alertd.incidents.manager import IncidentManager
from alertd.incidents.routing import failover_for, notifications_for
from alertd.model import Incident, IncidentState, Notification, Transition
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.notifier import Sent
from alertd.notify.outbox import Intent, OutboxStore
from alertd.notify.ratelimit import Limiter
from alertd.state.incidents import IncidentStore
from tests.open_incidents import open_incidents
from tests.unit.test_outbox import (
    CHANNELS,
    MINUTE,
    Behaviour,
    Channel,
    delivery_for,
    fail,
    timeline,
)


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


class Gated(Channel):
    """The first send waits for ``gate``, then ends as ``first`` says (it raises, or says
    what the provider answered); the others go through."""

    def __init__(self, name: str, first: Behaviour) -> None:
        super().__init__(name)
        self.first = first
        self.gate = asyncio.Event()

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        if len(self.attempts) > 1:
            self.sent.append(n)
            return None
        await self.gate.wait()
        answer = self.first(n)
        self.sent.append(n)
        return answer


async def test_a_page_in_flight_when_superseded_is_neither_retried_nor_failed_over(
    db: sqlite3.Connection,
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail, log = Gated("mail", fail(False)), Channel("log")  # the opened page: a 500 in the end
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


async def test_a_digest_is_never_superseded_by_one_of_its_incidents(
    db: sqlite3.Connection,
) -> None:
    # a digest carries its newest member's incident: a later change of that one incident
    # must not take the other incidents' held pages down with it
    clock = FakeClock()
    incidents = open_incidents(db, 5)
    robot = Channel("robot", [lambda n: None, lambda n: None, fail(True)])  # digest fails once
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter({"robot": ((2, 60.0),)}))
    opened = [Notification(i, Transition.OPENED, "robot", key=f"{i.id}.opened") for i in incidents]
    commit_news(d, opened, clock)
    await d.settle()
    clock.advance(MINUTE)
    await d.settle()  # the digest of #3-#5 went out and failed: pending again
    last = dataclasses.replace(incidents[-1], state=IncidentState.RESOLVED, resolved_at=0.0)
    commit_news(d, [Notification(last, Transition.RESOLVED, "robot", key="5.resolved")], clock)
    for _ in range(4):
        clock.advance(600.0)
        await d.settle()
    digests = [n for n in robot.sent if n.digest]
    assert len(digests) == 1
    assert len(digests[0].digest) == 3  # #3, #4 and #5's pages, none lost
    assert d.store.counts().get("superseded", 0) == 0


async def test_old_news_refused_for_one_recipient_is_not_retried_after_newer_news(
    db: sqlite3.Connection,
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    # the opened mail is refused for now (4xx) for one of its two recipients, in the end
    mail = Gated("mail", lambda n: Sent(refused=((n.recipients[1], "450 mailbox busy"),)))
    d = delivery_for(db, {"mail": mail}, clock)
    commit_news(d, news(incident, Transition.OPENED, clock), clock)
    d.pump()
    await asyncio.sleep(0.02)  # the opened mail is in flight
    commit_news(d, news(incident, Transition.RESOLVED, clock), clock)
    await d.settle(1.0)  # the resolved one goes out to both
    mail.gate.set()
    for _ in range(3):
        clock.advance(30.0)
        await d.settle()
    assert [n.transition for n in mail.sent] == [Transition.RESOLVED, Transition.OPENED]
    assert len(mail.attempts) == 2  # no "opened" retry for the refused recipient after it


class FailOvers:
    """The delivery control ``Inbound`` tells of a provider's late failure."""

    def __init__(self) -> None:
        self.failed_over: list[int] = []

    def wake(self) -> None:
        pass

    def fail_over(self, intent: Intent, recipients: tuple[str, ...], why: str, now: float) -> int:
        self.failed_over.append(intent.id)
        return 1


@pytest.mark.parametrize("newer_news", [False, True])
async def test_a_late_undelivered_status_fails_over_only_what_is_still_news(
    db: sqlite3.Connection, newer_news: bool
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    controls = FailOvers()
    outbox = OutboxStore(db)

    async def no_reload() -> bool:
        return False

    inbound = Inbound(
        IncidentManager(IncidentStore(db), CHANNELS),
        outbox,
        controls,
        lambda: None,  # type: ignore[arg-type,return-value]  # not read here
        clock.now,
        lambda events: None,
        no_reload,
    )
    d = delivery_for(db, {}, clock)
    commit_news(d, news(incident, Transition.OPENED, clock), clock)
    db.execute("UPDATE outbox SET state = 'delivered', provider_id = 'SM1'")  # the provider took it
    if newer_news:
        commit_news(d, news(incident, Transition.RESOLVED, clock), clock)
    assert inbound.provider_status("SM1", "undelivered", "30003")
    assert controls.failed_over == ([] if newer_news else [1])
    said = [line for line in timeline(db, incident.id) if "provider says undelivered" in line]
    assert len(said) == 1
    assert ("not failed over: newer news" in said[0]) is newer_news


async def test_a_resolve_to_every_tier_paged_supersedes_each_tiers_waiting_page(
    db: sqlite3.Connection,
) -> None:
    # review finding: a resolve to "tier1,tier2" on a channel both tiers share did not
    # supersede tier-2's escalated page waiting there (its team was "tier2"), nor did a
    # failed old page see the resolve as newer news
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [fail(True)])
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=10.0))
    (escalated,) = news(incident, Transition.ESCALATED, clock)
    escalated = dataclasses.replace(escalated, team="tier2")
    commit_news(d, [escalated], clock)
    await d.settle()
    (waiting,) = d.store.due(clock.now() + 60.0, 10)
    clock.advance(2.0)
    (resolved,) = news(incident, Transition.RESOLVED, clock)
    assert not d.store.has_newer_news(waiting)
    commit_news(d, [dataclasses.replace(resolved, team="tier1,tier2")], clock)
    assert d.store.has_newer_news(waiting)
    clock.advance(60.0)
    await d.settle()
    assert [n.transition for n in mail.sent] == [Transition.RESOLVED]
    assert d.store.counts() == {"superseded": 1, "delivered": 1}


async def test_an_acknowledged_incidents_waiting_pages_are_not_sent(db: sqlite3.Connection) -> None:
    # user-test finding: incidents acknowledged mid-storm still went out as "opened" in the
    # rate limit's digest a minute later
    from alertd.incidents.actions import acknowledge

    clock = FakeClock()
    incidents = open_incidents(db, 4)
    robot = Channel("robot")
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter({"robot": ((2, 60.0),)}))
    pages = [Notification(i, Transition.OPENED, "robot", key=f"{i.id}.opened") for i in incidents]
    commit_news(d, pages, clock)
    await d.settle()
    assert len(robot.sent) == 2  # #3 and #4 are held for the digest
    store = IncidentStore(db)
    assert acknowledge(store, incidents[2], "wang", None, clock.now(), "api").endswith("wang")
    level = Notification(incidents[3], Transition.LEVEL_CHANGED, "robot", key="4.level")
    commit_news(d, [level], clock)  # news, not a page: it still goes
    acknowledge(store, incidents[3], "li", None, clock.now(), "cli")

    clock.advance(MINUTE)
    await d.settle()
    # #3's page never went; #4's level change did (alone: no digest of one)
    sent = [(n.transition, n.incident.id) for n in robot.sent]
    assert sent == [
        (Transition.OPENED, 1),
        (Transition.OPENED, 2),
        (Transition.LEVEL_CHANGED, 4),
    ]
    assert d.store.counts() == {"delivered": 3, "superseded": 2}
    assert timeline(db, incidents[2].id)[-1] == (
        "opened via robot: not sent: acknowledged by wang before it went out"
    )
