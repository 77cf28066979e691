"""Unit tests of ``alertd.evaluate.thresholds``: ``resolve`` (overrides, sources), ``matches``,
``Thresholds.breached``/``held``/``trigger``."""

from __future__ import annotations

import pytest

from alertd.evaluate.thresholds import Thresholds, matches, resolve
from alertd.model import Level

from .conftest import rule

OVERRIDES = [
    {"match": {"role": "batch"}, "above": {"major": 98}},  # 0
    {"match": {"role": "batch", "site": "x"}, "above": {"major": 97}},  # 1
    {"match": {"instance": "web1"}, "above": {"major": 96}},  # 2
]


def eff(rule_kwargs: dict[str, object], **labels: str) -> Thresholds:
    th = resolve(rule(**rule_kwargs).rule, labels)
    assert th is not None
    return th


def test_rule_without_overrides() -> None:
    th = eff({"for": "2m", "clear": 3})
    assert th.above is True
    assert th.levels == ((Level.CRITICAL, 95), (Level.MAJOR, 85), (Level.MINOR, 75))
    assert (th.for_, th.clear) == (120, 3)
    assert dict(th.sources) == {"levels": "rule", "for": "rule", "clear": "rule"}
    assert th.trigger == 75


def test_below_rule_levels_and_trigger() -> None:
    th = eff({"metric": "disk_free", "below": {"critical": 5, "minor": 20}})
    assert th.above is False
    assert th.levels == ((Level.CRITICAL, 5), (Level.MINOR, 20))
    assert th.trigger == 20  # the mildest threshold, the highest for `below`


@pytest.mark.parametrize(
    ("labels", "source", "major"),
    [
        ({"instance": "web1", "role": "batch", "site": "x"}, "overrides[2]", 96),
        ({"instance": "web2", "role": "batch", "site": "x"}, "overrides[1]", 97),
        ({"instance": "web2", "role": "batch", "site": "y"}, "overrides[0]", 98),
        ({"instance": "web2", "role": "web", "site": "x"}, "rule", 85),
    ],
)
def test_most_specific_override_wins(labels: dict[str, str], source: str, major: float) -> None:
    th = eff({"overrides": OVERRIDES}, **labels)
    assert th.sources["levels"] == source
    assert dict(th.levels)[Level.MAJOR] == major


def test_instance_matcher_beats_any_number_of_group_matchers() -> None:
    overrides = [
        {"match": {"role": "batch", "site": "x", "zone": "a"}, "above": {"major": 90}},
        {"match": {"instance": "web1"}, "above": {"major": 91}},
    ]
    th = eff({"overrides": overrides}, instance="web1", role="batch", site="x", zone="a")
    assert th.sources["levels"] == "overrides[1]"


def test_equal_specificity_earlier_override_wins() -> None:
    overrides = [
        {"match": {"site": "x"}, "above": {"major": 90}},
        {"match": {"role": "batch"}, "above": {"major": 91}},
    ]
    th = eff({"overrides": overrides}, role="batch", site="x")
    assert th.sources["levels"] == "overrides[0]"
    assert th.levels == ((Level.MAJOR, 90),)


def test_override_levels_replace_the_whole_mapping() -> None:
    th = eff({"overrides": OVERRIDES}, role="batch")
    assert th.levels == ((Level.MAJOR, 98),)
    assert th.trigger == 98


def test_override_sources_name_each_field_it_supplies() -> None:
    th = eff({"for": 60, "overrides": [{"match": {"role": "db"}, "for": "5m"}]}, role="db")
    assert dict(th.sources) == {"levels": "rule", "for": "overrides[0]", "clear": "rule"}
    assert (th.for_, th.levels[0]) == (300, (Level.CRITICAL, 95))

    th = eff({"overrides": [{"match": {"role": "db"}, "clear": 2.5}]}, role="db")
    assert dict(th.sources) == {"levels": "rule", "for": "rule", "clear": "overrides[0]"}
    assert th.clear == 2.5

    ov = {"match": {"role": "db"}, "above": {"minor": 1}, "for": 0, "clear": 0}
    th = eff({"for": 60, "clear": 5, "overrides": [ov]}, role="db")
    assert set(th.sources.values()) == {"overrides[0]"}
    assert (th.for_, th.clear, th.levels) == (0, 0, ((Level.MINOR, 1),))


def test_only_the_winning_override_applies_fields_are_not_layered() -> None:
    """A more specific override that sets only ``for`` does not inherit a less specific
    override's levels: the rule's levels apply."""
    overrides = [
        {"match": {"role": "batch"}, "above": {"major": 98}},
        {"match": {"instance": "web1"}, "for": "10m"},
    ]
    th = eff({"overrides": overrides}, instance="web1", role="batch")
    assert dict(th.sources) == {"levels": "rule", "for": "overrides[1]", "clear": "rule"}
    assert dict(th.levels)[Level.MAJOR] == 85


def test_disabled_winning_override_means_no_thresholds() -> None:
    r = rule(overrides=[{"match": {"role": "batch"}, "disabled": True}]).rule
    assert resolve(r, {"role": "batch"}) is None
    assert resolve(r, {"role": "web"}) is not None


def test_more_specific_enabled_override_beats_a_disabled_one() -> None:
    overrides = [
        {"match": {"role": "batch"}, "disabled": True},
        {"match": {"instance": "important"}, "above": {"critical": 99}},
    ]
    r = rule(overrides=overrides).rule
    assert resolve(r, {"role": "batch", "instance": "other"}) is None
    th = resolve(r, {"role": "batch", "instance": "important"})
    assert th is not None
    assert th.levels == ((Level.CRITICAL, 99),)


def test_rule_match_rejects_series() -> None:
    r = rule(match={"site": ["x", "y"]}).rule
    assert resolve(r, {"site": "z"}) is None
    assert resolve(r, {}) is None
    assert resolve(r, {"site": "y"}) is not None


@pytest.mark.parametrize(
    ("matchers", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"a": ["1"]}, {"a": "1"}, True),
        ({"a": ["1", "2"]}, {"a": "2"}, True),
        ({"a": ["1"]}, {"a": "2"}, False),
        ({"a": ["1"]}, {}, False),
        ({"a": [""]}, {}, True),  # a missing label is the empty string
        ({"a": ["1"], "b": ["2"]}, {"a": "1"}, False),
    ],
)
def test_matches(matchers: dict[str, list[str]], labels: dict[str, str], expected: bool) -> None:
    assert matches(matchers, labels) is expected


def test_numeric_matcher_values_match_label_strings() -> None:
    r = rule(match={"port": 161}).rule
    assert resolve(r, {"port": "161"}) is not None


ABOVE = Thresholds(True, ((Level.CRITICAL, 95), (Level.MAJOR, 85), (Level.MINOR, 75)), 0, 5, {})
BELOW = Thresholds(False, ((Level.CRITICAL, 5), (Level.MAJOR, 10), (Level.MINOR, 20)), 0, 2, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, None),
        (75, None),
        (75.5, Level.MINOR),
        (85, Level.MINOR),
        (85.5, Level.MAJOR),
        (1e9, Level.CRITICAL),
    ],
)
def test_breached_above(value: float, expected: Level | None) -> None:
    assert ABOVE.breached(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, None),
        (20, None),
        (19, Level.MINOR),
        (10, Level.MINOR),
        (9, Level.MAJOR),
        (-1, Level.CRITICAL),
    ],
)
def test_breached_below(value: float, expected: Level | None) -> None:
    assert BELOW.breached(value) is expected


@pytest.mark.parametrize(
    ("value", "firing", "expected"),
    [
        (81, Level.MAJOR, Level.MAJOR),  # 81 > 85 - 5
        (80, Level.MAJOR, Level.MINOR),  # released major; 80 > 75 - 5 holds minor
        (70, Level.MAJOR, None),
        (99, Level.MINOR, Level.MINOR),  # never above the firing level: that needs `for`
        (91, Level.CRITICAL, Level.CRITICAL),
        (90, Level.CRITICAL, Level.MAJOR),
    ],
)
def test_held_above(value: float, firing: Level, expected: Level | None) -> None:
    assert ABOVE.held(value, firing) is expected


@pytest.mark.parametrize(
    ("value", "firing", "expected"),
    [
        (11.9, Level.MAJOR, Level.MAJOR),  # 11.9 < 10 + 2
        (12, Level.MAJOR, Level.MINOR),
        (22, Level.MAJOR, None),
        (1, Level.MINOR, Level.MINOR),
    ],
)
def test_held_below(value: float, firing: Level, expected: Level | None) -> None:
    assert BELOW.held(value, firing) is expected


def test_held_with_zero_clear_is_breached_capped_at_firing() -> None:
    th = Thresholds(True, ((Level.MAJOR, 85), (Level.MINOR, 75)), 0, 0, {})
    for value in (70, 75, 75.1, 85, 85.1, 200):
        breached = th.breached(value)
        capped = None if breached is None else min(breached, Level.MAJOR)
        assert th.held(value, Level.MAJOR) == capped
