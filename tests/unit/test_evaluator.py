"""Unit tests of ``alertd.evaluate.evaluator``: levels, for, clear, UNKNOWN, overrides,
restart and reload, state changes, summaries. Time is always passed in (FakeClock)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import pytest

from alertd.clock import FakeClock
from alertd.evaluate.evaluator import Evaluator
from alertd.model import AlertEvent, EventKind, Level, StateRecord, fingerprint, make_labels
from alertd.state.rule_state import load_rule_state, save_rule_state

from .conftest import T0, rule, sample

WEB1 = {"instance": "web1"}
FP_WEB1 = fingerprint("cpu", make_labels(WEB1))


def cycle(
    ev: Evaluator, now: float, value: float | None, metric: str = "cpu", **labels: str
) -> list[AlertEvent]:
    """Ingest one sample (default series: cpu{instance=web1}) and evaluate at ``now``."""
    ev.ingest([sample(metric, value, now, **(labels or WEB1))])
    return ev.evaluate(now)


def kinds(events: Sequence[AlertEvent]) -> list[tuple[EventKind, Level | None, Level | None]]:
    return [(e.kind, e.level, e.previous_level) for e in events]


def state_of(ev: Evaluator, fp: str = FP_WEB1) -> StateRecord | None:
    return next((r for r in ev.export_state() if r.fingerprint == fp), None)


def fire(ev: Evaluator, now: float, value: float, **labels: str) -> AlertEvent:
    (event,) = cycle(ev, now, value, **labels)
    assert event.kind is EventKind.FIRING
    return event


# -- levels ---------------------------------------------------------------------------------
def test_value_past_minor_only_fires_minor() -> None:
    ev = Evaluator([rule()])
    (event,) = cycle(ev, T0, 80)
    assert event.kind is EventKind.FIRING
    assert event.level is Level.MINOR
    assert event.previous_level is None
    assert (event.rule, event.metric, event.value, event.ts) == ("cpu", "cpu", 80, T0)
    assert event.labels == make_labels(WEB1)
    assert event.fingerprint == FP_WEB1


def test_value_past_critical_fires_critical_directly() -> None:
    ev = Evaluator([rule()])
    assert kinds(cycle(ev, T0, 99)) == [(EventKind.FIRING, Level.CRITICAL, None)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (75, None),  # equal to minor: not past it
        (75.001, Level.MINOR),
        (85, Level.MINOR),  # equal to major
        (85.001, Level.MAJOR),
        (95, Level.MAJOR),  # equal to critical
        (95.001, Level.CRITICAL),
    ],
)
def test_above_compares_strictly(value: float, expected: Level | None) -> None:
    ev = Evaluator([rule()])
    events = cycle(ev, T0, value)
    assert [e.level for e in events] == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50, None),
        (20, None),  # equal to minor: not past it
        (19.9, Level.MINOR),
        (10, Level.MINOR),
        (9.9, Level.MAJOR),
        (5, Level.MAJOR),
        (4.9, Level.CRITICAL),
    ],
)
def test_below_mirrors_above(value: float, expected: Level | None) -> None:
    ev = Evaluator([rule(metric="disk_free", below={"critical": 5, "major": 10, "minor": 20})])
    events = cycle(ev, T0, value, metric="disk_free", instance="web1")
    assert [e.level for e in events] == ([expected] if expected else [])


def test_below_hysteresis_needs_value_back_above_threshold_plus_clear() -> None:
    ev = Evaluator([rule(metric="disk_free", below={"minor": 20}, clear=2)])
    assert [e.kind for e in cycle(ev, T0, 15, metric="disk_free", instance="a")] == [
        EventKind.FIRING
    ]
    assert cycle(ev, T0 + 10, 21.9, metric="disk_free", instance="a") == []
    (event,) = cycle(ev, T0 + 20, 22, metric="disk_free", instance="a")
    assert (event.kind, event.level, event.previous_level) == (
        EventKind.RESOLVED,
        None,
        Level.MINOR,
    )


def test_series_of_other_metrics_are_ignored() -> None:
    ev = Evaluator([rule()])
    assert cycle(ev, T0, 99, metric="mem", instance="web1") == []
    assert ev.export_state() == []


# -- for ------------------------------------------------------------------------------------
def test_for_keeps_series_pending_then_fires(clock: FakeClock) -> None:
    ev = Evaluator([rule(for_="2m")])
    assert cycle(ev, clock.now(), 90) == []
    record = state_of(ev)
    assert record is not None
    assert record.pending
    assert record.firing is None
    assert record.since == (T0, T0, None)  # minor, major, critical
    clock.advance(119)
    assert cycle(ev, clock.now(), 90) == []
    assert state_of(ev).pending  # type: ignore[union-attr]
    clock.advance(1)
    (event,) = cycle(ev, clock.now(), 90)
    assert (event.kind, event.level, event.ts) == (EventKind.FIRING, Level.MAJOR, T0 + 120)
    record = state_of(ev)
    assert record is not None
    assert not record.pending
    assert (record.firing, record.firing_since) == (Level.MAJOR, T0 + 120)


def test_dip_below_threshold_restarts_for() -> None:
    ev = Evaluator([rule(for_=120)])
    assert cycle(ev, T0, 90) == []
    assert cycle(ev, T0 + 60, 70) == []  # below every level: pending forgotten
    assert state_of(ev) is None
    assert cycle(ev, T0 + 90, 90) == []
    assert cycle(ev, T0 + 180, 90) == []  # 180s after the first breach, 90s after the dip
    assert kinds(cycle(ev, T0 + 210, 90)) == [(EventKind.FIRING, Level.MAJOR, None)]


def test_dip_between_levels_restarts_only_the_higher_levels_timer() -> None:
    ev = Evaluator([rule(for_=120)])
    assert cycle(ev, T0, 90) == []
    assert cycle(ev, T0 + 60, 80) == []  # still past minor, no longer past major
    assert cycle(ev, T0 + 90, 90) == []
    assert kinds(cycle(ev, T0 + 120, 90)) == [(EventKind.FIRING, Level.MINOR, None)]
    assert kinds(cycle(ev, T0 + 210, 90)) == [(EventKind.LEVEL_CHANGED, Level.MAJOR, Level.MINOR)]


def test_for_zero_fires_on_first_breach() -> None:
    ev = Evaluator([rule(for_=0)])
    assert [e.kind for e in cycle(ev, T0, 76)] == [EventKind.FIRING]


# -- level changes --------------------------------------------------------------------------
def test_level_up_while_firing_needs_the_higher_level_for_too() -> None:
    ev = Evaluator([rule(for_=60)])
    assert cycle(ev, T0, 80) == []
    assert kinds(cycle(ev, T0 + 60, 80)) == [(EventKind.FIRING, Level.MINOR, None)]
    assert cycle(ev, T0 + 70, 99) == []
    assert cycle(ev, T0 + 129, 99) == []
    (event,) = cycle(ev, T0 + 130, 99)
    assert (event.kind, event.level, event.previous_level) == (
        EventKind.LEVEL_CHANGED,
        Level.CRITICAL,
        Level.MINOR,
    )
    assert event.value == 99


def test_level_down_is_immediate_and_reports_previous_level() -> None:
    ev = Evaluator([rule(for_=60)])
    assert cycle(ev, T0, 99) == []
    assert kinds(cycle(ev, T0 + 60, 99)) == [(EventKind.FIRING, Level.CRITICAL, None)]
    assert kinds(cycle(ev, T0 + 70, 90)) == [(EventKind.LEVEL_CHANGED, Level.MAJOR, Level.CRITICAL)]
    assert kinds(cycle(ev, T0 + 80, 80)) == [(EventKind.LEVEL_CHANGED, Level.MINOR, Level.MAJOR)]
    assert kinds(cycle(ev, T0 + 90, 70)) == [(EventKind.RESOLVED, None, Level.MINOR)]
    assert state_of(ev) is None


def test_firing_since_is_the_time_of_the_current_level() -> None:
    ev = Evaluator([rule()])
    fire(ev, T0, 80)
    cycle(ev, T0 + 30, 90)
    record = state_of(ev)
    assert record is not None
    assert (record.firing, record.firing_since) == (Level.MAJOR, T0 + 30)


# -- clear (hysteresis) ---------------------------------------------------------------------
def test_clear_holds_until_value_passes_threshold_minus_clear() -> None:
    ev = Evaluator([rule(above={"major": 85}, clear=5)])
    fire(ev, T0, 90)
    assert cycle(ev, T0 + 10, 87) == []
    assert cycle(ev, T0 + 20, 80.1) == []
    assert state_of(ev).firing is Level.MAJOR  # type: ignore[union-attr]
    (event,) = cycle(ev, T0 + 30, 79.9)
    assert (event.kind, event.previous_level, event.value) == (
        EventKind.RESOLVED,
        Level.MAJOR,
        79.9,
    )


def test_clear_boundary_value_releases() -> None:
    ev = Evaluator([rule(above={"major": 90}, clear=5)])
    fire(ev, T0, 92)
    assert cycle(ev, T0 + 10, 87) == []
    assert cycle(ev, T0 + 20, 85.1) == []
    assert [e.kind for e in cycle(ev, T0 + 30, 84.9)] == [EventKind.RESOLVED]


def test_clear_release_of_higher_level_falls_to_a_still_breached_lower_level() -> None:
    ev = Evaluator([rule(clear=5)])  # critical 95, major 85, minor 75
    fire(ev, T0, 90)
    assert cycle(ev, T0 + 10, 81) == []
    assert kinds(cycle(ev, T0 + 20, 79.9)) == [(EventKind.LEVEL_CHANGED, Level.MINOR, Level.MAJOR)]
    # minor is held by hysteresis too: 72 is below 75 but above 75 - 5
    assert cycle(ev, T0 + 30, 72) == []
    assert kinds(cycle(ev, T0 + 40, 69)) == [(EventKind.RESOLVED, None, Level.MINOR)]


OSCILLATION = [91, 84, 89, 83, 90, 81, 88, 82, 86]


def test_oscillation_around_threshold_with_clear_does_not_flap() -> None:
    ev = Evaluator([rule(clear=5)])
    events = [e for i, v in enumerate(OSCILLATION) for e in cycle(ev, T0 + 10 * i, v)]
    assert kinds(events) == [(EventKind.FIRING, Level.MAJOR, None)]


def test_oscillation_without_clear_does_flap() -> None:
    """The contrast that shows the previous test measures something."""
    ev = Evaluator([rule(clear=0)])
    events = [e for i, v in enumerate(OSCILLATION) for e in cycle(ev, T0 + 10 * i, v)]
    assert len(events) == len(OSCILLATION)


# -- UNKNOWN --------------------------------------------------------------------------------
def test_unknown_on_firing_series_holds_state_until_a_real_value() -> None:
    ev = Evaluator([rule()])
    fire(ev, T0, 90)
    before = state_of(ev)
    for i in range(1, 50):
        assert cycle(ev, T0 + 15 * i, None) == []
    assert state_of(ev) == before
    (event,) = cycle(ev, T0 + 1000, 50)
    assert (event.kind, event.previous_level, event.value) == (
        EventKind.RESOLVED,
        Level.MAJOR,
        50,
    )


def test_unknown_on_pending_series_does_not_fire() -> None:
    ev = Evaluator([rule(for_=60)])
    assert cycle(ev, T0, 90) == []
    for i in range(1, 20):
        assert cycle(ev, T0 + 15 * i, None) == []
    # a gap breaks the pending streak: the breach must last `for` again once data is back
    assert state_of(ev) is None
    assert ev.take_changes() != {}  # and the pending row is deleted from the database


def test_unknown_gap_does_not_count_toward_for() -> None:
    ev = Evaluator([rule(for_=120)])
    assert cycle(ev, T0, 90) == []
    for i in range(1, 21):
        assert cycle(ev, T0 + 15 * i, None) == []  # five minutes of failed polls
    assert cycle(ev, T0 + 330, 90) == []  # 30s of known breach so far


def test_unknown_on_quiet_series_creates_no_state() -> None:
    ev = Evaluator([rule()])
    assert cycle(ev, T0, None) == []
    assert ev.export_state() == []
    assert ev.take_changes() == {}


# -- overrides and match --------------------------------------------------------------------
OVERRIDDEN = rule(
    overrides=[
        {"match": {"role": "batch"}, "above": {"major": 98}},
        {"match": {"role": "batch", "site": "x"}, "above": {"major": 97}},
        {"match": {"instance": "web1"}, "above": {"major": 96}},
    ]
)


@pytest.mark.parametrize(
    ("labels", "quiet", "firing"),
    [
        ({"instance": "web1", "role": "batch", "site": "x"}, 95.9, 96.1),  # instance wins
        ({"instance": "web2", "role": "batch", "site": "x"}, 96.9, 97.1),  # two matchers
        ({"instance": "web3", "role": "batch", "site": "y"}, 97.9, 98.1),  # role only
        ({"instance": "web4", "role": "web"}, 75, 75.1),  # no override: rule's minor
    ],
)
def test_most_specific_override_wins(labels: dict[str, str], quiet: float, firing: float) -> None:
    ev = Evaluator([OVERRIDDEN])
    assert cycle(ev, T0, quiet, **labels) == []
    assert [e.kind for e in cycle(ev, T0 + 10, firing, **labels)] == [EventKind.FIRING]


def test_override_replaces_the_whole_levels_mapping() -> None:
    ev = Evaluator([OVERRIDDEN])
    batch = {"instance": "b1", "role": "batch"}
    assert cycle(ev, T0, 90, **batch) == []  # the rule's minor/major are gone
    assert kinds(cycle(ev, T0 + 10, 99.5, **batch)) == [(EventKind.FIRING, Level.MAJOR, None)]


def test_equal_specificity_earlier_override_wins() -> None:
    ev = Evaluator(
        [
            rule(
                overrides=[
                    {"match": {"role": "batch"}, "above": {"major": 90}},
                    {"match": {"site": "x"}, "above": {"major": 60}},
                ]
            )
        ]
    )
    assert cycle(ev, T0, 70, instance="a", role="batch", site="x") == []
    assert [e.kind for e in cycle(ev, T0, 70, instance="b", site="x")] == [EventKind.FIRING]


def test_disabled_override_stops_evaluation_for_its_series_only() -> None:
    ev = Evaluator([rule(overrides=[{"match": {"role": "batch"}, "disabled": True}])])
    assert cycle(ev, T0, 99, instance="b1", role="batch") == []
    assert ev.export_state() == []
    assert [e.kind for e in cycle(ev, T0, 99, instance="w1", role="web")] == [EventKind.FIRING]


def test_rule_match_filters_series() -> None:
    ev = Evaluator([rule(match={"site": ["x", "z"]})])
    assert cycle(ev, T0, 99, instance="a", site="y") == []
    assert cycle(ev, T0, 99, instance="b") == []  # missing label never matches "x"
    assert [e.kind for e in cycle(ev, T0, 99, instance="c", site="z")] == [EventKind.FIRING]


def test_override_for_and_clear_apply_per_series() -> None:
    ev = Evaluator([rule(for_=60, overrides=[{"match": {"role": "db"}, "for": 0, "clear": 10}])])
    assert [e.kind for e in cycle(ev, T0, 90, instance="d", role="db")] == [EventKind.FIRING]
    assert cycle(ev, T0, 90, instance="w", role="web") == []  # still waiting 60s
    assert cycle(ev, T0 + 10, 76, instance="d", role="db") == []  # 76 > 85 - 10: held


def test_two_rules_on_one_metric_fire_independently() -> None:
    ev = Evaluator([rule(name="cpu-warn", above={"minor": 50}), rule(name="cpu-page")])
    events = cycle(ev, T0, 60)
    assert [(e.rule, e.kind) for e in events] == [("cpu-warn", EventKind.FIRING)]
    events = cycle(ev, T0 + 10, 99)
    assert [(e.rule, e.kind, e.level) for e in events] == [
        ("cpu-page", EventKind.FIRING, Level.CRITICAL)
    ]
    assert len({r.fingerprint for r in ev.export_state()}) == 2


# -- restart ----------------------------------------------------------------------------
def test_restart_does_not_refire_a_firing_series() -> None:
    rules = [rule()]
    ev1 = Evaluator(rules)
    fire(ev1, T0, 90)
    ev2 = Evaluator(rules, restored=ev1.export_state())
    assert cycle(ev2, T0 + 60, 90) == []
    assert cycle(ev2, T0 + 75, 91) == []
    # it really remembers: the next change is relative to the restored level
    assert kinds(cycle(ev2, T0 + 90, 50)) == [(EventKind.RESOLVED, None, Level.MAJOR)]


def test_restart_keeps_pending_since() -> None:
    rules = [rule(for_=120)]
    ev1 = Evaluator(rules)
    assert cycle(ev1, T0, 90) == []
    ev2 = Evaluator(rules, restored=ev1.export_state())
    assert cycle(ev2, T0 + 60, 90) == []
    assert kinds(cycle(ev2, T0 + 120, 90)) == [(EventKind.FIRING, Level.MAJOR, None)]


def test_restored_state_is_exported_before_its_series_reappears() -> None:
    rules = [rule()]
    ev1 = Evaluator(rules)
    fire(ev1, T0, 90)
    records = ev1.export_state()
    ev2 = Evaluator(rules, restored=records)
    assert ev2.evaluate(T0 + 60) == []
    assert ev2.export_state() == records


def test_restart_through_sqlite_preserves_every_field(conn: sqlite3.Connection) -> None:
    rules = [
        rule(for_=60),
        rule(name="disk", metric="disk_free", below={"critical": 5, "minor": 20}),
    ]
    ev1 = Evaluator(rules)
    ev1.ingest(
        [
            sample("cpu", 99, T0, instance="web1", site="上海"),
            sample("disk_free", 3, T0, instance="db1", mount="/var"),
        ]
    )
    assert [e.rule for e in ev1.evaluate(T0)] == ["disk"]
    ev1.ingest([sample("cpu", 80, T0 + 30, instance="web2", note='quote " and = sign')])
    assert ev1.evaluate(T0 + 30) == []
    assert [(e.kind, e.level) for e in ev1.evaluate(T0 + 60)] == [
        (EventKind.FIRING, Level.CRITICAL)
    ]
    conn.execute("BEGIN IMMEDIATE")
    save_rule_state(conn, ev1.take_changes())
    conn.execute("COMMIT")

    exported = ev1.export_state()
    loaded = load_rule_state(conn)
    key = lambda r: r.fingerprint  # noqa: E731
    assert sorted(loaded, key=key) == sorted(exported, key=key)
    assert len(loaded) == 3
    assert {r.pending for r in loaded} == {True, False}

    ev2 = Evaluator(rules, restored=loaded)
    ev2.ingest(
        [
            sample("cpu", 99, T0 + 90, instance="web1", site="上海"),
            sample("cpu", 80, T0 + 90, instance="web2", note='quote " and = sign'),
            sample("disk_free", 3, T0 + 90, instance="db1", mount="/var"),
        ]
    )
    assert kinds(ev2.evaluate(T0 + 90)) == [(EventKind.FIRING, Level.MINOR, None)]  # web2 due


# -- reload ---------------------------------------------------------------------------------
def test_reload_with_higher_threshold_resolves_a_no_longer_breaching_series() -> None:
    ev1 = Evaluator([rule()])
    fire(ev1, T0, 90)
    ev2 = Evaluator([rule(above={"major": 95})], restored=ev1.export_state())
    ev2.ingest(ev1.latest_samples())
    (event,) = ev2.evaluate(T0 + 15)
    assert (event.kind, event.previous_level, event.fingerprint) == (
        EventKind.RESOLVED,
        Level.MAJOR,
        FP_WEB1,
    )
    assert ev2.evaluate(T0 + 30) == []


def test_reload_that_drops_a_level_forgets_its_pending_since() -> None:
    ev1 = Evaluator([rule()])
    fire(ev1, T0, 90)  # since: minor and major
    ev2 = Evaluator([rule(above={"major": 95})], restored=ev1.export_state())
    ev2.ingest(ev1.latest_samples())
    assert [e.kind for e in ev2.evaluate(T0 + 15)] == [EventKind.RESOLVED]
    assert ev2.take_changes() == {FP_WEB1: None}
    assert ev2.export_state() == []


def test_reload_with_rule_removed_resolves_its_firing_series() -> None:
    ev1 = Evaluator([rule(), rule(metric="mem")])
    fire(ev1, T0, 90)
    ev2 = Evaluator([rule(metric="mem")], restored=ev1.export_state())
    ev2.ingest(ev1.latest_samples())
    (event,) = ev2.evaluate(T0 + 15)
    assert (event.kind, event.rule, event.previous_level, event.level) == (
        EventKind.RESOLVED,
        "cpu",
        Level.MAJOR,
        None,
    )
    assert "no longer applies" in event.summary
    assert ev2.take_changes() == {FP_WEB1: None}
    assert ev2.evaluate(T0 + 30) == []  # only once


def test_reload_that_disables_a_series_resolves_it() -> None:
    ev1 = Evaluator([rule()])
    fire(ev1, T0, 90, instance="web1", role="batch")
    fp = fingerprint("cpu", make_labels({"instance": "web1", "role": "batch"}))
    disabled = rule(overrides=[{"match": {"role": "batch"}, "disabled": True}])
    ev2 = Evaluator([disabled], restored=ev1.export_state())
    ev2.ingest(ev1.latest_samples())
    (event,) = ev2.evaluate(T0 + 15)
    assert (event.kind, event.fingerprint) == (EventKind.RESOLVED, fp)
    assert "no longer applies" in event.summary
    assert ev2.take_changes() == {fp: None}


def test_reload_that_disables_a_pending_series_deletes_its_state() -> None:
    ev1 = Evaluator([rule(for_=300)])
    assert cycle(ev1, T0, 90, instance="web1", role="batch") == []
    fp = fingerprint("cpu", make_labels({"instance": "web1", "role": "batch"}))
    disabled = rule(for_=300, overrides=[{"match": {"role": "batch"}, "disabled": True}])
    ev2 = Evaluator([disabled], restored=ev1.export_state())
    ev2.ingest(ev1.latest_samples())
    assert ev2.evaluate(T0 + 15) == []
    assert ev2.take_changes() == {fp: None}


# -- take_changes ---------------------------------------------------------------------------
def test_take_changes_records_then_deletes(conn: sqlite3.Connection) -> None:
    ev = Evaluator([rule()])
    fire(ev, T0, 90)
    changes = ev.take_changes()
    assert list(changes) == [FP_WEB1]
    record = changes[FP_WEB1]
    assert record is not None
    assert record.firing is Level.MAJOR
    assert ev.take_changes() == {}  # taken means forgotten
    save_rule_state(conn, changes)
    assert [r.fingerprint for r in load_rule_state(conn)] == [FP_WEB1]

    assert [e.kind for e in cycle(ev, T0 + 15, 10)] == [EventKind.RESOLVED]
    changes = ev.take_changes()
    assert changes == {FP_WEB1: None}
    save_rule_state(conn, changes)
    assert load_rule_state(conn) == []


def test_quiet_series_produce_no_changes() -> None:
    ev = Evaluator([rule()])
    for i in range(5):
        cycle(ev, T0 + 15 * i, 10)
    assert ev.take_changes() == {}


# -- summaries ------------------------------------------------------------------------------
def test_summary_template_renders_value_and_labels() -> None:
    ev = Evaluator([rule(summary="CPU {{ value | round(1) }}% on {{ labels.instance }}")])
    assert fire(ev, T0, 97.456).summary == "CPU 97.5% on web1"


def test_summary_template_sees_level_on_resolve_too() -> None:
    ev = Evaluator([rule(summary="{{ level }} {{ rule }} {{ metric }}")])
    assert fire(ev, T0, 90).summary == "major cpu cpu"
    (event,) = cycle(ev, T0 + 10, 10)
    assert event.summary == "major cpu cpu"  # the level that resolved


@pytest.mark.parametrize(
    "template",
    [
        "{{ value + 'x' }}",
        "{{ value / 0 }}",
        "{{ nothing() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # sandbox escape attempt
    ],
)
def test_broken_summary_template_falls_back_to_default(template: str) -> None:
    ev = Evaluator([rule(summary=template)])
    assert fire(ev, T0, 97).summary == "cpu is 97 on web1"


def test_summary_template_key_error_falls_back_and_keeps_the_event() -> None:
    ev = Evaluator([rule(summary="{{ '%(instance)s in %(site)s' % labels }}")])
    assert fire(ev, T0, 97).summary == "cpu is 97 on web1"


def test_label_values_are_data_not_templates() -> None:
    ev = Evaluator([rule(summary="on {{ labels.instance }}")])
    event = fire(ev, T0, 97, instance="{{ 7*7 }}")
    assert event.summary == "on {{ 7*7 }}"


def test_default_summary_without_template() -> None:
    ev = Evaluator([rule()])
    assert fire(ev, T0, 97.5).summary == "cpu is 97.5 on web1"
    assert fire(ev, T0, 99, host="x").summary == "cpu is 99 on ?"
