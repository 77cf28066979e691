"""The durable outbox and its delivery workers, on a real SQLite file with a fake clock.

Rate limits fold a storm into what the limit allows plus one digest; retries back off and
honour Retry-After; permanent failures fail over to the next channel, re-addressed to the
same team members; intents a crash caught in flight are sent again and recorded ambiguous.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.errors import FailureReason, NotifyError
from alertd.incidents.routing import failover_for, notifications_for
from alertd.log_repeats import Repeats
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Level, Notification, Transition
from alertd.notify import render
from alertd.notify.delivery import (
    UNCONFIGURED_GRACE,
    UNCONFIGURED_RETRY,
    Delivery,
    DeliverySettings,
)
from alertd.notify.notifier import Sent, nothing_written_yet
from alertd.notify.outbox import STATES as OUTBOX_STATES
from alertd.notify.outbox import (
    AttemptResult,
    OutboxStore,
    dump_notification,
    load_notification,
)
from alertd.notify.ratelimit import Limiter, SlidingWindow, margin
from alertd.notify.registry import LogInstead
from tests.open_incidents import open_incidents

Behaviour = Callable[[Notification], Sent | None]

MINUTE = 60.0 + margin(60.0)  # a provider's minute as alertd counts it: a little longer


class Channel:
    """A notifier that records every attempt and behaves as scripted (default: accepts)."""

    def __init__(self, name: str, script: list[Behaviour] | None = None) -> None:
        self.name = name
        self.script = script or []
        self.attempts: list[Notification] = []
        self.sent: list[Notification] = []

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        result = self.script.pop(0)(n) if self.script else None
        self.sent.append(n)
        return result

    async def close(self) -> None:
        return None


def fail(retryable: bool, *, ambiguous: bool = False, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    def behave(n: Notification) -> Sent | None:
        raise NotifyError(
            "scripted failure",
            retryable=retryable,
            reason=FailureReason.SERVER_ERROR,
            ambiguous=ambiguous,
            retry_after=retry_after,
        )

    return behave


def note(
    incident: Incident, channel: str, to: tuple[str, ...] = (), team: str = ""
) -> Notification:
    return Notification(
        incident, Transition.OPENED, channel, to, key=f"{incident.id}.{channel}.{to}", team=team
    )


def delivery_for(conn, channels: dict[str, Channel], clock: FakeClock, **kw) -> Delivery:  # type: ignore[no-untyped-def]
    return Delivery(OutboxStore(conn), dict(channels), Metrics(CollectorRegistry()), clock, **kw)


def commit(d: Delivery, notes: list[Notification], clock: FakeClock) -> None:
    with d.store.transaction():
        d.store.enqueue(notes, clock.now())


def timeline(conn, incident_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    rows = conn.execute(
        "SELECT detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,)
    )
    return [r[0] for r in rows]


def attempts(conn, key: str) -> list[str]:  # type: ignore[no-untyped-def]
    rows = conn.execute(
        "SELECT a.outcome FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id "
        "WHERE o.key = ? ORDER BY a.id",
        (key,),
    )
    return [r[0] for r in rows]


def test_a_window_never_lets_more_than_its_count_through_in_any_span() -> None:
    w = SlidingWindow.of((2, 1.0))
    sends = []
    now = 0.0
    for _ in range(50):
        if w.peek(now):
            w.take(now)
            sends.append(now)
        now += 0.1
    # the provider's 1 s plus the margin for the time a send takes to reach it
    assert all(b - a >= 1.3 - 1e-9 for a, b in zip(sends, sends[2:], strict=False))
    assert len(sends) >= 8  # and it does use its room: 2 every 1.3 s over 5 s


def test_a_robots_minute_has_a_margin_for_the_way_to_the_provider() -> None:
    # user-test finding: sends admitted a minute apart reached the robot 59.9 s apart, 21
    # in its minute (DingTalk then throttles the robot for 10 minutes)
    w = SlidingWindow.of((20, 60.0))
    for _ in range(20):
        assert w.peek(0.0)
        w.take(0.0)
    assert not w.peek(60.0)
    assert not w.peek(62.9)
    assert w.peek(63.0)
    # a restart reads back as far as the window reaches, margin included
    assert Limiter({"robot": ((20, 60.0),)}, {"mail": 2.0}).horizon() == MINUTE


def test_a_channel_with_two_windows_obeys_both() -> None:
    limiter = Limiter({"feishu": ((5, 1.0), (100, 60.0))})
    now, times = 0.0, []
    for _ in range(1800):  # one try every 0.1 s for three minutes
        if limiter.admit("feishu", (), now):
            times.append(now)
        now += 0.1
    for i, t in enumerate(times):  # any 60 s span: at most 100; any 1 s span: at most 5
        assert sum(1 for u in times[i:] if u < t + 60.0 - 1e-9) <= 100
        assert sum(1 for u in times[i:] if u < t + 1.0 - 1e-9) <= 5
    assert len(times) >= 290  # yet it sends what the minute window allows


def test_a_notification_round_trips_through_its_stored_form(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    n = Notification(
        incident,
        Transition.LEVEL_CHANGED,
        "mail",
        ("a@example.com",),
        key="k",
        previous_level=Level.MINOR,
        alerts=("x",),
        team="tier1",
        url="http://u",
    )
    assert load_notification(dump_notification(n)) == n


async def test_an_intent_is_stored_once_per_idempotency_key(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    clock = FakeClock()
    d = delivery_for(db, {}, clock)
    with d.store.transaction():
        assert d.store.enqueue([note(incident, "mail")], clock.now()) == 1
        assert d.store.enqueue([note(incident, "mail")], clock.now()) == 0
    assert d.store.counts() == {"pending": 1}


async def test_storm_is_the_limit_plus_one_digest_never_a_drop(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    robot = Channel("robot")
    incidents = open_incidents(db, 57)
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter({"robot": ((20, 60.0),)}))
    commit(d, [note(i, "robot") for i in incidents], clock)
    await d.settle()
    assert len(robot.sent) == 20
    assert d.store.counts() == {"delivered": 20, "held": 37}
    clock.advance(MINUTE - 1.0)  # 20 a minute: nothing more within the minute (and margin)
    await d.settle()
    assert len(robot.sent) == 20
    clock.advance(1.0)
    await d.settle()
    assert len(robot.sent) == 21
    digest = robot.sent[-1]
    assert len(digest.digest) == 37
    # a list, not one page: it read as the newest incident's page alone (user test)
    assert render.subject(digest) == (
        "[digest of 37] held by a rate limit: #21 [P2] opened major: cpu high on h20 and 36 more"
    )
    assert "#21 [P2] opened major: cpu high on h20" in render.text_body(digest)
    # the short form (SMS, IM) names the incidents too, not only the latest (user test)
    short = render.short_text(digest).splitlines()
    assert short[0] == "[digest of 37] held by a rate limit:"
    assert short[1] == "#21 [P2] opened major: cpu high on h20"
    assert short[10] == "#30 [P2] opened major: cpu high on h29"
    assert short[11] == "... and 27 more"
    for incident in incidents[20:]:  # every held incident's timeline says how it went out
        lines = timeline(db, incident.id)
        assert "held by the rate limit" in lines[0]
        assert lines[-1].endswith("in a digest of 37: sent")
    clock.advance(MINUTE)
    await d.settle()
    assert len(robot.sent) == 21  # nothing held: no empty digest
    assert d.store.counts() == {"delivered": 21, "digested": 37}


async def test_per_recipient_limit_holds_only_the_busy_person(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    mail = Channel("mail")
    incidents = open_incidents(db, 5)
    d = delivery_for(db, {"mail": mail}, clock, limiter=Limiter({}, {"mail": 2.0}))
    commit(d, [note(i, "mail", ("wang@example.com",)) for i in incidents], clock)
    await d.settle()
    assert len(mail.sent) == 2
    clock.advance(MINUTE)
    await d.settle()
    assert len(mail.sent) == 3
    assert mail.sent[-1].recipients == ("wang@example.com",)
    assert len(mail.sent[-1].digest) == 3


async def test_a_retry_never_waits_past_max_backoff(db) -> None:  # type: ignore[no-untyped-def]
    # user-test finding: "retrying in 6s" with max_backoff 5s (the jitter went on top)
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [fail(True)] * 12)
    settings = DeliverySettings(backoff=1.0, max_backoff=5.0, max_age=3600.0)
    d = delivery_for(db, {"mail": mail}, clock, settings=settings)
    commit(d, [note(incident, "mail", ("a@example.com",))], clock)
    await d.settle()
    delays = []
    for _ in range(10):  # each failure's delay: when the retry is due, from the attempt
        (next_at,) = db.execute("SELECT next_at FROM outbox").fetchone()
        delays.append(next_at - clock.now())
        clock.advance(delays[-1])
        await d.settle()
    assert len(mail.attempts) == 11
    assert max(delays) <= 5.0
    assert len({round(x, 3) for x in delays[4:]}) > 1  # at the cap, still spread


async def test_retryable_failures_back_off_then_deliver_once(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [fail(True), fail(True, ambiguous=True)])
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=10.0))
    n = note(incident, "mail", ("a@example.com",))
    commit(d, [n], clock)
    await d.settle()
    assert len(mail.attempts) == 1
    clock.advance(7.0)  # the first retry waits 8-10 s (10 s less up to 20 %): not yet
    await d.settle()
    assert len(mail.attempts) == 1
    clock.advance(3.0)
    await d.settle()
    assert len(mail.attempts) == 2
    clock.advance(20.0)  # the second waits 16-20 s
    await d.settle()
    assert len(mail.sent) == 1
    assert attempts(db, n.key) == ["retryable", "ambiguous", "ok"]
    # the delivery's line on the incident's timeline: what, via which channel, to whom, how
    assert timeline(db, incident.id)[-1] == "opened via mail to a@example.com: sent (attempt 3)"
    # an ambiguous attempt says so there too (user test: only "failed (...)" showed)
    (second,) = [line for line in timeline(db, incident.id) if "attempt 2" in line]
    assert "ambiguous, it may have reached the provider: attempt 2 failed" in second
    assert d.store.counts() == {"delivered": 1}


async def test_a_restart_remembers_what_the_window_has_sent_already(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 8)
    limits = {"robot": ((5, 60.0),)}
    robot = Channel("robot")
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter(dict(limits)))
    commit(d, [note(i, "robot") for i in incidents[:5]], clock)
    await d.settle()
    assert len(robot.sent) == 5  # the minute's five
    clock.advance(10.0)
    again = delivery_for(db, {"robot": robot}, clock, limiter=Limiter(dict(limits)))
    again.recover()  # a restart: a new worker, its windows empty until it reads the outbox
    commit(again, [note(i, "robot") for i in incidents[5:]], clock)
    await again.settle()
    assert len(robot.sent) == 5  # held: the provider saw five in the last 10 s
    clock.advance(MINUTE - 10.0)  # a minute (and the margin) after the five
    await again.settle()
    assert len(robot.sent) == 6
    assert len(robot.sent[-1].digest) == 3


async def test_a_restart_counts_refused_sends_too(db) -> None:  # type: ignore[no-untyped-def]
    # verification finding: only sent and ambiguous attempts were read back, but a robot
    # counts the messages it refused (a missing keyword) against its limit as well
    clock = FakeClock()
    incidents = open_incidents(db, 8)
    limits = {"robot": ((5, 60.0),)}
    robot = Channel("robot", [fail(False)] * 5)
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter(dict(limits)))
    commit(d, [note(i, "robot") for i in incidents[:5]], clock)
    await d.settle()
    assert len(robot.attempts) == 5  # the minute's five, all refused
    clock.advance(10.0)
    again = delivery_for(db, {"robot": robot}, clock, limiter=Limiter(dict(limits)))
    again.recover()
    commit(again, [note(i, "robot") for i in incidents[5:]], clock)
    await again.settle()
    assert len(robot.attempts) == 5  # held: the robot saw five in the last 10 s


async def test_retry_after_is_honoured(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    robot = Channel("robot", [fail(True, retry_after=120.0)])
    d = delivery_for(db, {"robot": robot}, clock, settings=DeliverySettings(backoff=1.0))
    commit(d, [note(incident, "robot")], clock)
    await d.settle()
    clock.advance(100.0)  # well past the backoff, not past Retry-After
    await d.settle()
    assert len(robot.attempts) == 1
    clock.advance(21.0)
    await d.settle()
    assert len(robot.attempts) == 2
    assert d.store.counts() == {"delivered": 1}


async def test_a_retry_after_past_max_age_fails_over_now_not_after_the_wait(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    robot, log = Channel("robot", [fail(True, retry_after=3600.0)]), Channel("log")
    settings = DeliverySettings(backoff=1.0, max_age=20.0)
    d = delivery_for(
        db,
        {"robot": robot, "log": log},
        clock,
        settings=settings,
        failover=lambda n, failed, why: [replace(n, channel="log")],
    )
    commit(d, [note(incident, "robot")], clock)
    await d.settle()
    await d.settle()
    assert len(robot.attempts) == 1
    assert len(log.sent) == 1  # at once: not an hour later
    assert "asks to wait 3600s, past delivery.max_age" in "\n".join(timeline(db, incident.id))


CHANNELS = ChannelsFile.model_validate(
    {
        "channels": {
            "sms": {"type": "log"},
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "from": "alertd@example.com",
                "starttls": False,
            },
            "log": {"type": "log"},
        },
        "teams": {
            "tier1": {
                "members": [
                    {"name": "Wang", "email": "wang@example.com"},
                    {"name": "Li", "email": "li@example.com"},
                ],
                "channels": ["mail"],
            }
        },
        "failover": {"mail": "log"},
        "routes": [{"notify": ["tier1"]}],
    }
)


async def test_a_permanent_failure_fails_over_and_is_recorded(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail, log = Channel("mail", [fail(False)]), Channel("log")
    d = delivery_for(
        db,
        {"mail": mail, "log": log},
        clock,
        failover=lambda n, failed, why: failover_for(n, failed, why, CHANNELS),
    )
    (n,) = notifications_for(incident, Transition.OPENED, CHANNELS, clock.now())
    assert n.recipients == ("wang@example.com", "li@example.com")
    assert n.team == "tier1"
    commit(d, [n], clock)
    await d.settle()
    assert len(mail.attempts) == 1  # permanent: no retry
    assert len(log.sent) == 1
    assert attempts(db, n.key) == ["permanent"]
    lines = timeline(db, incident.id)
    assert any("failed (server_error)" in line for line in lines)
    assert any("failing over to log" in line for line in lines)
    assert lines[-1].startswith("opened via log")
    assert d.store.counts() == {"failed": 1, "delivered": 1}
    assert given_up(d, "mail", "server_error") == 1  # one notification, failed for good
    assert given_up(d, "log", "server_error") is None


async def test_retries_that_outlive_max_age_fail_over(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [fail(True)] * 10)
    log = Channel("log")
    d = delivery_for(
        db,
        {"mail": mail, "log": log},
        clock,
        settings=DeliverySettings(backoff=10.0, max_age=60.0),
        failover=lambda n, failed, why: failover_for(n, failed, why, CHANNELS),
    )
    commit(d, notifications_for(incident, Transition.OPENED, CHANNELS, clock.now()), clock)
    for _ in range(10):
        await d.settle()
        clock.advance(30.0)
    assert 2 <= len(mail.attempts) <= 4
    assert len(log.sent) == 1
    assert any("gave up after" in line for line in timeline(db, incident.id))
    assert given_up(d, "mail", "server_error") == 1  # however many attempts it took
    failed = d.metrics.registry.get_sample_value(
        "alertd_notifications_failed_total", {"channel": "mail", "reason": "server_error"}
    )
    assert failed == len(mail.attempts)


def given_up(d: Delivery, channel: str, reason: str) -> float | None:
    return d.metrics.registry.get_sample_value(
        "alertd_notifications_given_up_total", {"channel": channel, "reason": reason}
    )


async def test_refused_recipients_are_handled_one_by_one(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    refused = Sent(refused=(("li@example.com", "550 no such user"),))
    mail = Channel("mail", [lambda n: refused])
    log = Channel("log")
    d = delivery_for(
        db,
        {"mail": mail, "log": log},
        clock,
        failover=lambda n, failed, why: failover_for(n, failed, why, CHANNELS),
    )
    commit(d, notifications_for(incident, Transition.OPENED, CHANNELS, clock.now()), clock)
    await d.settle()
    assert len(mail.sent) == 1
    assert len(log.sent) == 1  # only Li's part failed over
    assert any("failed for li@example.com: failing over to log" in x for x in timeline(db, 1))


async def test_a_temporarily_refused_recipient_is_retried_alone(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail", [lambda n: Sent(refused=(("li@example.com", "451 try later"),))])
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=5.0))
    commit(d, [note(incident, "mail", ("wang@example.com", "li@example.com"))], clock)
    await d.settle()
    clock.advance(6.0)
    await d.settle()
    assert [n.recipients for n in mail.sent] == [
        ("wang@example.com", "li@example.com"),
        ("li@example.com",),
    ]


async def test_intents_in_flight_at_a_crash_are_sent_again_as_ambiguous(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 3)
    store = OutboxStore(db)
    with store.transaction():
        store.enqueue([note(i, "mail") for i in incidents], clock.now())
        due = store.due(clock.now(), 10)
        store.mark_sending(due[:2], clock.now())  # the crash came with two sends in flight
    mail = Channel("mail")
    d = delivery_for(db, {"mail": mail}, clock)
    assert d.recover() == 2
    await d.settle()
    assert sorted(n.incident.id for n in mail.sent) == [1, 2, 3]
    assert attempts(db, note(incidents[0], "mail").key) == ["ambiguous", "ok"]
    assert attempts(db, note(incidents[2], "mail").key) == ["ok"]
    assert "in flight when alertd stopped" in timeline(db, 1)[0]


class Stalled(Channel):
    """A provider that never answers the first ``stalls`` sends."""

    def __init__(self, name: str, stalls: int) -> None:
        super().__init__(name)
        self.stalls = stalls

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        if len(self.attempts) <= self.stalls:
            await asyncio.Event().wait()  # forever, until cancelled
        self.sent.append(n)
        return None


async def test_a_send_past_send_timeout_is_ambiguous_and_retried_and_others_go_on(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 3)
    robot = Stalled("robot", stalls=2)
    settings = DeliverySettings(send_timeout=0.2, backoff=10.0)
    d = delivery_for(db, {"robot": robot}, clock, settings=settings)
    commit(d, [note(i, "robot") for i in incidents], clock)
    await d.settle()
    assert len(robot.attempts) == 3
    assert len(robot.sent) == 1  # the third was not held up by the two stalled
    first = note(incidents[0], "robot").key
    assert attempts(db, first) == ["ambiguous"]
    assert "no answer in 0.2s" in timeline(db, incidents[0].id)[-1]
    assert d.store.counts() == {"pending": 2, "delivered": 1}
    clock.advance(13.0)  # the retry (10 s +-20 %) answers
    await d.settle()
    assert attempts(db, first) == ["ambiguous", "ok"]
    assert d.store.counts() == {"delivered": 3}


async def test_stopping_cuts_a_stalled_send_off_without_an_outcome(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    robot = Stalled("robot", stalls=1)
    d = delivery_for(db, {"robot": robot}, clock, settings=DeliverySettings(send_timeout=30.0))
    commit(d, [note(incident, "robot")], clock)
    d.pump()
    await asyncio.sleep(0.05)
    await d.stop(drain_seconds=0.1)
    assert attempts(db, note(incident, "robot").key) == []  # not a timeout: cut off
    assert d.store.counts() == {"sending": 1}  # sent again (ambiguous) on the next start


class Queued(Channel):
    """A provider whose sends never get a connection (``written``: get one, write, and never
    hear back), saying so as the HTTP pool does."""

    def __init__(self, name: str, written: bool) -> None:
        super().__init__(name)
        self.written = written

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        nothing_written_yet(True)
        if self.written:
            nothing_written_yet(False)
        await asyncio.Event().wait()  # forever, until cancelled
        return None


async def test_a_send_stopped_before_it_wrote_anything_is_pending_not_ambiguous(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    written, queued = open_incidents(db, 2)
    hook, chat = Queued("hook", written=True), Queued("chat", written=False)
    d = delivery_for(db, {"hook": hook, "chat": chat}, clock)
    commit(d, [note(written, "hook"), note(queued, "chat")], clock)
    d.pump()
    await asyncio.sleep(0.05)
    await d.stop(drain_seconds=0.05)
    assert attempts(db, note(written, "hook").key) == []  # may have arrived: stays sending
    assert attempts(db, note(queued, "chat").key) == ["retryable"]
    assert "not sent: alertd stopped before it was written" in timeline(db, queued.id)[-1]
    assert d.store.counts() == {"sending": 1, "pending": 1}
    again = delivery_for(db, {"hook": Channel("hook"), "chat": Channel("chat")}, clock)
    assert again.recover() == 1  # only the written one is sent again as ambiguous
    await again.settle()
    assert attempts(db, note(written, "hook").key) == ["ambiguous", "ok"]
    assert attempts(db, note(queued, "chat").key) == ["retryable", "ok"]


async def test_a_send_does_not_inherit_not_written_yet_from_the_task_that_started_it(db) -> None:  # type: ignore[no-untyped-def]
    # tasks copy their creator's context: a send started by a task that had waited for a
    # connection itself must not count as surely unsent when a stop cuts it short
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Stalled("mail", stalls=1)  # writes, then never hears back; never sets the flag
    d = delivery_for(db, {"mail": mail}, clock)
    commit(d, [note(incident, "mail")], clock)
    nothing_written_yet(True)  # this (the starting) task's own context
    d.pump()
    await asyncio.sleep(0.05)
    await d.stop(drain_seconds=0.05)
    assert len(mail.attempts) == 1
    assert attempts(db, note(incident, "mail").key) == []  # may have arrived: stays sending
    assert d.store.counts() == {"sending": 1}


async def test_a_send_that_never_got_a_connection_in_send_timeout_is_not_ambiguous(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    chat = Queued("chat", written=False)
    settings = DeliverySettings(send_timeout=0.1, backoff=100.0)
    d = delivery_for(db, {"chat": chat}, clock, settings=settings)
    commit(d, [note(incident, "chat")], clock)
    await d.settle()
    assert attempts(db, note(incident, "chat").key) == ["retryable"]
    assert "not sent in 0.1s: never written" in timeline(db, incident.id)[-1]
    assert d.store.counts() == {"pending": 1}


@pytest.mark.both_loops
async def test_a_send_created_just_before_the_loop_stalls_still_runs_and_records(db) -> None:  # type: ignore[no-untyped-def]
    # uvloop runs due timers before new tasks: a deadline counted from the task's creation
    # had the watchdog cancel B unstarted after a stall, leaving it ``sending`` for good
    clock = FakeClock()
    a, b = open_incidents(db, 2)
    robot = Stalled("robot", stalls=1)
    settings = DeliverySettings(send_timeout=0.2, backoff=100.0)
    d = delivery_for(db, {"robot": robot}, clock, settings=settings)
    commit(d, [note(a, "robot")], clock)
    d.pump()
    await asyncio.sleep(0.05)  # A stalls in flight; the watchdog waits for its deadline
    commit(d, [note(b, "robot")], clock)
    d.pump()  # B's task is created...
    time.sleep(0.3)  # noqa: ASYNC251  # on purpose: the loop blocked past both deadlines
    await d.settle()
    assert attempts(db, note(a, "robot").key) == ["ambiguous"]
    assert attempts(db, note(b, "robot").key) == ["ok"]
    assert d.store.counts() == {"delivered": 1, "pending": 1}


async def test_a_channels_own_timeout_is_ambiguous_and_retried(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)

    def slow(n: Notification) -> Sent | None:
        raise TimeoutError("read timed out")

    mail = Channel("mail", [slow])
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=10.0))
    commit(d, [note(incident, "mail")], clock)
    await d.settle()
    assert attempts(db, note(incident, "mail").key) == ["ambiguous"]
    assert "timed out: read timed out" in timeline(db, incident.id)[-1]
    assert d.store.counts() == {"pending": 1}  # retried, not a permanent "internal error"


async def test_a_channel_removed_by_a_reload_fails_its_intents(  # type: ignore[no-untyped-def]
    db, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    direct, teamed = open_incidents(db, 2)
    d = delivery_for(db, {}, clock)
    commit(d, [note(direct, "gone"), note(teamed, "gone", team="ops")], clock)
    clock.advance(UNCONFIGURED_GRACE)  # committed before the reload that removed it
    await d.settle()
    assert d.store.counts() == {"failed": 2}
    assert "no longer configured" in timeline(db, direct.id)[-1]
    # the log says where each page went (user test: a page routed to the channel itself was
    # said to go to "the team's channels", and went nowhere)
    assert (
        f"incident #{direct.id}: channel gone is no longer configured; its page was routed to "
        "the channel itself, not to a team, so it goes nowhere else"
    ) in caplog.text
    assert (
        f"incident #{teamed.id}: channel gone is no longer configured; its page goes to the "
        "team's channels now"
    ) in caplog.text


async def test_a_page_for_a_channel_this_worker_does_not_know_yet_waits_for_it(db) -> None:  # type: ignore[no-untyped-def]
    # a reload adds a channel: the daemon applies it and commits a page for it a moment
    # before this worker reads the new config: the page is tried again soon, not failed
    # over, not backed off (backoff 30s here), and not counted as a failure
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    d = delivery_for(db, {}, clock, settings=DeliverySettings(backoff=30.0))
    commit(d, [note(incident, "new")], clock)
    await d.settle()
    clock.advance(UNCONFIGURED_RETRY)
    await d.settle()  # still unknown: tried again, quietly
    key = note(incident, "new").key
    assert attempts(db, key) == ["retryable", "retryable"]
    lines = [line for line in timeline(db, incident.id) if "via new" in line]
    assert len(lines) == 1
    assert "channel new is not configured here yet" in lines[0]
    assert d.store.next_due_at() == clock.now() + UNCONFIGURED_RETRY
    failed = d.metrics.registry.get_sample_value(
        "alertd_notifications_failed_total", {"channel": "new", "reason": "unconfigured"}
    )
    assert failed is None  # nothing failed: it was not sent yet
    new = Channel("new")
    d.notifiers = {"new": new}  # the worker's reload
    clock.advance(UNCONFIGURED_RETRY)
    await d.settle()
    assert attempts(db, key) == ["retryable", "retryable", "ok"]
    assert len(new.sent) == 1
    assert d.store.counts() == {"delivered": 1}


async def test_a_page_for_a_removed_channel_fails_over_at_the_first_try_after_the_grace(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    d = delivery_for(db, {}, clock, settings=DeliverySettings(backoff=30.0))
    commit(d, [note(incident, "gone")], clock)
    tries = 0
    while d.store.counts() != {"failed": 1} and tries < 100:
        await d.settle()
        clock.advance(UNCONFIGURED_RETRY)
        tries += 1
    key = note(incident, "gone").key
    outcomes = attempts(db, key)
    assert outcomes[-1] == "permanent"
    assert outcomes[:-1] == ["retryable"] * int(UNCONFIGURED_GRACE / UNCONFIGURED_RETRY)
    lines = [line for line in timeline(db, incident.id) if "via gone" in line]
    assert len(lines) == 2  # the first try and the failure, not every try in between
    assert "no longer configured" in lines[-1]


async def test_a_removed_channels_intents_fail_over_while_another_channel_is_full(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 4)
    mail = Stalled("mail", stalls=10)
    settings = DeliverySettings(max_in_flight=2, send_timeout=30.0)
    d = delivery_for(db, {"mail": mail}, clock, settings=settings)
    commit(d, [note(i, "mail") for i in incidents[:3]], clock)
    commit(d, [note(incidents[3], "gone")], clock)  # a reload removed "gone"
    clock.advance(UNCONFIGURED_GRACE)
    task = asyncio.create_task(d.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if d.store.counts().get("failed"):
                break
        assert len(mail.attempts) == 2  # mail is full, its third intent waits for room
        assert d.store.counts() == {"sending": 2, "pending": 1, "failed": 1}
        assert "no longer configured" in timeline(db, incidents[3].id)[-1]
    finally:
        await d.stop(drain_seconds=0.01)
        await task


def test_channels_with_intents_lists_each_channel_with_work_left_once(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    store = OutboxStore(db)
    incidents = open_incidents(db, 6)
    channels = ["sms", "mail", "sms", "chat", "mail", "mail"]
    with store.transaction():
        store.enqueue([note(i, c) for i, c in zip(incidents, channels, strict=True)], clock.now())
    assert store.channels_with_intents() == ["chat", "mail", "sms"]
    with store.transaction():
        (chat,) = store.due_on("chat", clock.now(), 10)
        store.mark_sending([chat], clock.now())
    assert store.channels_with_intents() == ["chat", "mail", "sms"]  # in flight: not done
    with store.transaction():
        store.record([AttemptResult(chat, "ok", "sent", "delivered")], clock.now())
    assert store.channels_with_intents() == ["mail", "sms"]


def test_due_reads_at_most_each_channels_room_and_due_on_one_channel(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    store = OutboxStore(db)
    incidents = open_incidents(db, 5)
    channels = ["mail", "sms", "mail", "sms", "mail"]
    with store.transaction():
        store.enqueue([note(i, c) for i, c in zip(incidents, channels, strict=True)], clock.now())
    room = {"mail": 1, "sms": 5}
    due = store.due(clock.now(), 10, room.__getitem__)
    assert [i.notification.channel for i in due] == ["mail", "sms", "sms"]
    assert [i.notification.incident.id for i in store.due_on("mail", clock.now(), 2)] == [1, 3]
    assert store.due_on("sms", clock.now() - 1.0, 10) == []  # none due yet then
    assert store.next_due_at("sms") == clock.now()
    assert store.next_due_at("chat") is None


async def test_a_crashing_channel_is_a_permanent_failure_not_a_dead_worker(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 2)

    def boom(n: Notification) -> Sent | None:
        raise RuntimeError("bug")

    mail = Channel("mail", [boom])
    d = delivery_for(db, {"mail": mail}, clock)
    commit(d, [note(i, "mail") for i in incidents], clock)
    await d.settle()
    assert d.store.counts() == {"failed": 1, "delivered": 1}


async def test_finished_intents_are_purged_after_retention_and_timelines_stay(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 2)
    mail = Channel("mail")
    d = delivery_for(db, {"mail": mail}, clock)
    commit(d, [note(incidents[0], "mail")], clock)
    await d.settle()
    clock.advance(100.0)
    commit(d, [note(incidents[1], "mail")], clock)  # newer, and still pending
    with d.store.transaction():
        assert d.store.purge(clock.now() - 50.0) == 1
    assert d.store.counts() == {"pending": 1}
    assert timeline(db, incidents[0].id)[-1].endswith(": sent")


TWO_MAILS = ChannelsFile.model_validate(
    {
        "channels": {
            "mail": {"type": "email", "host": "a.example", "from": "alertd@example.com"},
            "mail2": {"type": "email", "host": "b.example", "from": "alertd@example.com"},
        },
        "teams": {
            "tier1": {
                "members": [
                    {"name": "Wang", "email": "wang@example.com"},
                    {"name": "Li", "email": "li@example.com"},
                ],
                "channels": ["mail"],
            }
        },
        "failover": {"mail": "mail2"},
        "routes": [{"notify": ["tier1"]}],
    }
)


async def test_each_refused_member_gets_their_own_fallback(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    both = Sent(refused=(("wang@example.com", "550 gone"), ("li@example.com", "550 gone")))
    mail, mail2 = Channel("mail", [lambda n: both]), Channel("mail2")
    d = delivery_for(
        db,
        {"mail": mail, "mail2": mail2},
        clock,
        failover=lambda n, failed, why: failover_for(n, failed, why, TWO_MAILS),
    )
    commit(d, notifications_for(incident, Transition.OPENED, TWO_MAILS, clock.now()), clock)
    await d.settle()
    assert sorted(n.recipients for n in mail2.sent) == [("li@example.com",), ("wang@example.com",)]


async def test_a_failing_failover_does_not_undo_the_other_outcomes(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 2)

    def broken(n: Notification, failed: tuple[str, ...], why: str) -> list[Notification]:
        raise RuntimeError("bug in a failover")

    mail = Channel("mail", [fail(False), lambda n: None])
    d = delivery_for(db, {"mail": mail}, clock, failover=broken)
    commit(d, [note(i, "mail") for i in incidents], clock)
    await d.settle()
    assert d.store.counts() == {"failed": 1, "delivered": 1}  # nothing stuck in "sending"


async def test_a_busy_recipient_is_held_alone_and_gets_their_own_digest(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 5)
    mail = Channel("mail")
    d = delivery_for(db, {"mail": mail}, clock, limiter=Limiter({}, {"mail": 2.0}))
    wang, li = "wang@example.com", "li@example.com"
    notes = [note(i, "mail", (wang,)) for i in incidents[:3]]  # the third is over Wang's limit
    notes.append(note(incidents[3], "mail", (li,)))
    notes.append(note(incidents[4], "mail", (wang, li)))  # Li's part goes, Wang's waits
    commit(d, notes, clock)
    await d.settle()
    assert [n.recipients for n in mail.sent] == [(wang,), (wang,), (li,), (li,)]
    clock.advance(MINUTE)
    await d.settle()
    digest = mail.sent[-1]
    assert digest.recipients == (wang,)  # Wang's digest goes to Wang alone
    assert len(digest.digest) == 2
    assert len(mail.sent) == 5
    assert all(wang not in n.recipients or n.recipients == (wang,) for n in mail.sent)
    assert d.store.counts() == {"delivered": 5, "digested": 2}


async def test_a_channel_that_is_not_configured_says_so_on_the_timeline(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    d = delivery_for(db, {}, clock)
    d.notifiers = {"mail": LogInstead("mail", "is not configured (email: no host)")}
    commit(d, [note(incident, "mail", ("a@example.com",))], clock)
    await d.settle()
    assert timeline(db, incident.id)[-1] == (
        "opened via mail to a@example.com: sent (to the log instead: the channel is not "
        "configured (email: no host))"
    )


def test_backlog_counts_due_pending_intents_up_to_a_cap(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    store = OutboxStore(db)
    incidents = open_incidents(db, 5)
    with store.transaction():
        store.enqueue([note(i, "mail") for i in incidents], clock.now())
    assert store.backlog(clock.now(), 100) == 5
    assert store.backlog(clock.now(), 3) == 3  # no further than asked
    assert store.backlog(clock.now() - 1.0, 100) == 0  # none due yet then
    with store.transaction():
        store.mark_sending(store.due(clock.now(), 2), clock.now())
    assert store.backlog(clock.now(), 100) == 3  # in flight is not behind


def test_the_oldest_unsent_intent_is_waiting_in_flight_or_held_never_finished(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    store = OutboxStore(db)
    assert store.oldest_unsent() is None
    first, second, third = open_incidents(db, 3)
    with store.transaction():
        store.enqueue([note(first, "mail")], clock.now())
    born = clock.now()
    clock.advance(10.0)
    with store.transaction():
        store.enqueue([note(second, "mail"), note(third, "mail")], clock.now())
    (oldest,) = store.due(born, 10)
    with store.transaction():
        store.mark_sending([oldest], clock.now())
    assert store.oldest_unsent() == born  # in flight: not delivered yet
    with store.transaction():
        store.hold([oldest], clock.now())
    assert store.oldest_unsent() == born  # held by a rate limit: not sent yet
    with store.transaction():
        store.record([AttemptResult(oldest, "ok", "sent", "delivered")], clock.now())
    assert store.oldest_unsent() == born + 10.0  # the next ones
    later = store.due(clock.now(), 10)
    with store.transaction():
        store.record(
            [AttemptResult(i, "permanent", "failed", "failed") for i in later], clock.now()
        )
    assert store.oldest_unsent() is None  # given up is finished too


class Counting(Channel):
    """A provider that answers after ``delay`` seconds; counts its sends in flight, and with
    every channel sharing ``together``, all of theirs."""

    def __init__(self, name: str, delay: float, together: Counter[str]) -> None:
        super().__init__(name)
        self.delay = delay
        self.together = together

    async def send(self, n: Notification) -> Sent | None:
        self.attempts.append(n)
        t = self.together
        t[self.name] += 1
        t["all"] += 1
        t[f"most {self.name}"] = max(t[f"most {self.name}"], t[self.name])
        t["most all"] = max(t["most all"], t["all"])
        try:
            await asyncio.sleep(self.delay)
        finally:
            t[self.name] -= 1
            t["all"] -= 1
        self.sent.append(n)
        return None


async def test_a_stalled_channel_holds_up_only_its_own_intents(db) -> None:  # type: ignore[no-untyped-def]
    # every slot a channel may use is hung on a provider that never answers: the other
    # channel's pages, committed after its backlog, still go out at once
    clock = FakeClock()
    incidents = open_incidents(db, 13)
    mail = Stalled("mail", stalls=10)
    sms = Channel("sms")
    settings = DeliverySettings(max_in_flight=4, send_timeout=30.0)
    d = delivery_for(db, {"mail": mail, "sms": sms}, clock, settings=settings)
    commit(d, [note(i, "mail") for i in incidents[:10]], clock)
    task = asyncio.create_task(d.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(mail.attempts) == 4:
                break
        assert len(mail.attempts) == 4  # the channel's own limit: no more than 4 hung
        commit(d, [note(i, "sms") for i in incidents[10:]], clock)
        d.wake()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(sms.sent) == 3:
                break
        assert len(sms.sent) == 3
        assert len(mail.attempts) == 4  # and mail's backlog still waits for its own room
        assert d.store.counts() == {"sending": 4, "pending": 6, "delivered": 3}
    finally:
        await d.stop(drain_seconds=0.01)
        await task


async def test_max_in_flight_bounds_each_channel_not_all_together(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    incidents = open_incidents(db, 40)
    together: Counter[str] = Counter()
    mail, sms = Counting("mail", 0.02, together), Counting("sms", 0.02, together)
    settings = DeliverySettings(max_in_flight=5)
    d = delivery_for(db, {"mail": mail, "sms": sms}, clock, settings=settings)
    commit(d, [note(i, "mail") for i in incidents[:20]], clock)
    commit(d, [note(i, "sms") for i in incidents[20:]], clock)
    task = asyncio.create_task(d.run())  # as the worker drives it (``settle`` goes in waves)
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(mail.sent) + len(sms.sent) == 40:
                break
    finally:
        await d.stop(drain_seconds=1.0)
        await task
    assert (len(mail.sent), len(sms.sent)) == (20, 20)
    assert (together["most mail"], together["most sms"]) == (5, 5)  # each up to its limit
    assert together["most all"] == 10  # at the same time: not 5 for both together
    assert d.store.counts() == {"delivered": 40}


def test_a_batch_with_an_intent_committed_before_stores_each_body_once(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    first, second = open_incidents(db, 2)
    store = OutboxStore(db)
    with store.transaction():
        assert store.enqueue([note(first, "mail")], clock.now()) == 1
    with store.transaction():  # the first again (same key), and a new one
        assert store.enqueue([note(first, "mail"), note(second, "mail")], clock.now()) == 1
    due = store.due(clock.now(), 10)
    assert [i.notification for i in due] == [note(first, "mail"), note(second, "mail")]
    assert db.execute("SELECT COUNT(*) FROM outbox_body").fetchone() == (2,)


def test_a_digest_line_says_a_resolve_was_by_hand(db) -> None:  # type: ignore[no-untyped-def]
    # verification finding: a digest of resolves by zhao and li read as two recoveries
    from alertd.notify.delivery import _line

    (incident,) = open_incidents(db, 1)
    closed = replace(incident, state=IncidentState.RESOLVED, resolved_at=1.0, resolved_by="zhao")
    assert _line(Notification(closed, Transition.RESOLVED, "robot")) == (
        "#1 [P2] resolved by hand (zhao) major: cpu high on h0"
    )
    recovered = replace(closed, resolved_by=None)
    assert _line(Notification(recovered, Transition.RESOLVED, "robot")) == (
        "#1 [P2] resolved major: cpu high on h0"
    )


def test_outbox_gauges_show_a_drained_state_as_0_not_its_last_count() -> None:
    metrics = Metrics(CollectorRegistry())

    def gauge(state: str) -> float | None:
        return metrics.registry.get_sample_value("alertd_outbox_intents", {"state": state})

    metrics.set_outbox_counts({"pending": 300, "delivered": 26}, OUTBOX_STATES)
    assert (gauge("pending"), gauge("delivered"), gauge("held")) == (300, 26, 0)
    metrics.set_outbox_counts({"delivered": 326}, OUTBOX_STATES)  # the storm went out
    assert (gauge("pending"), gauge("delivered")) == (0, 326)
    metrics.set_outbox_counts({"delivered": 1, "odd": 2}, ())  # a state it does not know
    assert gauge("odd") == 2


def test_metrics_have_no_created_series_and_each_channel_shows_every_outcome() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.init_channels(["mail"])
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    for outcome in ("ok", "retryable", "permanent", "ambiguous"):
        line = f'alertd_notification_attempts_total{{channel="mail",outcome="{outcome}"}} 0.0'
        assert line in text


async def test_a_failing_channel_logs_its_retries_once_a_minute_not_once_each(  # type: ignore[no-untyped-def]
    db, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    incidents = open_incidents(db, 20)
    mail = Channel("mail", [fail(True)] * 100)
    d = delivery_for(db, {"mail": mail}, clock, settings=DeliverySettings(backoff=1.0))
    commit(d, [note(i, "mail") for i in incidents], clock)

    def retry_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "failed, retrying" in r.getMessage() and r.levelno >= logging.WARNING
        ]

    with caplog.at_level(logging.DEBUG, logger="alertd.notify.delivery"):
        await d.settle()
        assert len(mail.attempts) == 20
        assert len(retry_lines()) == 1  # the first says what is wrong
        assert "more such retries" not in retry_lines()[0]
        clock.advance(61.0)  # every retry is due again, and a minute has passed
        await d.settle()
        assert len(mail.attempts) == 40
        lines = retry_lines()
        assert len(lines) == 2
        assert "and 19 more such retries on mail since the last line" in lines[1]
    # each attempt still has its line on its incident's timeline
    assert all(len(timeline(db, i.id)) >= 2 for i in incidents)


def test_repeats_counts_what_it_leaves_out_per_kind() -> None:
    now = [0.0]
    repeats = Repeats(60.0, lambda: now[0])
    assert repeats.note("a") == 0
    assert [repeats.note("a") for _ in range(5)] == [None] * 5
    assert repeats.note("b") == 0  # another kind has its own line
    now[0] = 60.0
    assert repeats.note("a") == 5
    assert repeats.note("a") is None
    now[0] = 200.0
    assert repeats.note("a") == 1
    assert repeats.note("b") == 0


def test_metrics_say_the_version_the_process_and_every_place_errors_are_counted() -> None:
    metrics = Metrics(CollectorRegistry())
    text = generate_latest(metrics.registry).decode()
    assert 'alertd_build_info{version="' in text
    assert "process_start_time_seconds " in text  # a crash loop shows as restarts
    for where in ("evaluation", "ingest", "deadline", "trap", "retention", "kpis"):
        assert f'alertd_errors_total{{where="{where}"}} 0.0' in text


@pytest.mark.parametrize(
    ("error", "one_line"),
    [(sqlite3.OperationalError("database is locked"), True), (KeyError("no_such_column"), False)],
)
async def test_outcomes_not_recorded_are_counted_logged_once_and_kept(  # type: ignore[no-untyped-def]
    db,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    one_line: bool,
) -> None:
    clock = FakeClock()
    (incident,) = open_incidents(db, 1)
    mail = Channel("mail")
    d = delivery_for(db, {"mail": mail}, clock)
    commit(d, [note(incident, "mail")], clock)
    record = d.store.record
    failures = iter(range(3))

    def failing(results, now):  # type: ignore[no-untyped-def]
        if next(failures, None) is not None:
            raise error
        record(results, now)

    monkeypatch.setattr(d.store, "record", failing)
    d.pump()
    await asyncio.wait(list(d._in_flight))
    for _ in range(4):
        d.flush()
    assert len(mail.sent) == 1
    assert attempts(db, note(incident, "mail").key) == ["ok"]  # kept, then recorded once
    errors = d.metrics.registry.get_sample_value("alertd_errors_total", {"where": "delivery"})
    assert errors == 3
    (line,) = [r for r in caplog.records if "could not record" in r.getMessage()]  # then quiet
    if one_line:  # a refusal is no bug: what the database said, no traceback
        assert "the state database refused: database is locked" in line.getMessage()
        assert line.exc_info is None
    else:  # the stack says where the bug is
        assert line.exc_info is not None


async def test_one_held_page_goes_out_as_itself_not_as_a_digest_of_one(db) -> None:  # type: ignore[no-untyped-def]
    """Admin user test: two channels on one Slack webhook (one limit) sent "[digest of 1]
    held by a rate limit: #16 ..." instead of the page."""
    clock = FakeClock()
    robot = Channel("robot")
    first, second = open_incidents(db, 2)
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter({"robot": ((1, 60.0),)}))
    commit(d, [note(first, "robot"), note(second, "robot")], clock)
    await d.settle()
    assert d.store.counts() == {"delivered": 1, "held": 1}
    clock.advance(MINUTE)
    await d.settle()
    page = robot.sent[-1]
    assert (page.incident.id, page.digest) == (second.id, ())
    assert d.store.counts() == {"delivered": 2}
    lines = timeline(db, second.id)
    assert "held by the rate limit" in lines[0]
    assert lines[-1].endswith(": sent")
    assert "digest" not in lines[-1]
