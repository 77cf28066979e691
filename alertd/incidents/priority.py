"""Priority from the impact x urgency matrix: the target's ``criticality`` x the level,
optionally moved by a third factor, the series' ``effort`` label."""

from __future__ import annotations

from alertd.config.channels import LevelName, Priorities
from alertd.model import Labels, Level

# Level.label as the matrix's key type; a dict lookup, where the enum property costs ~10x
LEVEL_NAMES: dict[Level, LevelName] = {
    Level.MINOR: "minor",
    Level.MAJOR: "major",
    Level.CRITICAL: "critical",
}


def impact_of(labels: Labels, priorities: Priorities) -> str:
    """Return the matrix row for a series: its ``criticality`` label, else the default."""
    return _impact(dict(labels), priorities)


def _impact(labels: dict[str, str], priorities: Priorities) -> str:
    value = labels.get("criticality", priorities.default_impact)
    return value if value in priorities.matrix else priorities.default_impact


def priority_of(labels: Labels, level: Level, priorities: Priorities) -> str:
    """Return "P1".."P4" for a series at ``level``, moved by its ``effort`` if configured."""
    label_map = dict(labels)  # once: this runs for every alert of a storm
    base = priorities.matrix[_impact(label_map, priorities)].get(LEVEL_NAMES[level], "P4")
    if not priorities.effort:
        return base
    shift = priorities.effort.get(label_map.get("effort", ""), 0)
    return f"P{min(4, max(1, int(base[1]) + shift))}"
