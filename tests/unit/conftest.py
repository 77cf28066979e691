"""Shared builders and fixtures for the unit tests: rules, samples, channels, clock, state DB."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.config.load import RuleSource
from alertd.config.thresholds import Rule
from alertd.model import Sample, make_labels
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

T0 = 1_800_000_000.0  # FakeClock's default start
CPU_LEVELS = {"critical": 95, "major": 85, "minor": 75}


def rule(**fields: Any) -> RuleSource:
    """Build a validated rule as ``thresholds.yaml`` would hold it.

    Defaults: metric ``cpu``, ``above`` the CPU_LEVELS (unless ``above``/``below`` is given).
    ``for_`` may stand for the YAML key ``for``; override dicts use ``for`` as in YAML.
    """
    data: dict[str, Any] = {"metric": "cpu"}
    if "for_" in fields:
        fields["for"] = fields.pop("for_")
    data.update(fields)
    if "above" not in data and "below" not in data:
        data["above"] = dict(CPU_LEVELS)
    return RuleSource(Rule.model_validate(data), file="thresholds.yaml")


def sample(metric: str, value: float | None, ts: float = T0, **labels: str) -> Sample:
    """Build one sample; ``value=None`` is an UNKNOWN (failed collection)."""
    return Sample(metric, make_labels(labels), value, ts)


def channels(data: dict[str, Any] | None = None) -> ChannelsFile:
    """Build a validated ``channels.yaml``; default: the ROUTING example below."""
    return ChannelsFile.model_validate(ROUTING if data is None else data)


def email_channel(host: str = "smtp.example.com") -> dict[str, Any]:
    return {"type": "email", "host": host, "from": "alertd@example.com"}


# A small but complete channels.yaml: two mail channels, two log channels, three teams.
ROUTING: dict[str, Any] = {
    "channels": {
        "ops-mail": email_channel(),
        "dba-mail": email_channel("smtp2.example.com"),
        "audit-log": {"type": "log"},
        "fallback-log": {"type": "log", "level": "info"},
    },
    "teams": {
        "tier1": {
            "members": [
                {"name": "Wang", "email": "wang@example.com", "phone": "+8613800000000"},
                {"name": "Li", "phone": "+8613800000001"},  # no email
            ],
            "channels": ["ops-mail", "audit-log"],
        },
        "tier2": {
            "members": [
                {"name": "Zhao", "email": "zhao@example.com"},
                {"name": "Wang", "email": "wang@example.com"},
            ],
            "channels": ["ops-mail"],
        },
        "dba": {
            "members": [{"name": "Chen", "email": "chen@example.com"}],
            "channels": ["dba-mail"],
        },
    },
    "routes": [
        {"match": {"priority": ["P1", "P2"]}, "notify": ["tier1"]},
        {"match": {"role": "db"}, "notify": ["dba"], "continue": True},
        {"match": {"role": "db"}, "notify": ["tier2"]},
        {"match": {"priority": "P3"}, "notify": ["tier2"]},
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated state database in a temp directory (a real SQLite file, WAL)."""
    connection = connect(tmp_path)
    yield connection
    connection.close()


@pytest.fixture
def store(conn: sqlite3.Connection) -> IncidentStore:
    return IncidentStore(conn)
