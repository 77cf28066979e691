"""Dependencies: a parent device down suppresses its children's pages, and releases the ones
still failing when it comes back."""

from __future__ import annotations

from pathlib import Path

from alertd.config.channels import ChannelsFile
from alertd.incidents.manager import IncidentManager
from alertd.model import (
    TARGET_UP_METRIC,
    AlertEvent,
    EventKind,
    Level,
    Notification,
    fingerprint,
    make_labels,
)
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

T0 = 1_800_000_000.0
CHANNELS = ChannelsFile.model_validate(
    {"channels": {"pager": {"type": "log"}}, "routes": [{"notify": ["pager"]}]}
)


def event(kind: EventKind, rule: str, metric: str, **labels: str) -> AlertEvent:
    lab = make_labels(labels)
    level = None if kind is EventKind.RESOLVED else Level.MAJOR
    return AlertEvent(
        kind, rule, metric, lab, level, None, 0.0, f"{rule} {labels}", T0, fingerprint(rule, lab)
    )


def down(instance: str, **labels: str) -> AlertEvent:
    return event(EventKind.FIRING, "target_down", TARGET_UP_METRIC, instance=instance, **labels)


def up(instance: str, **labels: str) -> AlertEvent:
    return event(EventKind.RESOLVED, "target_down", TARGET_UP_METRIC, instance=instance, **labels)


def apply(manager: IncidentManager, events: list[AlertEvent], now: float) -> list[Notification]:
    with manager.store.transaction():
        return manager.apply(events, now)


def manager_on(tmp_path: Path) -> IncidentManager:
    return IncidentManager(IncidentStore(connect(tmp_path)), CHANNELS)


def test_parent_and_twenty_children_down_is_one_page(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    children = [down(f"ap{i}", parent="core-sw1") for i in range(20)]
    pages = apply(m, [*children, down("core-sw1")], T0)  # children listed first on purpose
    assert [n.incident.labels for n in pages] == [make_labels({"instance": "core-sw1"})]
    open_incidents = m.store.find()
    assert len(open_incidents) == 21  # all recorded ...
    suppressed = [i for i in open_incidents if i.suppressed_by == "parent core-sw1"]
    assert len(suppressed) == 20  # ... but only the parent paged
    assert [t.kind for t in m.store.timeline(suppressed[0].id)] == ["opened", "suppressed"]


def test_parent_back_pages_children_still_failing_and_not_the_recovered(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    apply(m, [down("core-sw1"), down("ap1", parent="core-sw1"), down("ap2", parent="core-sw1")], T0)
    quiet = apply(m, [up("ap2", parent="core-sw1")], T0 + 60)  # ap2 recovered while suppressed
    assert quiet == []  # it never paged, so its recovery doesn't either
    pages = apply(m, [up("core-sw1")], T0 + 120)
    assert sorted((n.transition.value, dict(n.incident.labels)["instance"]) for n in pages) == [
        ("opened", "ap1"),  # still failing: pages now
        ("resolved", "core-sw1"),
    ]
    (ap1,) = [i for i in m.store.find() if dict(i.labels)["instance"] == "ap1"]
    assert ap1.suppressed_by is None
    assert [t.kind for t in m.store.timeline(ap1.id)][-1] == "unsuppressed"


def test_a_child_of_a_healthy_parent_pages_normally(tmp_path: Path) -> None:
    m = manager_on(tmp_path)
    pages = apply(m, [down("ap1", parent="core-sw1")], T0)
    assert len(pages) == 1
    assert pages[0].incident.suppressed_by is None
