"""Ingest backpressure: wait while the delivery backlog is over the limit, at most max_wait."""

from __future__ import annotations

import asyncio
import sqlite3

from alertd.ingest.backpressure import POLL, Backpressure


async def test_under_the_limit_it_does_not_look_twice() -> None:
    looks: list[int] = []

    def backlog(cap: int) -> int:
        looks.append(cap)
        return 500

    assert await Backpressure(backlog, lambda: (500, 1.0)).wait() == 0.0
    assert looks == [501]  # counted only as far as it needs to know


async def test_it_waits_until_the_backlog_is_at_the_limit() -> None:
    levels = iter([800, 650, 500, 10])
    held: list[float] = []
    waited = await Backpressure(lambda cap: next(levels), lambda: (500, 5.0), held.append).wait()
    assert next(levels) == 10  # stopped looking at 500
    assert held == [waited]
    assert waited > 0


async def test_it_gives_up_after_max_wait() -> None:
    looks = 0

    def backlog(cap: int) -> int:
        nonlocal looks
        looks += 1
        return 10_000

    waited = await Backpressure(backlog, lambda: (500, 0.03)).wait()
    assert waited >= 0.03
    assert looks >= 2  # looked again while it waited


async def test_a_limit_of_zero_or_no_wait_turns_it_off() -> None:
    def backlog(cap: int) -> int:
        raise AssertionError("not asked")

    assert await Backpressure(backlog, lambda: (0, 1.0)).wait() == 0.0
    assert await Backpressure(backlog, lambda: (500, 0.0)).wait() == 0.0


async def test_a_backlog_that_cannot_be_read_holds_nothing_back(caplog) -> None:  # type: ignore[no-untyped-def]
    def backlog(cap: int) -> int:
        raise sqlite3.OperationalError("database is locked")

    pressure = Backpressure(backlog, lambda: (500, 5.0))
    assert await pressure.wait() == 0.0
    assert await pressure.wait() == 0.0
    warnings = [r for r in caplog.records if "cannot read the backlog" in r.getMessage()]
    assert len(warnings) == 1  # not a line per request


async def test_requests_held_together_share_their_looks_at_the_backlog() -> None:
    looks = 0

    def backlog(cap: int) -> int:
        nonlocal looks
        looks += 1
        return 10_000  # never shrinks: each request waits its whole max_wait

    pressure = Backpressure(backlog, lambda: (500, 0.05))
    waited = await asyncio.gather(*(pressure.wait() for _ in range(50)))
    assert all(w >= 0.05 for w in waited)
    # alone, each would look at least twice (100 looks); shared, one look per POLL at most
    assert looks <= 0.05 / POLL + 3
