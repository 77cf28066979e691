"""Escalation on a fake clock and a real SQLite file: every path, and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.incidents.actions import acknowledge, resolve_by_hand, resolve_within
from alertd.incidents.escalation import resolved_by_hand_news
from alertd.incidents.manager import IncidentManager
from alertd.model import (
    AlertEvent,
    EventKind,
    Level,
    Notification,
    Transition,
    fingerprint,
    make_labels,
)
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

MIN = 60.0
LABELS = make_labels({"instance": "db1", "criticality": "high"})  # x major -> P2


def config(**route: Any) -> ChannelsFile:
    return ChannelsFile.model_validate(
        {
            "channels": {"log": {"type": "log"}, "pager": {"type": "log"}, "mail": {"type": "log"}},
            "teams": {
                "tier1": {"channels": ["pager"]},
                "tier2": {"channels": ["mail"]},
                "management": {"channels": ["mail", "log"]},
            },
            "priorities": {"targets": {"P2": {"respond_within": "30m", "resolve_within": "8h"}}},
            "routes": [
                {
                    "match": {"priority": ["P1", "P2"]},
                    "escalate": [
                        {"notify": ["tier1"]},
                        {"after": "15m", "notify": ["tier2"]},
                        {"after": "45m", "notify": ["management"]},
                    ],
                    **route,
                }
            ],
        }
    )


class Engine:
    """One daemon's view of the state file: a manager, its store, and a clock."""

    def __init__(self, state: Path, clock: FakeClock, channels: ChannelsFile) -> None:
        self.conn = connect(state)
        self.store = IncidentStore(self.conn)
        self.manager = IncidentManager(self.store, channels)
        self.clock = clock

    def fire(self, level: Level = Level.MAJOR) -> list[Notification]:
        event = AlertEvent(
            EventKind.FIRING,
            "disk",
            "disk_used",
            LABELS,
            level,
            None,
            97.0,
            "disk full",
            self.clock.now(),
            fingerprint("disk", LABELS),
        )
        with self.store.transaction():
            return self.manager.apply([event], self.clock.now())

    def tick(self) -> list[Notification]:
        with self.store.transaction():
            return self.manager.escalate(self.clock.now())

    def run_until(self, seconds: float, step: float = 30.0) -> list[Notification]:
        """Advance the clock in evaluation-cycle steps, collecting every page."""
        pages: list[Notification] = []
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            pages += self.tick()
        return pages


def who(pages: list[Notification]) -> list[tuple[str, str]]:
    return [(n.transition.value, n.channel) for n in pages]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_unacknowledged_incident_pages_tier2_at_15m_exactly_once(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())
    assert who(e.fire()) == [("opened", "pager")]  # tier-1 at once
    assert e.run_until(15 * MIN - 30) == []
    assert who(e.run_until(30)) == [("escalated", "mail")]  # t0+15m: tier-2, once
    assert e.run_until(29 * MIN) == []
    assert who(e.run_until(60)) == [("escalated", "mail"), ("escalated", "log")]  # t0+45m
    assert e.run_until(5 * 60 * MIN) == []  # no step after management: silence, no loop
    kinds = [t.kind for t in e.store.timeline(1)]
    assert kinds.count("escalated") == 2


def test_acknowledgement_stops_escalation(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())
    e.fire()
    e.run_until(10 * MIN)
    incident = e.store.get(1)
    assert incident is not None
    acknowledge(e.store, incident, "wang", None, clock.now(), how="cli")
    assert e.run_until(2 * 60 * MIN) == []  # tier-2 never paged


def test_acknowledged_but_not_resolved_in_time_escalates_once(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())
    e.fire()
    clock.advance(5 * MIN)
    incident = e.store.get(1)
    assert incident is not None
    acknowledge(e.store, incident, "wang", None, clock.now(), how="cli")
    assert e.run_until(8 * 60 * MIN - 5 * MIN - 60) == []
    pages = e.run_until(2 * MIN)  # P2 resolve_within 8h has passed: "tier-1 cannot solve it"
    assert who(pages) == [("escalated", "mail")]
    assert e.run_until(4 * 60 * MIN) == []  # once
    detail = [t.detail for t in e.store.timeline(1) if t.kind == "escalated"]
    assert detail == ["step 2: tier2 paged (not resolved within 8h)"]


def test_restart_before_the_deadline_still_pages_once_at_the_deadline(tmp_path, clock) -> None:
    first = Engine(tmp_path, clock, config())
    first.fire()
    assert first.run_until(10 * MIN) == []
    first.conn.close()  # the daemon stops at t0+10m

    second = Engine(tmp_path, clock, config())  # a new daemon on the same state file
    assert second.run_until(5 * MIN - 30) == []
    assert who(second.run_until(30)) == [("escalated", "mail")]  # t0+15m
    second.conn.close()

    third = Engine(tmp_path, clock, config())  # and another restart right after it fired
    assert third.run_until(10 * MIN) == []  # not fired twice


def test_repeat_repages_the_current_tier_while_unacknowledged(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config(repeat="5m"))
    e.fire()
    pages = e.run_until(15 * MIN)
    assert who(pages) == [("repeat", "pager"), ("repeat", "pager"), ("escalated", "mail")]
    assert who(e.run_until(5 * MIN)) == [("repeat", "mail")]  # now the current tier is tier-2


def test_resolved_incident_never_escalates(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config(repeat="5m"))
    e.fire()
    incident = e.store.get(1)
    assert incident is not None
    resolve_by_hand(e.store, incident, "wang", None, clock.now(), how="cli")
    assert e.run_until(60 * MIN) == []


def test_routes_must_escalate_later_and_later() -> None:
    with pytest.raises(ValueError, match="later and later"):
        config(
            escalate=[
                {"notify": ["tier1"]},
                {"after": "30m", "notify": ["tier2"]},
                {"after": "15m", "notify": ["management"]},
            ]
        )
    with pytest.raises(ValueError, match="exactly one of notify"):
        config(notify=["tier1"])


def test_escalation_notifications_render(tmp_path, clock) -> None:
    from alertd.notify import render

    e = Engine(tmp_path, clock, config())
    e.fire()
    (page,) = e.run_until(15 * MIN)
    assert page.transition is Transition.ESCALATED
    assert render.subject(page).startswith("[P2] ESCALATED #1 major")


def settings(**incidents: Any) -> ChannelsFile:
    base = config().model_dump(by_alias=True)
    base["incidents"] = incidents
    return ChannelsFile.model_validate(base)


def resolve_event(e: Engine) -> list[Notification]:
    event = AlertEvent(
        EventKind.RESOLVED,
        "disk",
        "disk_used",
        LABELS,
        None,
        Level.MAJOR,
        50.0,
        "disk ok",
        e.clock.now(),
        fingerprint("disk", LABELS),
    )
    with e.store.transaction():
        return e.manager.apply([event], e.clock.now())


def test_refire_within_the_reopen_window_reopens_the_same_incident(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, settings(reopen_within="10m"))
    e.fire()
    clock.advance(60)
    resolve_event(e)
    clock.advance(5 * MIN)
    assert who(e.fire()) == [("reopened", "pager")]
    (incident,) = e.store.find()
    assert incident.state.value == "open"
    assert [t.kind for t in e.store.timeline(incident.id)].count("reopened") == 1
    clock.advance(60)
    resolve_event(e)
    clock.advance(11 * MIN)  # outside the window: a new incident
    assert who(e.fire()) == [("opened", "pager")]
    assert len(e.store.find()) == 2


def test_lapsed_acknowledgement_lets_escalation_resume(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, settings(ack_expires_after="30m"))
    e.fire()
    incident = e.store.get(1)
    assert incident is not None
    acknowledge(e.store, incident, "wang", None, clock.now(), how="cli")
    assert e.run_until(30 * MIN - 30) == []  # acknowledged: quiet
    # the acknowledgement lapses: tier-1 hears of it at once (user test: nobody was told
    # until the next step, the one who acked included)
    assert who(e.run_until(60)) == [("repeat", "pager")]
    assert e.store.get(1).state.value == "open"  # type: ignore[union-attr]
    assert e.store.timeline(1)[-1].detail == (
        "step 1: tier1 paged (the acknowledgement by wang lapsed)"
    )
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]  # tier-2 15 min later


def test_the_resolve_goes_to_every_tier_that_was_paged(tmp_path, clock) -> None:
    # user-test finding: only tier-1 heard of the resolve; tier-2 still thought it open
    e = Engine(tmp_path, clock, config())
    e.fire()
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]  # tier-2 paged
    clock.advance(60)
    assert who(resolve_event(e)) == [("resolved", "pager"), ("resolved", "mail")]


def test_a_resolve_before_any_escalation_goes_to_tier1_only(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())
    e.fire()
    clock.advance(60)
    assert who(resolve_event(e)) == [("resolved", "pager")]


def test_a_resolve_by_hand_goes_to_every_tier_that_was_paged(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())
    e.fire()
    e.run_until(45 * MIN)  # tier-2, then management
    resolved = resolve_within_and_tell(e)
    assert sorted(who(resolved)) == [
        ("resolved", "log"),
        ("resolved", "mail"),
        ("resolved", "pager"),
    ]


def resolve_within_and_tell(e: Engine) -> list[Notification]:
    incident = e.store.get(1)
    assert incident is not None
    with e.store.transaction():
        _, resolved = resolve_within(e.store, incident, "wang", None, e.clock.now(), "cli")
    assert resolved is not None
    return resolved_by_hand_news(e.conn, resolved, config(), e.clock.now())


def test_a_reopened_incidents_resolve_target_counts_from_its_reopening(tmp_path, clock) -> None:
    # user-test finding: acking a reopened incident paged the next tier at once, its resolve
    # target counted from when it first opened, hours before
    e = Engine(tmp_path, clock, settings(reopen_within="10m"))
    e.fire()
    e.run_until(9 * 60 * MIN, step=30 * MIN)  # open 9 h (resolve target: 8 h), then ok
    resolve_event(e)
    clock.advance(5 * MIN)
    assert who(e.fire()) == [("reopened", "pager")]
    incident = e.store.get(1)
    assert incident is not None
    acknowledge(e.store, incident, "wang", None, clock.now(), how="cli")
    assert e.run_until(7 * 60 * MIN, step=30 * MIN) == []  # 7 h after the reopening: in time
    assert [n.transition for n in e.run_until(90 * MIN, step=30 * MIN)] == [Transition.ESCALATED]


def test_after_a_lapsed_acknowledgement_the_resolve_still_reaches_every_tier_paged(
    tmp_path, clock
) -> None:
    # review finding: the lapse starts escalation over at step 0, and the resolve then went
    # to tier-1 only although tier-2 had been paged
    e = Engine(tmp_path, clock, settings(ack_expires_after="10m"))
    e.fire()
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]  # tier-2 paged
    incident = e.store.get(1)
    assert incident is not None
    acknowledge(e.store, incident, "wang", None, clock.now(), how="cli")
    e.run_until(11 * MIN)  # the acknowledgement lapses: escalation from step 0 again
    clock.advance(60)
    assert who(resolve_event(e)) == [("resolved", "pager"), ("resolved", "mail")]


def test_the_api_and_board_count_a_reopened_incidents_targets_from_its_reopening(
    tmp_path, clock
) -> None:
    # review finding: they said it was overdue from when it first opened
    from alertd.api.views import incident_json, rfc3339
    from alertd.board.read import target_status

    channels = settings(reopen_within="10m")
    e = Engine(tmp_path, clock, channels)
    e.fire()
    e.run_until(9 * 60 * MIN, step=30 * MIN)
    resolve_event(e)
    clock.advance(5 * MIN)
    e.fire()  # reopened
    incident = e.store.get(1)
    assert incident is not None
    assert incident.reopened_at == clock.now()
    assert incident_json(incident, channels)["respond_by"] == rfc3339(clock.now() + 30 * MIN)
    status = target_status(incident, channels.priorities.targets, clock.now())
    assert status is not None
    assert not status.overdue


def by_priority() -> ChannelsFile:
    """P1 goes to the duty lead at once; P2 to tier-1, then tier-2 after 15 minutes."""
    base = config().model_dump(by_alias=True)
    base["teams"]["lead"] = {"channels": ["log"]}
    base["routes"] = [
        {"match": {"priority": "P1"}, "escalate": [{"notify": ["lead"]}]},
        {
            "match": {"priority": "P2"},
            "escalate": [{"notify": ["tier1"]}, {"after": "15m", "notify": ["tier2"]}],
        },
    ]
    return ChannelsFile.model_validate(base)


def test_news_after_a_level_change_to_another_route_reaches_both_routes_tiers(
    tmp_path, clock
) -> None:
    # review finding: the news went to the new route's steps up to the index paged on the
    # old one, so tier-1 and tier-2 never heard the P2 incident they had was resolved
    e = Engine(tmp_path, clock, by_priority())
    assert who(e.fire()) == [("opened", "pager")]
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]
    clock.advance(60)
    worse = e.fire(Level.CRITICAL)  # P2 -> P1: the lead's route now
    assert sorted(who(worse)) == [
        ("level_changed", "log"),
        ("level_changed", "mail"),
        ("level_changed", "pager"),
    ]
    clock.advance(60)
    assert sorted(who(resolve_event(e))) == [
        ("resolved", "log"),
        ("resolved", "mail"),
        ("resolved", "pager"),
    ]


def test_a_reopened_incident_tells_only_who_was_paged_since(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, settings(reopen_within="1h"))
    e.fire()
    e.run_until(15 * MIN)  # tier-2 paged
    resolve_event(e)
    clock.advance(60)
    assert who(e.fire()) == [("reopened", "pager")]
    clock.advance(60)
    assert who(resolve_event(e)) == [("resolved", "pager")]  # tier-2 heard of none of it


def test_a_level_change_to_another_route_escalates_by_its_steps_from_the_first(
    tmp_path, clock
) -> None:
    # review finding: the old route's step index was applied to the new route's steps
    config = by_priority()
    config.routes[0].escalate.append(
        config.routes[1].escalate[1].model_copy(update={"notify": ["management"]})
    )  # P1: the lead at once, management 15 minutes later
    e = Engine(tmp_path, clock, config)
    e.fire()
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]  # P2's tier-2
    worse = e.fire(Level.CRITICAL)
    assert ("level_changed", "log") in who(worse)
    line = e.store.timeline(1)[-1]
    assert (line.kind, line.detail) == (
        "escalation",
        "its level moved it to another route: escalation starts over at step 1 "
        "(lead, paged now); step 2 in 15m",
    )
    assert who(e.run_until(14 * MIN)) == []
    assert sorted(who(e.run_until(60))) == [("escalated", "log"), ("escalated", "mail")]
    assert e.store.timeline(1)[-1].detail.startswith("step 2: management paged")


def test_a_level_change_on_the_same_route_keeps_its_escalation(tmp_path, clock) -> None:
    e = Engine(tmp_path, clock, config())  # one route for P1 and P2
    e.fire()
    assert who(e.run_until(15 * MIN)) == [("escalated", "mail")]
    e.fire(Level.CRITICAL)
    assert e.store.timeline(1)[-1].kind == "level_changed"  # no start over
    assert sorted(who(e.run_until(30 * MIN))) == [("escalated", "log"), ("escalated", "mail")]


def test_a_resolve_by_hand_says_who_closed_it_not_that_it_recovered(tmp_path, clock) -> None:
    # verification finding: it read as the source recovered; only the timeline said otherwise
    from alertd.notify import render
    from alertd.notify.outbox import dump_notification, load_notification
    from alertd.notify.webhook.notifier import payload

    e = Engine(tmp_path, clock, config())
    e.fire()
    clock.advance(60)
    page = resolve_within_and_tell(e)[0]
    assert page.incident.resolved_by == "wang"
    assert load_notification(dump_notification(page)) == page  # as the worker reads it
    assert render.subject(page) == "[P2] RESOLVED #1 by hand (wang): disk full"
    assert "by hand, by wang" in render.text_body(page)
    assert "by hand, by wang" in render.html_body(page)
    body = payload(page, "hook")["incident"]
    assert (body["resolved_by"], body["reason"]) == ("wang", "resolved by hand by wang")
    # a recovery says nothing of the kind
    other = Engine(tmp_path / "other", clock, config())
    other.fire()
    recovered = resolve_event(other)[0]
    assert recovered.incident.resolved_by is None
    assert payload(recovered, "hook")["incident"]["reason"] == "all alerts resolved"
