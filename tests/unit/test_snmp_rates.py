"""Counter -> rate: wraps, resets, agent restarts; derived interface metrics."""

from __future__ import annotations

import pytest

from alertd.collect.snmp.collector import derive
from alertd.collect.snmp.rates import WRAP32, RateTracker
from alertd.config.snmp_profiles import Derived


def test_first_value_has_no_rate_then_delta_over_time() -> None:
    r = RateTracker()
    assert r.rate("k", 1000, 64, now=10.0) is None
    assert r.rate("k", 4000, 64, now=20.0) == 300.0


def test_counter32_wrap_near_2_32_is_a_small_delta() -> None:
    r = RateTracker()
    r.rate("k", WRAP32 - 100, 32, now=0.0)
    assert r.rate("k", 400, 32, now=10.0) == 50.0  # 100 up to the wrap + 400 after, over 10 s


def test_counter64_going_back_is_a_reset_not_a_wrap() -> None:
    r = RateTracker()
    r.rate("k", 2**63, 64, now=0.0)
    assert r.rate("k", 5, 64, now=10.0) is None  # skip one interval, never a 2**64 spike
    assert r.rate("k", 105, 64, now=20.0) == 10.0


def test_agent_restart_reseeds_every_counter() -> None:
    r = RateTracker()
    assert r.observe_uptime(5000.0, None) is False
    r.rate("a", 10_000, 32, now=0.0)
    r.rate("b", 10_000, 64, now=0.0)
    assert r.observe_uptime(5060.0, 60.0) is False
    assert r.observe_uptime(3.0, 60.0) is True  # sysUpTime went back
    assert r.rate("a", 20, 32, now=60.0) is None  # re-seeded, not a wrap of 2**32 - 9980
    assert r.rate("b", 20, 64, now=60.0) is None
    assert r.restarts == 1


def test_uptime_jumping_ahead_of_real_time_is_a_restart_too() -> None:
    r = RateTracker()
    r.observe_uptime(100.0, None)
    r.rate("a", 50, 32, now=0.0)
    assert r.observe_uptime(100.0 + 3600, 60.0) is True  # a different agent run answered


def test_same_time_twice_gives_no_rate() -> None:
    r = RateTracker()
    r.rate("k", 1, 32, now=5.0)
    assert r.rate("k", 2, 32, now=5.0) is None


def test_forget_except_bounds_memory() -> None:
    r = RateTracker()
    r.rate("gone", 1, 32, now=0.0)
    r.rate("kept", 1, 32, now=0.0)
    r.forget_except({"kept"})
    assert r.rate("gone", 2, 32, now=1.0) is None
    assert r.rate("kept", 2, 32, now=1.0) == 1.0


def d(**kw: str) -> Derived:
    return Derived.model_validate({"metric": "x", **kw})


def test_utilization_from_bytes_per_second_and_mbps() -> None:
    item = d(kind="utilization", rate="r", speed_mbps="s")
    assert derive(item, {"r": 12_500_000.0, "s": 1000.0}) == pytest.approx(10.0)
    assert derive(item, {"r": 1.0, "s": 0.0}) is None  # unknown speed: no utilisation
    assert derive(item, {"s": 1000.0}) is None


def test_percent_from_part_or_free() -> None:
    assert derive(d(kind="percent", part="u", total="t"), {"u": 25.0, "t": 200.0}) == 12.5
    assert derive(d(kind="percent", free="f", total="t"), {"f": 150.0, "t": 200.0}) == 25.0
    assert derive(d(kind="percent", part="u", total="t"), {"u": 1.0, "t": 0.0}) is None


@pytest.mark.parametrize(
    ("admin", "oper", "down"),
    [(1, 1, 0.0), (1, 2, 1.0), (1, 7, 1.0), (2, 2, 0.0), (1, 5, 0.0), (1, 6, 0.0)],
)
def test_link_down_only_when_admin_up_and_oper_down(admin: int, oper: int, down: float) -> None:
    item = d(kind="link_down", admin="a", oper="o")
    assert derive(item, {"a": float(admin), "o": float(oper)}) == down
