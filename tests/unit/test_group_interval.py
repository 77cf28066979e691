"""A route's ``group_interval``: alerts that join or leave a group already paged reach
everyone paged in one update, at most that long after (Alertmanager's group_interval), where
before they paged nobody until the group's level rose (user-test finding). Off by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.config.channels import ChannelsFile
from alertd.config.load import load_config
from alertd.errors import ConfigError
from alertd.model import EventKind, Level, Transition
from tests.unit.test_grouping import GROUPED, T0, alert, apply, channels, manager_on, port, tick

FIVE_MIN = 300.0
EVERY_5M = channels(group_by=["instance"], group_interval="5m")


def test_alerts_joining_a_paged_group_are_sent_as_one_update(tmp_path: Path) -> None:
    m = manager_on(tmp_path, EVERY_5M)
    (first,) = apply(m, [port("sw1", 1)], T0)
    assert first.transition is Transition.OPENED
    assert apply(m, [port("sw1", 2)], T0 + 10) == []  # joins quietly
    assert apply(m, [port("sw1", 3)], T0 + 20) == []
    assert m.store.next_deadline() == T0 + 10 + FIVE_MIN  # the first change sets when
    assert tick(m, T0 + 10 + FIVE_MIN - 1) == []
    (update,) = tick(m, T0 + 10 + FIVE_MIN)
    assert (update.transition, update.channel) == (Transition.GROUP_CHANGED, "pager")
    assert update.incident.summary == "3 alert(s) firing in group group=net,instance=sw1"
    assert len(update.entries) == 3  # every alert, as the webhook's alerts[] lists them
    assert m.store.timeline(1)[-1].detail == "3 of 3 alert(s) firing: update sent"
    assert tick(m, T0 + 3600) == []  # nothing changed since: no more updates


def test_an_alert_leaving_the_group_is_an_update_too(tmp_path: Path) -> None:
    m = manager_on(tmp_path, EVERY_5M)
    apply(m, [port("sw1", 1), port("sw1", 2)], T0)
    assert apply(m, [port("sw1", 1, EventKind.RESOLVED)], T0 + 60) == []
    (update,) = tick(m, T0 + 60 + FIVE_MIN)
    assert update.incident.summary.startswith("1 alert(s) firing")
    assert sorted(e.status for e in update.entries) == ["firing", "resolved"]


def test_a_page_that_lists_the_group_makes_the_update_moot(tmp_path: Path) -> None:
    m = manager_on(tmp_path, EVERY_5M)
    apply(m, [port("sw1", 1)], T0)
    apply(m, [port("sw1", 2)], T0 + 10)  # an update due at +5m10s
    worse = alert(instance="sw1", ifIndex="3", group="net", level=Level.CRITICAL)
    (level_page,) = apply(m, [worse], T0 + 20)
    assert level_page.transition is Transition.LEVEL_CHANGED
    assert tick(m, T0 + 20 + FIVE_MIN) == []
    # and the group resolving: nothing more to update about
    apply(m, [port("sw1", 4)], T0 + 30)
    resolves = [port("sw1", i, EventKind.RESOLVED) for i in (1, 2, 4)]
    resolves.append(alert(EventKind.RESOLVED, instance="sw1", ifIndex="3", group="net"))
    assert [n.transition for n in apply(m, resolves, T0 + 40)] == [Transition.RESOLVED]
    assert tick(m, T0 + 3600) == []


def test_nothing_is_updated_while_the_first_page_is_held(tmp_path: Path) -> None:
    config = channels(group_by=["instance"], group_wait="30s", group_interval="5m")
    m = manager_on(tmp_path, config)
    apply(m, [port("sw1", 1)], T0)
    apply(m, [port("sw1", 2)], T0 + 10)  # the first page, when it goes, lists both
    (first,) = tick(m, T0 + 30)
    assert (first.transition, len(first.entries)) == (Transition.OPENED, 2)
    assert tick(m, T0 + 3600) == []


def test_without_group_interval_joining_alerts_page_nobody(tmp_path: Path) -> None:
    m = manager_on(tmp_path, GROUPED)
    apply(m, [port("sw1", 1)], T0)
    assert apply(m, [port("sw1", 2)], T0 + 10) == []
    assert tick(m, T0 + 3600) == []
    assert m.store.next_deadline() is None


def test_group_interval_needs_group_by(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="group_interval is for a route that groups"):
        ChannelsFile.model_validate(
            {
                "channels": {"log": {"type": "log"}},
                "routes": [{"notify": ["log"], "group_interval": "5m"}],
            }
        )
    (tmp_path / "thresholds.yaml").write_text("rules: []\n")
    (tmp_path / "channels.yaml").write_text(
        "channels:\n  log: {type: log}\nroutes:\n  - notify: [log]\n    group_interval: 5m\n"
    )
    with pytest.raises(ConfigError, match=r"channels.yaml:4:.*group_by"):
        load_config(tmp_path)


def test_alertmanagers_view_of_the_routes_shows_group_interval() -> None:
    from alertd.api.am_config import _routes

    routes, _ = _routes(EVERY_5M)
    grouped = next(r for r in routes if "group_by" in r)
    assert (grouped["group_wait"], grouped["group_interval"]) == ("0s", "5m")
    assert "group_interval" not in next(r for r in _routes(GROUPED)[0] if "group_by" in r)
