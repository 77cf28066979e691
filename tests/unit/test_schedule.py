"""Collection jobs: samples reach the sink; a failure makes UNKNOWNs and target_up 0."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.collect.schedule import UP_METRIC, CollectionScheduler, CollectJob
from alertd.metrics import Metrics
from alertd.model import Sample, make_labels

LABELS = make_labels({"instance": "h1", "site": "lab"})


class FlakyCollector:
    def __init__(self) -> None:
        self.fail = False

    async def collect(self) -> list[Sample]:
        if self.fail:
            raise OSError("psutil could not read /proc")
        return [Sample("host_load1", LABELS, 0.5, 1.0), Sample("host_load5", LABELS, 0.4, 1.0)]


@pytest.fixture
def setup() -> tuple[CollectionScheduler, CollectJob, FlakyCollector, list[Sample], Metrics]:
    received: list[Sample] = []
    metrics = Metrics(CollectorRegistry())
    sched = CollectionScheduler(received.extend, metrics, FakeClock())
    collector = FlakyCollector()
    job = CollectJob("host:h1", 15.0, collector, LABELS)
    return sched, job, collector, received, metrics


async def test_success_then_failure_then_recovery(setup, caplog) -> None:
    sched, job, collector, received, metrics = setup
    await sched.run_job(job)
    assert [(s.metric, s.value) for s in received] == [
        ("host_load1", 0.5),
        ("host_load5", 0.4),
        (UP_METRIC, 1.0),
    ]
    received.clear()
    collector.fail = True
    with caplog.at_level(logging.WARNING):
        await sched.run_job(job)
        await sched.run_job(job)
    # every series seen last time is UNKNOWN, never absent, and the target is down
    assert [(s.metric, s.value) for s in received[:3]] == [
        ("host_load1", None),
        ("host_load5", None),
        (UP_METRIC, 0.0),
    ]
    assert all(s.labels == LABELS for s in received)
    assert sum("failed" in r.getMessage() for r in caplog.records) == 1  # logged once, not per run
    assert (
        metrics.registry.get_sample_value(
            "alertd_collection_errors_total", {"collector": "host:h1"}
        )
        == 2
    )
    received.clear()
    collector.fail = False
    await sched.run_job(job)
    assert received[-1].metric == UP_METRIC
    assert received[-1].value == 1.0


async def test_soft_failures_keep_target_up_unknown_until_hard(setup) -> None:
    sched, job, collector, received, _ = setup
    job.unreachable_after = 3
    await sched.run_job(job)
    collector.fail = True
    ups = []
    for _ in range(4):
        received.clear()
        await sched.run_job(job)
        ups.append(received[-1].value)
    assert ups == [None, None, 0.0, 0.0]  # soft, soft, hard (3 in a row), still down


class HangingCollector:
    """A poll that only ends when cancelled (a hung mount)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def collect(self) -> list[Sample]:
        self.started.set()
        await asyncio.Event().wait()
        return []


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_shutdown_cuts_a_running_poll_quietly(caplog) -> None:
    received: list[Sample] = []
    sched = CollectionScheduler(received.extend, Metrics(CollectorRegistry()), FakeClock())
    collector = HangingCollector()
    caplog.set_level(logging.DEBUG)
    sched.start([CollectJob("host:h1", 15.0, collector, LABELS)])
    await asyncio.wait_for(collector.started.wait(), 5)
    sched.shutdown()
    for _ in range(5):  # the cancel, then APScheduler's done-callback
        await asyncio.sleep(0)
    assert _errors(caplog) == []
    assert "cut short by the stop" in caplog.text
    assert received == []  # a poll that never finished reports nothing


async def test_shutdown_before_a_submitted_poll_starts_is_no_error(caplog) -> None:
    sched = CollectionScheduler([].extend, Metrics(CollectorRegistry()), FakeClock())
    sched.start([])
    job = sched.scheduler.add_job(
        sched.run_job,
        "interval",
        args=[CollectJob("host:h1", 15.0, HangingCollector(), LABELS)],
        seconds=15,
        id="host:h1",
        next_run_time=None,
    )  # paused: only the submit below runs it
    executor = sched.scheduler._lookup_executor("default")
    caplog.set_level(logging.DEBUG)
    executor.submit_job(job, [datetime.now(UTC)])
    sched.shutdown()  # cancels the task before its first step
    for _ in range(5):
        await asyncio.sleep(0)
    assert _errors(caplog) == []
    assert executor._instances == {}  # the instance count was given back


async def test_a_cancel_outside_a_stop_still_propagates() -> None:
    sched = CollectionScheduler([].extend, Metrics(CollectorRegistry()), FakeClock())
    collector = HangingCollector()
    task = asyncio.create_task(sched.run_job(CollectJob("host:h1", 15.0, collector, LABELS)))
    await collector.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
