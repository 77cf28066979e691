"""Storm detection: housekeeping waits while alert events pour in, but not forever."""

from __future__ import annotations

from alertd.storm import StormWatch, put_off


class Ticks:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_storm_is_threshold_events_in_this_second_or_the_last() -> None:
    clock = Ticks()
    storm = StormWatch(threshold=100, clock=clock)
    storm.count(64)
    assert not storm.raging()
    storm.count(64)
    assert storm.raging()  # 128 this second
    clock.t += 1.0
    assert storm.raging()  # the second before still counts
    storm.count(10)
    clock.t += 1.0
    assert not storm.raging()  # 10, then 0


def test_a_gap_of_seconds_forgets_the_old_count() -> None:
    clock = Ticks()
    storm = StormWatch(threshold=100, clock=clock)
    storm.count(500)
    clock.t += 5.0  # not the next second: what came before is gone
    assert not storm.raging()


def test_housekeeping_waits_for_a_storm_but_at_most_max_delay() -> None:
    clock = Ticks()
    storm = StormWatch(threshold=10, clock=clock)
    assert not put_off(0.0, storm)  # calm: run now
    storm.count(50)
    assert put_off(0.0, storm)
    assert put_off(299.0, storm, max_delay=300.0)
    assert not put_off(300.0, storm, max_delay=300.0)  # overdue: runs in the storm all the same
