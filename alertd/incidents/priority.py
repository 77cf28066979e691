"""Priority from the impact x urgency matrix: the target's ``criticality`` x the level,
optionally moved by a third factor, the series' ``effort`` label."""

from __future__ import annotations

from alertd.config.channels import Priorities
from alertd.model import Labels, Level


def impact_of(labels: Labels, priorities: Priorities) -> str:
    """Return the matrix row for a series: its ``criticality`` label, else the default."""
    value = dict(labels).get("criticality", priorities.default_impact)
    return value if value in priorities.matrix else priorities.default_impact


def priority_of(labels: Labels, level: Level, priorities: Priorities) -> str:
    """Return "P1".."P4" for a series at ``level``, moved by its ``effort`` if configured."""
    row = priorities.matrix[impact_of(labels, priorities)]
    base = next((p for name, p in row.items() if name == level.label), "P4")
    if not priorities.effort:
        return base
    shift = priorities.effort.get(dict(labels).get("effort", ""), 0)
    return f"P{min(4, max(1, int(base[1]) + shift))}"
