"""Grouping and storm control: a route's ``group_by`` folds alerts into one incident, and its
``group_wait`` holds the first page so alerts arriving together are in it (real SQLite file,
fake times)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alertd.config.channels import ChannelsFile
from alertd.incidents.manager import IncidentManager
from alertd.model import (
    TARGET_UP_METRIC,
    AlertEvent,
    EventKind,
    IncidentState,
    Level,
    Notification,
    Transition,
    fingerprint,
    make_labels,
)
from alertd.notify.render import html_body, one_line, text_body
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

T0 = 1_800_000_000.0


def channels(**route: Any) -> ChannelsFile:
    return ChannelsFile.model_validate(
        {
            "channels": {"pager": {"type": "log"}, "log": {"type": "log"}},
            "routes": [
                {"match": {"rule": ["never"]}, "notify": ["log"]},  # index 0: not ours
                {"match": {"group": ["net"]}, "notify": ["pager"], **route},
                {"notify": ["log"]},  # everything else: ungrouped
            ],
        }
    )


GROUPED = channels(group_by=["instance"])


def alert(
    kind: EventKind = EventKind.FIRING,
    level: Level | None = Level.MAJOR,
    rule: str = "if_down",
    metric: str = "if_oper_status",
    **labels: str,
) -> AlertEvent:
    lab = make_labels(labels)
    return AlertEvent(
        kind,
        rule,
        metric,
        lab,
        None if kind is EventKind.RESOLVED else level,
        None,
        0.0,
        f"{rule} {labels}",
        T0,
        fingerprint(rule, lab),
    )


def port(switch: str, index: int, kind: EventKind = EventKind.FIRING, **extra: Any) -> AlertEvent:
    return alert(kind, instance=switch, ifIndex=str(index), group="net", **extra)


def manager_on(tmp_path: Path, config: ChannelsFile = GROUPED) -> IncidentManager:
    return IncidentManager(IncidentStore(connect(tmp_path)), config)


def apply(m: IncidentManager, events: list[AlertEvent], now: float) -> list[Notification]:
    with m.store.transaction():
        return m.apply(events, now)


def tick(m: IncidentManager, now: float) -> list[Notification]:
    with m.store.transaction():
        return m.escalate(now)


def what(pages: list[Notification]) -> list[tuple[str, int]]:
    return [(n.transition.value, n.incident.id) for n in pages]


def test_500_interfaces_down_on_one_switch_is_one_incident_and_one_page(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    pages = apply(m, [port("sw1", i) for i in range(1, 501)], T0)
    assert what(pages) == [("opened", 1)]
    (incident,) = m.store.find()
    assert incident.labels == make_labels({"instance": "sw1", "group": "net"})
    assert incident.fingerprint == fingerprint("group:1", make_labels({"instance": "sw1"}))
    assert len(pages[0].alerts) == 500
    assert m.store.firing_members(incident.id) == (500, Level.MAJOR)
    kinds = [t.kind for t in m.store.timeline(incident.id)]
    assert kinds.count("alert_joined") == 500
    # more alerts from the same switch in later cycles join quietly; repeats change nothing
    assert apply(m, [port("sw1", 501), port("sw1", 1)], T0 + 60) == []
    assert m.store.firing_members(incident.id)[0] == 501
    assert len(m.store.find()) == 1


def test_a_second_switch_is_a_second_incident(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    pages = apply(m, [port("sw1", 1), port("sw2", 1), port("sw1", 2), port("sw2", 2)], T0)
    assert what(pages) == [("opened", 1), ("opened", 2)]
    assert [len(n.alerts) for n in pages] == [2, 2]
    by_switch = {dict(i.labels)["instance"]: i for i in m.store.find()}
    assert set(by_switch) == {"sw1", "sw2"}


def test_the_group_resolves_only_when_every_alert_has(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    apply(m, [port("sw1", i) for i in range(1, 4)], T0)
    assert apply(m, [port("sw1", 1, EventKind.RESOLVED)], T0 + 60) == []  # others still fire
    assert apply(m, [port("sw1", 2, EventKind.RESOLVED)], T0 + 120) == []
    incident = m.store.get(1)
    assert incident is not None
    assert incident.state is IncidentState.OPEN
    pages = apply(m, [port("sw1", 3, EventKind.RESOLVED)], T0 + 180)
    assert what(pages) == [("resolved", 1)]
    assert all(line.startswith("resolved ") for line in pages[0].alerts)
    # its page says so, not "3 alert(s) firing in group ..." (user test)
    assert pages[0].incident.summary == "3 alert(s) in group group=net,instance=sw1, all resolved"
    assert apply(m, [port("sw1", 3, EventKind.RESOLVED)], T0 + 240) == []  # once
    kinds = [t.kind for t in m.store.timeline(1)]
    assert kinds.count("alert_resolved") == 3
    assert kinds[-1] == "resolved"
    # the switch fails again later: a new incident, paged again
    assert what(apply(m, [port("sw1", 1)], T0 + 600)) == [("opened", 2)]


def test_a_worse_alert_joining_raises_the_level_and_pages(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    apply(m, [port("sw1", 1), port("sw1", 2)], T0)
    worse = alert(EventKind.FIRING, Level.CRITICAL, instance="sw1", ifIndex="3", group="net")
    pages = apply(m, [worse], T0 + 60)
    assert [(n.transition, n.previous_level, n.incident.level) for n in pages] == [
        (Transition.LEVEL_CHANGED, Level.MAJOR, Level.CRITICAL)
    ]
    assert apply(m, [port("sw1", 4)], T0 + 120) == []  # a major one joining: no page
    # the critical one recovers: the level drops on the record, nobody is paged
    assert apply(m, [port("sw1", 3, EventKind.RESOLVED)], T0 + 180) == []
    incident = m.store.get(1)
    assert incident is not None
    assert incident.level is Level.MAJOR


def test_group_wait_holds_the_first_page_and_lists_what_arrived(tmp_path: Path) -> None:
    m = manager_on(tmp_path, channels(group_by=["instance"], group_wait="30s"))
    assert apply(m, [port("sw1", 1)], T0) == []
    assert tick(m, T0) == []
    assert apply(m, [port("sw1", 2)], T0 + 10) == []
    assert tick(m, T0 + 10) == []
    assert tick(m, T0 + 29) == []
    pages = tick(m, T0 + 30)
    assert what(pages) == [("opened", 1)]
    assert len(pages[0].alerts) == 2
    body = text_body(pages[0])
    assert "ifIndex=1" in body
    assert "ifIndex=2" in body
    assert tick(m, T0 + 60) == []  # once
    assert apply(m, [port("sw1", 3)], T0 + 90) == []  # joins after the page: quiet


def test_group_wait_survives_a_restart(tmp_path: Path) -> None:
    config = channels(group_by=["instance"], group_wait="30s")
    m = manager_on(tmp_path, config)
    apply(m, [port("sw1", 1)], T0)
    again = manager_on(tmp_path, config)  # a new daemon on the same file
    assert tick(again, T0 + 20) == []
    assert what(tick(again, T0 + 30)) == [("opened", 1)]
    assert tick(again, T0 + 40) == []


def test_a_group_that_clears_within_its_wait_never_pages(tmp_path: Path) -> None:
    m = manager_on(tmp_path, channels(group_by=["instance"], group_wait="30s"))
    apply(m, [port("sw1", 1)], T0)
    assert apply(m, [port("sw1", 1, EventKind.RESOLVED)], T0 + 10) == []
    assert tick(m, T0 + 30) == []
    assert [t.kind for t in m.store.timeline(1)][-1] == "group_wait"


def test_group_wait_zero_pages_at_once(tmp_path: Path) -> None:
    m = manager_on(tmp_path, channels(group_by=["instance"], group_wait=0))
    assert what(apply(m, [port("sw1", 1)], T0)) == [("opened", 1)]


def test_a_group_under_a_down_parent_is_suppressed(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    parent_down = alert(rule="target_down", metric=TARGET_UP_METRIC, instance="core1")
    ports = [port("sw1", i, parent="core1") for i in range(1, 51)]
    pages = apply(m, [*ports, parent_down], T0)  # children first on purpose
    assert [dict(n.incident.labels)["instance"] for n in pages] == ["core1"]
    group = m.store.active(fingerprint("group:1", make_labels({"instance": "sw1"})))
    assert group is not None
    assert group.suppressed_by == "parent core1"
    # the parent comes back while the ports still fail: the group pages then, listing them
    back = alert(EventKind.RESOLVED, rule="target_down", metric=TARGET_UP_METRIC, instance="core1")
    pages = apply(m, [back], T0 + 60)
    assert sorted(n.transition.value for n in pages) == ["opened", "resolved"]
    (opened,) = [n for n in pages if n.transition is Transition.OPENED]
    assert opened.incident.id == group.id
    assert len(opened.alerts) == 50


def test_a_group_opened_while_its_parent_is_down_stays_quiet(tmp_path: Path) -> None:
    m = manager_on(tmp_path, channels(group_by=["instance"], group_wait="30s"))
    apply(m, [alert(rule="target_down", metric=TARGET_UP_METRIC, instance="core1")], T0)
    assert apply(m, [port("sw1", 1, parent="core1")], T0 + 5) == []
    assert tick(m, T0 + 60) == []  # group_wait over, but the parent is still down


def test_ungrouped_routes_are_unchanged(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    events = [alert(instance="web1", ifIndex=str(i)) for i in range(1, 4)]  # no group=net
    pages = apply(m, events, T0)
    assert what(pages) == [("opened", 1), ("opened", 2), ("opened", 3)]
    assert all(n.alerts == () for n in pages)
    assert [i.fingerprint for i in sorted(m.store.find(), key=lambda i: i.id)] == [
        e.fingerprint for e in events
    ]
    pages = apply(m, [alert(EventKind.RESOLVED, instance="web1", ifIndex="1")], T0 + 60)
    assert what(pages) == [("resolved", 1)]


def test_bodies_list_twenty_alerts_then_count_the_rest(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    (page,) = apply(m, [port("sw1", i) for i in range(1, 26)], T0)
    text = text_body(page)
    assert "Alerts (25):" in text
    assert "and 5 more" in text
    assert text.count("firing major if_down") == 20
    html = html_body(page)
    assert html.count("<li>firing major if_down") == 20
    assert "<li>and 5 more</li>" in html
    assert "alerts=25" in one_line(page)


def test_a_member_getting_worse_raises_the_group_and_better_lowers_it_quietly(
    tmp_path: Path,
) -> None:
    m = manager_on(tmp_path)
    apply(m, [port("sw1", 1), port("sw1", 2)], T0)
    worse = alert(EventKind.LEVEL_CHANGED, Level.CRITICAL, instance="sw1", ifIndex="1", group="net")
    pages = apply(m, [worse], T0 + 60)
    assert [(n.transition, n.incident.level) for n in pages] == [
        (Transition.LEVEL_CHANGED, Level.CRITICAL)
    ]
    assert pages[0].alerts[0].startswith("firing critical if_down")
    better = alert(EventKind.LEVEL_CHANGED, Level.MAJOR, instance="sw1", ifIndex="1", group="net")
    assert apply(m, [better], T0 + 120) == []
    incident = m.store.get(1)
    assert incident is not None
    assert incident.level is Level.MAJOR
    assert [t.kind for t in m.store.timeline(1)].count("alert_changed") == 2


def test_routes_can_match_on_the_rule_name(tmp_path) -> None:
    from alertd.config.channels import ChannelsFile as Channels
    from alertd.incidents.routing import route_targets
    from alertd.model import Incident, IncidentState, Level, make_labels

    channels = Channels.model_validate(
        {
            "channels": {"net": {"type": "log"}, "other": {"type": "log"}},
            "routes": [
                {"match": {"rule": ["interface_down"]}, "notify": ["net"]},
                {"notify": ["other"]},
            ],
        }
    )

    def incident(rule: str) -> Incident:
        return Incident(
            1,
            "f",
            rule,
            "m",
            make_labels({"instance": "sw1"}),
            Level.MAJOR,
            "P3",
            IncidentState.OPEN,
            "s",
            1.0,
            0.0,
            0.0,
        )

    assert route_targets(incident("interface_down"), channels) == ["net"]
    assert route_targets(incident("cpu"), channels) == ["other"]


def test_cli_shows_the_alerts_of_a_grouped_incident(tmp_path: Path, capsys: Any) -> None:
    import json

    from alertd.cli import main

    m = manager_on(tmp_path)
    apply(m, [port("sw1", i) for i in range(1, 4)], T0)
    apply(m, [port("sw1", 2, EventKind.RESOLVED)], T0 + 60)
    assert main(["incidents", "--state-dir", str(tmp_path), "show", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    states = sorted((a["labels"]["ifIndex"], a["state"]) for a in shown["alerts"])
    assert states == [("1", "firing"), ("2", "resolved"), ("3", "firing")]
    assert main(["incidents", "--state-dir", str(tmp_path), "show", "1"]) == 0
    assert "alerts (2 of 3 firing):" in capsys.readouterr().out


def test_a_group_resolving_all_at_once_keeps_the_level_it_was_paged_at(tmp_path: Path) -> None:
    # verification finding: its worst member resolved first in the batch, so a P2 group
    # ended "[P4] RESOLVED" and the KPIs counted it as the lower priority
    m = manager_on(tmp_path)
    bad = alert(EventKind.FIRING, Level.CRITICAL, instance="sw1", ifIndex="1", group="net")
    apply(m, [bad, port("sw1", 2), port("sw1", 3)], T0)
    opened = m.store.get(1)
    assert opened is not None
    assert opened.level is Level.CRITICAL
    gone = [port("sw1", i, EventKind.RESOLVED) for i in (1, 2, 3)]  # the worst first
    (page,) = apply(m, gone, T0 + 60)
    assert page.transition is Transition.RESOLVED
    assert (page.incident.level, page.incident.priority) == (Level.CRITICAL, opened.priority)
    assert "level_changed" not in [t.kind for t in m.store.timeline(1)]


def test_the_worst_member_resolving_alone_still_lowers_the_group_quietly(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    bad = alert(EventKind.FIRING, Level.CRITICAL, instance="sw1", ifIndex="1", group="net")
    apply(m, [bad, port("sw1", 2)], T0)
    assert apply(m, [port("sw1", 1, EventKind.RESOLVED)], T0 + 60) == []
    incident = m.store.get(1)
    assert incident is not None
    assert incident.level is Level.MAJOR
    assert incident.summary.startswith("1 alert(s) firing")
