"""Effective thresholds for one series: the rule, with the most specific override applied.

Pure functions over config models; ``alertd explain`` prints what ``resolve`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alertd.config.thresholds import Levels, Override, Rule
from alertd.model import Level


def matches(matchers: Mapping[str, Sequence[str]], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher accepts the label's value (a missing label is "")."""
    return all(labels.get(name, "") in values for name, values in matchers.items())


def _specificity(index_and_override: tuple[int, Override]) -> tuple[int, int, int]:
    index, ov = index_and_override
    return (0 if "instance" in ov.match else 1, -len(ov.match), index)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What one rule means for one series."""

    above: bool  # direction: True breaches above the threshold, False below
    levels: tuple[tuple[Level, float], ...]  # most severe first
    for_: float
    clear: float
    sources: Mapping[str, str]  # field -> "rule" or "overrides[i]"

    @property
    def trigger(self) -> float:
        """The mildest threshold: a value not past it breaches nothing."""
        return self.levels[-1][1]

    def breached(self, value: float) -> Level | None:
        """Return the worst level ``value`` breaches, without hysteresis."""
        for level, limit in self.levels:
            if (value > limit) if self.above else (value < limit):
                return level
        return None

    def held(self, value: float, firing: Level) -> Level | None:
        """Return the worst level at or below ``firing`` that hysteresis still holds."""
        clear = self.clear
        for level, limit in self.levels:
            if level > firing:
                continue
            if (value > limit - clear) if self.above else (value < limit + clear):
                return level
        return None


def _levels(levels: Levels) -> tuple[tuple[Level, float], ...]:
    return tuple((Level.parse(name), value) for name, value in levels.items())


class ThresholdResolver:
    """``resolve`` for many series of one rule: the override order is sorted once, and the
    thresholds of each override are built once and shared by every series that picks it."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._ordered = sorted(enumerate(rule.overrides), key=_specificity)
        self._built: dict[int | None, Thresholds | None] = {}

    def __call__(self, labels: Mapping[str, str]) -> Thresholds | None:
        rule = self.rule
        if rule.match and not matches(rule.match, labels):
            return None
        chosen = next((i for i, ov in self._ordered if matches(ov.match, labels)), None)
        if chosen not in self._built:
            self._built[chosen] = _build(rule, chosen)
        return self._built[chosen]


def resolve(rule: Rule, labels: Mapping[str, str]) -> Thresholds | None:
    """Return the effective thresholds of ``rule`` for a series, or None if it doesn't apply.

    A series the rule's ``match`` rejects, or one whose winning override says
    ``disabled: true``, gets None.
    """
    return ThresholdResolver(rule)(labels)


def _build(rule: Rule, index: int | None) -> Thresholds | None:
    above = rule.above is not None
    levels = rule.above if above else rule.below
    for_, clear = rule.for_, rule.clear
    sources = {"levels": "rule", "for": "rule", "clear": "rule"}
    if index is not None:
        ov = rule.overrides[index]
        if ov.disabled:
            return None
        name = f"overrides[{index}]"
        ov_levels = ov.above if above else ov.below
        if ov_levels is not None:
            levels, sources["levels"] = ov_levels, name
        if ov.for_ is not None:
            for_, sources["for"] = ov.for_, name
        if ov.clear is not None:
            clear, sources["clear"] = ov.clear, name
    assert levels is not None  # guaranteed by Rule's validator
    return Thresholds(above, _levels(levels), for_, clear, sources)
