"""An incident no route matches: its timeline and the log say so, and where it went (user
test: a typo in a route's ``match`` sent every P1 to the log alone, and nothing said why)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alertd.config.channels import ChannelsFile
from alertd.incidents.manager import IncidentManager
from alertd.model import AlertEvent, EventKind, Level, Notification, fingerprint, make_labels
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

T0 = 1_800_000_000.0
WEBHOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}


def firing(instance: str, level: Level) -> AlertEvent:
    labels = make_labels({"instance": instance, "criticality": "high"})
    return AlertEvent(
        EventKind.FIRING, "cpu", "cpu", labels, level, 99.0, 95.0, "CPU high", T0,
        fingerprint("cpu", labels),
    )  # fmt: skip


def opened(channels: dict[str, object], event: AlertEvent, tmp_path: Path) -> tuple[
    IncidentManager, list[Notification]
]:  # fmt: skip
    config = ChannelsFile.model_validate(
        {"channels": channels, "routes": [{"match": {"priority": ["P1"]}, "notify": ["hook"]}]}
    )
    manager = IncidentManager(IncidentStore(connect(tmp_path)), config)
    with manager.store.transaction():
        return manager, manager.apply([event], T0)


def timeline(manager: IncidentManager) -> list[tuple[str, str]]:
    (incident,) = manager.store.find()
    return [(t.kind, t.detail) for t in manager.store.timeline(incident.id)]


def test_an_unrouted_incident_says_it_went_to_the_log_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    channels = {"hook": WEBHOOK, "log": {"type": "log"}}
    manager, pages = opened(channels, firing("web1", Level.MINOR), tmp_path)  # P3
    assert [n.channel for n in pages] == ["log"]
    assert ("routing", "no route matches it: told the log (log) only") in timeline(manager)
    assert "incident #1 matches no route: told the log (log) only" in caplog.text


def test_an_unrouted_incident_with_no_log_channel_says_nobody_is_told(tmp_path: Path) -> None:
    manager, pages = opened({"hook": WEBHOOK}, firing("web1", Level.MINOR), tmp_path)
    assert pages == []
    assert ("routing", "no route matches it: nobody is told") in timeline(manager)


def test_a_routed_incident_says_nothing_of_routing(tmp_path: Path) -> None:
    channels = {"hook": WEBHOOK, "log": {"type": "log"}}
    manager, pages = opened(channels, firing("web1", Level.CRITICAL), tmp_path)  # P1
    assert [n.channel for n in pages] == ["hook"]
    assert all(kind != "routing" for kind, _ in timeline(manager))
