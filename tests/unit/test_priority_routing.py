"""Unit tests of ``alertd.incidents.priority`` and ``alertd.incidents.routing``: the impact x
urgency matrix, routes, teams, recipients, the log fallback."""

from __future__ import annotations

from typing import Any

import pytest

from alertd.config.channels import ChannelsFile, Priorities
from alertd.incidents.priority import impact_of, priority_of
from alertd.incidents.routing import notifications_for, route_targets
from alertd.model import Incident, IncidentState, Level, Transition, make_labels

from .conftest import ROUTING, T0, channels, email_channel


def incident(
    priority: str = "P1", level: Level = Level.CRITICAL, incident_id: int = 7, **labels: str
) -> Incident:
    return Incident(
        id=incident_id,
        fingerprint="f" * 16,
        rule="cpu",
        metric="cpu",
        labels=make_labels(labels or {"instance": "web1"}),
        level=level,
        priority=priority,
        state=IncidentState.OPEN,
        summary="cpu is 99 on web1",
        value=99.0,
        opened_at=T0,
        updated_at=T0,
    )


def sent(config: ChannelsFile, inc: Incident) -> dict[str, tuple[str, ...]]:
    return {n.channel: n.recipients for n in notifications_for(inc, Transition.OPENED, config, T0)}


# -- priority -------------------------------------------------------------------------------
DEFAULT = Priorities()


@pytest.mark.parametrize(
    ("criticality", "level", "expected"),
    [
        ("high", Level.CRITICAL, "P1"),
        ("high", Level.MAJOR, "P2"),
        ("high", Level.MINOR, "P3"),
        ("medium", Level.CRITICAL, "P2"),
        ("medium", Level.MAJOR, "P3"),
        ("medium", Level.MINOR, "P4"),
        ("low", Level.CRITICAL, "P3"),
        ("low", Level.MAJOR, "P4"),
        ("low", Level.MINOR, "P4"),
    ],
)
def test_default_matrix(criticality: str, level: Level, expected: str) -> None:
    labels = make_labels({"instance": "web1", "criticality": criticality})
    assert priority_of(labels, level, DEFAULT) == expected


def test_missing_criticality_uses_default_impact_row() -> None:
    labels = make_labels({"instance": "web1"})
    assert impact_of(labels, DEFAULT) == "medium"
    assert priority_of(labels, Level.CRITICAL, DEFAULT) == "P2"
    low = Priorities(default_impact="low")
    assert priority_of(labels, Level.CRITICAL, low) == "P3"


def test_unknown_criticality_uses_default_impact_row() -> None:
    labels = make_labels({"criticality": "galactic"})
    assert impact_of(labels, DEFAULT) == "medium"
    assert priority_of(labels, Level.MAJOR, DEFAULT) == "P3"
    assert priority_of(make_labels({"criticality": "High"}), Level.CRITICAL, DEFAULT) == "P2"


def test_custom_matrix() -> None:
    custom = Priorities.model_validate(
        {
            "matrix": {
                "gold": {"critical": "P1", "major": "P1", "minor": "P2"},
                "bronze": {"critical": "P3", "major": "P4", "minor": "P4"},
            },
            "default_impact": "bronze",
        }
    )
    assert priority_of(make_labels({"criticality": "gold"}), Level.MAJOR, custom) == "P1"
    assert priority_of(make_labels({"criticality": "gold"}), Level.MINOR, custom) == "P2"
    assert priority_of(make_labels({"criticality": "high"}), Level.CRITICAL, custom) == "P3"
    assert priority_of(make_labels({}), Level.MAJOR, custom) == "P4"


# -- routes ---------------------------------------------------------------------------------
def test_first_matching_route_wins() -> None:
    config = channels()
    # P1 on a db host: route 0 matches and doesn't continue, so the dba routes never run
    assert route_targets(incident("P1", role="db"), config) == ["tier1"]


def test_continue_goes_on_to_later_routes() -> None:
    config = channels()
    inc = incident("P3", Level.MINOR, criticality="high", role="db")
    assert route_targets(inc, config) == ["dba", "tier2"]  # stops after the second db route


def test_match_on_priority_list_and_single_value() -> None:
    config = channels()
    assert route_targets(incident("P2", Level.MAJOR), config) == ["tier1"]
    assert route_targets(incident("P3", Level.MAJOR), config) == ["tier2"]
    assert route_targets(incident("P4", Level.MINOR), config) == []


def test_match_on_level_and_labels() -> None:
    config = channels(
        {
            "channels": {"ops-mail": email_channel()},
            "teams": {
                "t": {
                    "members": [{"name": "A", "email": "a@example.com"}],
                    "channels": ["ops-mail"],
                }
            },
            "routes": [
                {"match": {"level": "critical", "site": ["sh", "bj"]}, "notify": ["t"]},
            ],
        }
    )
    assert route_targets(incident("P4", Level.CRITICAL, site="bj"), config) == ["t"]
    assert route_targets(incident("P4", Level.MAJOR, site="bj"), config) == []
    assert route_targets(incident("P4", Level.CRITICAL, site="gz"), config) == []


def test_team_goes_to_its_channels_with_member_emails() -> None:
    config = channels()
    assert sent(config, incident("P1")) == {
        "ops-mail": ("wang@example.com",),  # Li has no email address
        "audit-log": (),  # recipients only mean something to email channels
    }


def test_two_teams_on_one_channel_merge_recipients_without_duplicates() -> None:
    data: dict[str, Any] = {**ROUTING, "routes": [{"notify": ["tier1", "tier2", "dba"]}]}
    result = sent(channels(data), incident("P4", Level.MINOR))
    assert result == {
        "ops-mail": ("wang@example.com", "zhao@example.com"),
        "audit-log": (),
        "dba-mail": ("chen@example.com",),
    }


def test_route_to_a_channel_directly_has_no_recipients() -> None:
    data: dict[str, Any] = {**ROUTING, "routes": [{"notify": ["dba-mail", "dba-mail"]}]}
    assert sent(channels(data), incident()) == {"dba-mail": ()}


def test_unrouted_incident_goes_to_every_log_channel() -> None:
    config = channels()
    notes = notifications_for(incident("P4", Level.MINOR), Transition.OPENED, config, T0)
    assert sorted(n.channel for n in notes) == ["audit-log", "fallback-log"]
    assert all(n.recipients == () for n in notes)


def test_unrouted_incident_without_log_channels_produces_nothing() -> None:
    config = channels({"channels": {"ops-mail": email_channel()}})
    assert notifications_for(incident(), Transition.OPENED, config, T0) == []


def test_notification_fields_and_keys() -> None:
    config = channels()
    inc = incident("P1", incident_id=42)
    notes = notifications_for(inc, Transition.RESOLVED, config, T0 + 0.5)
    assert {n.transition for n in notes} == {Transition.RESOLVED}
    assert all(n.incident is inc for n in notes)
    keys = [n.key for n in notes]
    assert len(set(keys)) == len(keys)
    assert "42.resolved.ops-mail.1800000000.500" in keys
    later = notifications_for(inc, Transition.RESOLVED, config, T0 + 60)
    assert not set(keys) & {n.key for n in later}


def test_effort_moves_the_priority_within_p1_to_p4() -> None:
    from alertd.config.channels import Priorities
    from alertd.incidents.priority import priority_of
    from alertd.model import Level, make_labels

    p = Priorities.model_validate({"effort": {"high": -1, "low": 1}})
    high = make_labels({"criticality": "high"})
    assert priority_of(high, Level.MAJOR, p) == "P2"  # no effort label: the matrix alone
    assert (
        priority_of(make_labels({"criticality": "high", "effort": "high"}), Level.MAJOR, p) == "P1"
    )
    assert (
        priority_of(make_labels({"criticality": "high", "effort": "high"}), Level.CRITICAL, p)
        == "P1"
    )
    assert priority_of(make_labels({"criticality": "low", "effort": "low"}), Level.MINOR, p) == "P4"
    assert (
        priority_of(make_labels({"criticality": "medium", "effort": "low"}), Level.MAJOR, p) == "P4"
    )
