"""Collection jobs: samples reach the sink; a failure makes UNKNOWNs and target_up 0."""

from __future__ import annotations

import logging

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
