"""Schema of ``thresholds.yaml`` and ``rules/*.yaml``: what is abnormal and how bad.

A rule watches one metric; ``above`` or ``below`` gives a threshold per level; ``for`` is how
long a breach must last before it fires; ``clear`` is the hysteresis margin a firing level
needs to cross back before it resolves. ``overrides`` replace fields for series whose labels
match; the most specific match wins (an ``instance`` matcher beats any group matcher, then
more matchers beat fewer, then the earlier override).
"""

from __future__ import annotations

import itertools
from typing import Self

from pydantic import Field, model_validator

from alertd.config.types import Duration, MatcherValues, StrictModel

LEVEL_NAMES = ("critical", "major", "minor")


class Levels(StrictModel):
    """Threshold per level; at least one level is set."""

    critical: float | None = None
    major: float | None = None
    minor: float | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.critical is None and self.major is None and self.minor is None:
            raise ValueError("set at least one of critical, major, minor")
        return self

    def items(self) -> list[tuple[str, float]]:
        """Return (level, threshold) pairs, most severe first, unset levels left out."""
        pairs = [(name, getattr(self, name)) for name in LEVEL_NAMES]
        return [(name, value) for name, value in pairs if value is not None]


def check_order(levels: Levels, direction: str) -> str | None:
    """Return why ``levels`` are out of order for ``direction`` ("above"/"below"), if they are."""
    pairs = levels.items()
    for (worse, worse_t), (milder, milder_t) in itertools.pairwise(pairs):
        if direction == "above" and not worse_t > milder_t:
            return f"{worse} must be above {milder} ({worse_t:g} <= {milder_t:g})"
        if direction == "below" and not worse_t < milder_t:
            return f"{worse} must be below {milder} ({worse_t:g} >= {milder_t:g})"
    return None


class Override(StrictModel):
    match: dict[str, MatcherValues] = Field(min_length=1)
    above: Levels | None = None
    below: Levels | None = None
    for_: Duration | None = Field(default=None, alias="for")
    clear: float | None = Field(default=None, ge=0)
    disabled: bool = False


class Rule(StrictModel):
    metric: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    name: str | None = Field(default=None, min_length=1)
    match: dict[str, MatcherValues] = {}
    above: Levels | None = None
    below: Levels | None = None
    for_: Duration = Field(default=0.0, alias="for")
    clear: float = Field(default=0.0, ge=0)
    summary: str | None = None
    labels: dict[str, str] = {}
    overrides: list[Override] = []

    @property
    def rule_name(self) -> str:
        return self.name or self.metric

    @model_validator(mode="after")
    def _one_direction(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of above or below")
        return self


class Flapping(StrictModel):
    """Nagios/Icinga flap detection: the weighted share of state changes over the last
    ``window`` evaluations (newer changes weigh more) starts flapping above ``high`` percent
    and stops below ``low``."""

    enabled: bool = True
    window: int = Field(default=21, ge=3, le=64)
    low: float = Field(default=20.0, ge=0, le=100)
    high: float = Field(default=30.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.low >= self.high:
            raise ValueError(f"low must be below high ({self.low:g} >= {self.high:g})")
        return self


class ThresholdsFile(StrictModel):
    """One thresholds file (``thresholds.yaml`` or a rule pack)."""

    evaluation_interval: Duration | None = Field(default=None, gt=0)
    flapping: Flapping | None = None
    rules: list[Rule] = []
