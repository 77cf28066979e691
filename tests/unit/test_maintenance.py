"""Maintenance windows and silences: recorded but quiet inside, a page when the window ends
while the alert still fires, nothing if it recovered inside."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from alertd.config.channels import ChannelsFile, MaintenanceWindow
from alertd.incidents.maintenance import Weekly, Window, covering, from_config, from_rows
from alertd.incidents.manager import IncidentManager
from alertd.model import AlertEvent, EventKind, Level, Notification, fingerprint, make_labels
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import add_window, remove_window, stored_windows

HOUR = 3600.0
# Sunday 2026-11-29 01:00 UTC
SUNDAY_1AM = datetime(2026, 11, 29, 1, 0, tzinfo=UTC).timestamp()
CHANNELS = ChannelsFile.model_validate(
    {"channels": {"pager": {"type": "log"}}, "routes": [{"notify": ["pager"]}]}
)


def fire(kind: EventKind, instance: str, now: float) -> AlertEvent:
    labels = make_labels({"instance": instance})
    level = None if kind is EventKind.RESOLVED else Level.MAJOR
    return AlertEvent(
        kind, "cpu", "cpu", labels, level, None, 99.0, "cpu high", now, fingerprint("cpu", labels)
    )


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.conn = connect(tmp_path)
        self.store = IncidentStore(self.conn)
        self.manager = IncidentManager(self.store, CHANNELS)
        self.manager.windows = lambda now: from_rows(stored_windows(self.conn, now))

    def apply(self, events: list[AlertEvent], now: float) -> list[Notification]:
        with self.store.transaction():
            return self.manager.apply(events, now) + self.manager.escalate(now)

    def window(self, kind: str, start: float, end: float, **match: str) -> int:
        return add_window(
            self.conn,
            kind=kind,
            matchers={k: [v] for k, v in match.items()},
            start=start,
            end=end,
            reason="CHG-1234",
            owner="ops",
            now=start,
        )


def test_weekly_window_including_one_that_crosses_midnight() -> None:
    w = Weekly(("sat",), "23:00", 3 * HOUR)  # Saturday 23:00 -> Sunday 02:00
    assert w.active_at(SUNDAY_1AM)
    assert not w.active_at(SUNDAY_1AM + 2 * HOUR)  # Sunday 03:00
    assert not w.active_at(SUNDAY_1AM - 3 * HOUR)  # Saturday 22:00
    berlin = Weekly(("sun",), "02:00", HOUR, "Europe/Berlin")  # 01:00-02:00 UTC in winter
    assert berlin.active_at(SUNDAY_1AM + 30 * 60)
    assert not berlin.active_at(SUNDAY_1AM + 1.5 * HOUR)


def test_covering_matches_labels_and_time() -> None:
    w = Window("w", "maintenance", {"instance": ["web1"]}, "r", "o", 0.0, 100.0)
    assert covering([w], {"instance": "web1"}, 50.0) is w
    assert covering([w], {"instance": "web2"}, 50.0) is None
    assert covering([w], {"instance": "web1"}, 100.0) is None  # [start, end)


def test_alert_inside_a_window_is_recorded_and_pages_when_the_window_ends(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    s.window("maintenance", t0, t0 + 2 * HOUR, instance="web1")
    assert s.apply([fire(EventKind.FIRING, "web1", t0 + 60)], t0 + 60) == []  # quiet ...
    (incident,) = s.store.find()
    assert incident.suppressed_by == "maintenance #1 (CHG-1234)"  # ... but recorded
    assert [t.kind for t in s.store.timeline(incident.id)] == ["opened", "suppressed"]
    assert s.apply([], t0 + HOUR) == []
    pages = s.apply([], t0 + 2 * HOUR)  # the window ends; the alert still fires
    assert [(n.transition.value, n.channel) for n in pages] == [("opened", "pager")]
    assert s.apply([], t0 + 3 * HOUR) == []  # once


def test_suppressed_incidents_are_read_again_only_when_the_windows_in_force_change(
    tmp_path, monkeypatch
) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    reads = []
    read = s.store.suppressed_by_window
    monkeypatch.setattr(s.store, "suppressed_by_window", lambda: reads.append(1) or read())
    s.window("maintenance", t0, t0 + 2 * HOUR, instance="web1")
    assert s.apply([fire(EventKind.FIRING, "web1", t0 + 60)], t0 + 60) == []
    assert len(reads) == 1  # the suppression just made
    assert s.apply([], t0 + HOUR) == []
    assert s.apply([], t0 + HOUR + 1) == []
    assert len(reads) == 1  # same windows, same incidents: nothing to read
    assert len(s.apply([], t0 + 2 * HOUR)) == 1  # the window ended
    assert len(reads) == 2


def test_a_window_that_came_and_went_between_two_looks_still_releases(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    assert s.apply([], t0) == []  # looked with no window in force
    s.window("maintenance", t0 + 10, t0 + 20, instance="web1")
    with s.store.transaction():  # opened inside it, with no look at the windows after
        assert s.manager.apply([fire(EventKind.FIRING, "web1", t0 + 15)], t0 + 15) == []
    # no window in force again, as at the last look: the suppression since says look
    assert [n.transition.value for n in s.apply([], t0 + 30)] == ["opened"]


def test_a_release_rolled_back_is_released_again(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    s.window("maintenance", t0, t0 + HOUR, instance="web1")
    assert s.apply([fire(EventKind.FIRING, "web1", t0 + 60)], t0 + 60) == []
    released: list[Notification] = []

    def release_then_fail() -> None:
        with s.store.transaction():
            released.extend(s.manager.escalate(t0 + HOUR))
            raise RuntimeError("the outbox write failed")

    with pytest.raises(RuntimeError):
        release_then_fail()
    assert len(released) == 1
    assert s.store.find()[0].suppressed_by is not None
    assert len(s.apply([], t0 + HOUR + 1)) == 1
    assert s.store.find()[0].suppressed_by is None


def test_an_incident_reopened_after_its_window_ended_pages(tmp_path) -> None:
    # review finding: it reopened still marked suppressed, and the windows in force had not
    # changed since the last look, so nothing looked at it again
    s = Setup(tmp_path)
    s.manager.channels = ChannelsFile.model_validate(
        {**CHANNELS.model_dump(by_alias=True), "incidents": {"reopen_within": "1h"}}
    )
    t0 = SUNDAY_1AM
    s.window("silence", t0, t0 + HOUR, instance="web1")
    assert s.apply([fire(EventKind.FIRING, "web1", t0 + 1800)], t0 + 1800) == []
    assert s.apply([fire(EventKind.RESOLVED, "web1", t0 + 3000)], t0 + 3000) == []
    assert s.apply([], t0 + HOUR) == []  # the window ends with nothing held back
    later = t0 + HOUR + 300
    pages = s.apply([fire(EventKind.FIRING, "web1", later)], later)
    assert [n.transition.value for n in pages] == ["opened"]
    assert s.store.find()[0].suppressed_by is None


def test_alert_that_recovers_inside_the_window_never_pages(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    s.window("silence", t0, t0 + HOUR, instance="web1")
    assert s.apply([fire(EventKind.FIRING, "web1", t0)], t0) == []
    assert s.apply([fire(EventKind.RESOLVED, "web1", t0 + 600)], t0 + 600) == []
    assert s.apply([], t0 + 2 * HOUR) == []


def test_other_targets_and_removed_windows_page_normally(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    wid = s.window("maintenance", t0, t0 + HOUR, instance="web1")
    assert len(s.apply([fire(EventKind.FIRING, "web2", t0)], t0)) == 1
    assert remove_window(s.conn, wid, "maintenance", t0)
    assert not remove_window(s.conn, wid, "maintenance", t0)  # once
    assert len(s.apply([fire(EventKind.FIRING, "web1", t0 + 60)], t0 + 60)) == 1


def test_a_silence_on_the_rule_or_alertname_quiets_that_rule_only(tmp_path) -> None:
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    s.window("silence", t0, t0 + HOUR, rule="cpu")  # alertd silence add --match rule=cpu
    assert s.apply([fire(EventKind.FIRING, "web1", t0)], t0) == []
    s.window("silence", t0, t0 + HOUR, alertname="cpu")  # amtool silence add alertname=cpu
    assert s.apply([fire(EventKind.FIRING, "web2", t0)], t0) == []
    s.window("silence", t0, t0 + HOUR, rule="memory")
    labels = make_labels({"instance": "web3"})
    other = AlertEvent(
        EventKind.FIRING,
        "disk",
        "disk",
        labels,
        Level.MAJOR,
        None,
        99.0,
        "disk",
        t0,
        fingerprint("disk", labels),
    )
    assert len(s.apply([other], t0)) == 1  # another rule still pages


def test_configured_windows() -> None:
    config = ChannelsFile.model_validate(
        {
            "maintenance": [
                {
                    "name": "patch-night",
                    "match": {"role": "db"},
                    "reason": "CHG-9",
                    "weekly": {"days": ["sat"], "at": "23:00", "duration": "3h"},
                },
                {
                    "name": "move",
                    "match": {},  # everything, said so
                    "start": "2026-12-01T22:00:00Z",
                    "duration": "2h",
                    "reason": "rack move",
                },
            ]
        }
    )
    weekly, once = from_config(config)
    assert weekly.covers({"role": "db"}, SUNDAY_1AM)
    assert not weekly.covers({"role": "web"}, SUNDAY_1AM)
    start = datetime(2026, 12, 1, 22, tzinfo=UTC).timestamp()
    assert once.covers({}, start + HOUR)
    assert not once.covers({}, start + 2 * HOUR)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "match": {}, "reason": "r"}, "needs start"),
        (
            {"name": "x", "match": {}, "reason": "r", "start": "2026-12-01T22:00:00Z"},
            "end or duration",
        ),
        (
            {
                "name": "x",
                "match": {},
                "reason": "r",
                "start": "2026-12-01T22:00:00Z",
                "end": "2026-12-01T21:00:00Z",
            },
            "after start",
        ),
        (
            {
                "name": "x",
                "match": {},
                "reason": "r",
                "weekly": {"days": ["sun"], "at": "2:00", "duration": "1h"},
            },
            "should match pattern",
        ),
        (
            {
                "name": "x",
                "match": {},
                "reason": "r",
                "weekly": {
                    "days": ["sun"],
                    "at": "02:00",
                    "duration": "1h",
                    "timezone": "Mars/Base",
                },
            },
            "unknown timezone",
        ),
        (
            {
                "name": "x",
                "match": {},
                "reason": "r",
                "start": "2026-12-01T22:00:00",
                "duration": "1h",
            },
            "timezone",
        ),
    ],
)
def test_window_config_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaintenanceWindow.model_validate(data)


def test_a_window_says_what_it_covers() -> None:
    """Admin user test: a window left without ``match`` held back every page for 27 years;
    ``match: {}`` says "everything" on purpose."""
    window = {"name": "x", "reason": "r", "start": "2026-12-01T22:00:00Z", "duration": "1h"}
    with pytest.raises(ValidationError, match="match"):
        MaintenanceWindow.model_validate(window)
    assert MaintenanceWindow.model_validate({**window, "match": {}}).match == {}


ESCALATING = ChannelsFile.model_validate(
    {
        "channels": {"pager": {"type": "log"}, "boss": {"type": "log"}},
        "routes": [{"escalate": [{"notify": ["pager"]}, {"after": "10m", "notify": ["boss"]}]}],
    }
)


@pytest.mark.parametrize("kind", ["silence", "maintenance"])
def test_a_window_added_on_a_paging_incident_stops_its_escalation_until_it_ends(
    tmp_path: Path, kind: str
) -> None:
    """User test: a silence added on an open incident left it escalating to management."""
    s = Setup(tmp_path)
    s.manager.channels = ESCALATING
    t0 = SUNDAY_1AM
    pages = s.apply([fire(EventKind.FIRING, "web1", t0)], t0)
    assert [n.channel for n in pages] == ["pager"]
    s.window(kind, t0 + 60, t0 + 2 * HOUR, instance="web1")
    assert s.apply([], t0 + 120) == []
    (incident,) = s.store.find()
    assert incident.suppressed_by == f"{kind} #1 (CHG-1234)"
    assert s.store.timeline(incident.id)[-1].kind == "suppressed"
    assert s.apply([], t0 + 15 * 60) == []  # the boss's step was due at 10 minutes
    pages = s.apply([], t0 + 2 * HOUR)  # over, and it still fails: it pages again
    assert [(n.transition.value, n.channel) for n in pages] == [("opened", "pager")]


def test_a_window_on_other_targets_leaves_a_paging_incident_escalating(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.manager.channels = ESCALATING
    t0 = SUNDAY_1AM
    s.apply([fire(EventKind.FIRING, "web1", t0)], t0)
    s.window("silence", t0 + 60, t0 + 2 * HOUR, instance="web2")
    assert s.apply([], t0 + 120) == []
    pages = s.apply([], t0 + 15 * 60)
    assert [(n.transition.value, n.channel) for n in pages] == [("escalated", "boss")]


def test_a_paging_incident_held_back_by_a_later_silence_still_tells_its_resolve(
    tmp_path: Path,
) -> None:
    """Verification: the resolve reached those paged only if it came before the silence
    was seen; they hear it either way, and one never paged hears nothing."""
    s = Setup(tmp_path)
    t0 = SUNDAY_1AM
    assert [n.channel for n in s.apply([fire(EventKind.FIRING, "web1", t0)], t0)] == ["pager"]
    s.window("silence", t0 + 60, t0 + 2 * HOUR, instance="web1")
    s.window("silence", t0 + 60, t0 + 2 * HOUR, instance="web2")
    assert s.apply([fire(EventKind.FIRING, "web2", t0 + 90)], t0 + 90) == []  # never paged
    pages = s.apply(
        [fire(EventKind.RESOLVED, "web1", t0 + 120), fire(EventKind.RESOLVED, "web2", t0 + 120)],
        t0 + 120,
    )
    assert [(n.transition.value, n.incident.id, n.channel) for n in pages] == [
        ("resolved", 1, "pager")
    ]
