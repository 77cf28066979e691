"""Priority from the impact x urgency matrix: the target's ``criticality`` x the level."""

from __future__ import annotations

from alertd.config.channels import Priorities
from alertd.model import Labels, Level


def impact_of(labels: Labels, priorities: Priorities) -> str:
    """Return the matrix row for a series: its ``criticality`` label, else the default."""
    value = dict(labels).get("criticality", priorities.default_impact)
    return value if value in priorities.matrix else priorities.default_impact


def priority_of(labels: Labels, level: Level, priorities: Priorities) -> str:
    """Return "P1".."P4" for a series at ``level``."""
    row = priorities.matrix[impact_of(labels, priorities)]
    return next((p for name, p in row.items() if name == level.label), "P4")
