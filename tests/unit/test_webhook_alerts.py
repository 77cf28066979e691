"""The webhook body lists every alert a notification is about, as Alertmanager's does: one
entry per member of a grouped incident, one per incident a rate-limit digest stands for, and
each one's own labels, status and times; ``commonLabels`` are those all of them share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alertd.clock import FakeClock
from alertd.model import EventKind, Level, Notification, Transition, make_labels
from alertd.notify.alert_entries import gathered, of_incident
from alertd.notify.outbox import dump_notification, load_notification
from alertd.notify.ratelimit import Limiter
from alertd.notify.render import format_ts, short_text
from alertd.notify.webhook.notifier import GO_ZERO_TIME, MAX_ALERTS, payload
from tests.open_incidents import open_incidents
from tests.unit.test_grouping import T0, alert, apply, manager_on, port
from tests.unit.test_outbox import MINUTE, Channel, commit, delivery_for, note


def test_a_plain_incident_is_one_alert(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    body = payload(note(incident, "hook"), "hook")
    (alert,) = body["alerts"]
    assert alert["labels"] == {"instance": "h0", "alertname": "cpu", "severity": "major"}
    assert alert["annotations"] == {"summary": "cpu high on h0", "value": "99"}
    assert (alert["status"], alert["endsAt"]) == ("firing", GO_ZERO_TIME)
    assert body["commonLabels"] == alert["labels"]
    assert (body["groupLabels"], body["truncatedAlerts"], body["status"]) == ({}, 0, "firing")


async def test_a_digest_lists_every_incident_it_stands_for(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    robot = Channel("robot")
    incidents = open_incidents(db, 27)
    d = delivery_for(db, {"robot": robot}, clock, limiter=Limiter({"robot": ((20, 60.0),)}))
    commit(d, [note(i, "robot") for i in incidents], clock)
    await d.settle()
    clock.advance(MINUTE)
    await d.settle()
    digest = robot.sent[-1]  # committed and read back from the outbox, as a worker sends it
    assert len(digest.digest) == 7
    body = payload(digest, "robot")
    assert [a["labels"]["instance"] for a in body["alerts"]] == [f"h{i}" for i in range(20, 27)]
    assert [a["fingerprint"] for a in body["alerts"]] == [f"f{i}" for i in range(20, 27)]
    assert {a["status"] for a in body["alerts"]} == {"firing"}
    assert body["commonLabels"] == {"alertname": "cpu", "severity": "major"}  # not instance
    assert body["groupLabels"] == {}
    assert body["truncatedAlerts"] == 0
    assert body["incident"]["digest"] == list(digest.digest)


def test_a_grouped_incident_lists_its_members_and_its_group_labels(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    apply(m, [port("sw1", i) for i in (1, 2, 3)], T0)
    apply(m, [port("sw1", 1, EventKind.RESOLVED)], T0 + 60)
    worse = alert(EventKind.FIRING, Level.CRITICAL, instance="sw1", ifIndex="4", group="net")
    (page,) = apply(m, [worse], T0 + 120)  # the group gets worse: a page
    body = payload(page, "pager")
    by_index = {a["labels"]["ifIndex"]: a for a in body["alerts"]}
    assert set(by_index) == {"1", "2", "3", "4"}
    assert by_index["1"]["status"] == "resolved"
    assert by_index["1"]["endsAt"] == format_ts(T0 + 60)  # when it resolved, not started
    assert by_index["1"]["startsAt"] == format_ts(T0)
    assert by_index["4"]["labels"]["severity"] == "critical"
    assert by_index["2"]["labels"]["alertname"] == "if_down"
    assert body["groupLabels"] == dict(make_labels({"instance": "sw1", "group": "net"}))
    assert body["commonLabels"]["instance"] == "sw1"
    assert "ifIndex" not in body["commonLabels"]
    assert body["status"] == "firing"


def test_entries_survive_the_outbox_and_a_huge_digest_is_cut_with_a_count(db) -> None:  # type: ignore[no-untyped-def]
    incidents = open_incidents(db, 3)
    notes = [note(i, "hook") for i in incidents]
    entries = tuple(of_incident(n) for n in notes) * 400  # 1,200 alerts
    digest = Notification(
        notes[-1].incident, notes[-1].transition, "hook", digest=("...",), entries=entries
    )
    again = load_notification(dump_notification(digest))
    assert again.entries == entries
    body = payload(again, "hook")
    assert len(body["alerts"]) == MAX_ALERTS
    assert body["truncatedAlerts"] == 1200 - MAX_ALERTS


def test_a_huge_group_carries_its_first_members_and_counts_the_rest(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch
) -> None:
    # every intent stores what its notification carries: a group of 10,000 must not store
    # 10,000 member lines and entries in each page of each channel
    monkeypatch.setattr("alertd.incidents.manager.CARRIED_MAX", 3)
    m = manager_on(tmp_path)
    apply(m, [port("sw1", i) for i in (1, 2, 3, 4)], T0)
    worse = alert(EventKind.FIRING, Level.CRITICAL, instance="sw1", ifIndex="5", group="net")
    (page,) = apply(m, [worse], T0 + 120)
    assert (len(page.alerts), len(page.entries), page.more_alerts) == (3, 3, 2)
    again = load_notification(dump_notification(page))
    assert (again.more_alerts, again.alert_count) == (2, 5)
    body = payload(again, "pager")
    assert len(body["alerts"]) == 3
    assert body["truncatedAlerts"] == 2
    assert body["incident"]["alerts_total"] == 5
    assert "(5 alerts)" in short_text(again)


def test_a_digest_carries_its_first_alerts_and_counts_the_rest(  # type: ignore[no-untyped-def]
    db, monkeypatch
) -> None:
    monkeypatch.setattr("alertd.notify.alert_entries.CARRIED_MAX", 4)
    incidents = open_incidents(db, 3)
    group = note(incidents[0], "hook")
    group = Notification(
        group.incident,
        group.transition,
        "hook",
        alerts=("a", "b", "c"),
        entries=(of_incident(group),) * 3,
        more_alerts=7,  # a group cut already: its 7 are counted, not lost
    )
    entries, more = gathered([group] + [note(i, "hook") for i in incidents[1:]])
    assert len(entries) == 4
    assert more == 7 + (3 + 2 - 4)


AM_REASONS = {  # Alertmanager's enum (webhook notification_reason)
    "first notification",
    "new alerts added",
    "some alerts resolved",
    "all alerts resolved",
    "repeat interval elapsed",
    "unknown",
}


def test_every_transition_has_a_reason_and_alertmanagers_enum_is_kept(db) -> None:  # type: ignore[no-untyped-def]
    # review finding: receivers switch on notification_reason; alertd's own words (a user-test
    # finding: "unknown" said nothing) are in incident.reason
    (incident,) = open_incidents(db, 1)
    bodies = {t: payload(Notification(incident, t, "hook"), "hook") for t in Transition}
    assert {b["notification_reason"] for b in bodies.values()} <= AM_REASONS
    assert bodies[Transition.OPENED]["notification_reason"] == "first notification"
    assert bodies[Transition.RESOLVED]["notification_reason"] == "all alerts resolved"
    assert bodies[Transition.ESCALATED]["notification_reason"] == "unknown"
    reasons = {t: b["incident"]["reason"] for t, b in bodies.items()}
    assert reasons[Transition.ESCALATED] == "escalated to the next tier"
    assert len(set(reasons.values())) == len(reasons)  # each says what happened


def test_external_url_is_alertds_public_url_as_the_links_are(db) -> None:  # type: ignore[no-untyped-def]
    (incident,) = open_incidents(db, 1)
    plain = note(incident, "hook")
    assert payload(plain, "hook")["externalURL"] == ""  # no public_url: no links at all
    linked = replace(plain, url=f"https://alertd.example/ops/board/incidents/{incident.id}")
    body = payload(linked, "hook")
    assert body["externalURL"] == "https://alertd.example/ops"
    assert body["incident"]["url"] == linked.url


def test_a_pushed_alert_without_a_generator_url_has_none_as_alertmanager_sends(db) -> None:  # type: ignore[no-untyped-def]
    from alertd.ingest.external import EXTERNAL_METRIC

    (incident,) = open_incidents(db, 1)
    url = f"https://alertd.example/board/incidents/{incident.id}"
    rule = replace(note(incident, "hook"), url=url)
    assert payload(rule, "hook")["alerts"][0]["generatorURL"] == url  # its incident page
    pushed = replace(rule, incident=replace(incident, metric=EXTERNAL_METRIC))
    assert payload(pushed, "hook")["alerts"][0]["generatorURL"] == ""
