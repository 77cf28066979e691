"""Collection jobs on APScheduler: each target polled on its interval, never overlapping.

A job only collects and hands samples to a sink; it never evaluates or notifies. A failed
collection turns every series the target produced last time into UNKNOWN samples, so the
evaluator holds their alerts instead of seeing a recovery. Missing data is its own condition:
every run also reports ``alertd_target_up`` (1 collected, 0 failed) with the target's labels,
which a rule can alert on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alertd.clock import Clock
from alertd.collect.host import (
    DEFAULT_EXCLUDED_FSTYPES,
    DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES,
    HostCollector,
)
from alertd.config.collectors import HostTarget
from alertd.metrics import Metrics
from alertd.model import Labels, Sample, make_labels

log = logging.getLogger(__name__)

SampleSink = Callable[[Sequence[Sample]], None]
UP_METRIC = "alertd_target_up"


class Collector(Protocol):
    def collect(self) -> list[Sample]:
        """Return one round of samples; raise on failure."""
        ...


@dataclass(slots=True)
class CollectJob:
    """One target's collector and what it produced last time."""

    name: str
    interval: float
    collector: Collector
    labels: Labels
    last_series: tuple[tuple[str, Labels], ...] = ()
    failing: bool = False


def host_labels(target: HostTarget) -> Labels:
    instance = target.instance or socket.gethostname()
    return make_labels({**target.labels, "instance": instance})


def build_jobs(hosts: Iterable[HostTarget], clock: Clock) -> list[CollectJob]:
    """Return a collection job per configured target."""
    jobs = []
    for target in hosts:
        labels = host_labels(target)
        collector = HostCollector(
            labels=labels,
            processes=target.processes,
            clock=clock,
            exclude_fstypes=DEFAULT_EXCLUDED_FSTYPES | frozenset(target.exclude_fstypes),
            exclude_mountpoint_prefixes=(
                *DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES,
                *target.exclude_mountpoints,
            ),
        )
        name = f"host:{dict(labels)['instance']}"
        jobs.append(CollectJob(name, target.interval, collector, labels))
    return jobs


class CollectionScheduler:
    """Runs collection jobs on an ``AsyncIOScheduler`` and feeds their samples to a sink."""

    def __init__(self, sink: SampleSink, metrics: Metrics, clock: Clock) -> None:
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.jobs: list[CollectJob] = []

    def start(self, jobs: list[CollectJob]) -> None:
        self.scheduler.start()
        self.replace(jobs)

    def replace(self, jobs: list[CollectJob]) -> None:
        """Swap the whole job set (config reload); the first run of each is now."""
        self.scheduler.remove_all_jobs()
        self.jobs = jobs
        self.metrics.init_collectors(job.name for job in jobs)
        start = datetime.now(UTC)
        for i, job in enumerate(jobs):
            self.scheduler.add_job(
                self.run_job,
                "interval",
                args=[job],
                id=job.name,
                seconds=job.interval,
                jitter=min(job.interval * 0.1, 5.0),  # spread many targets' polls apart
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(job.interval)),
                next_run_time=start + timedelta(milliseconds=10 * i),
            )

    async def run_job(self, job: CollectJob) -> None:
        """Collect once from ``job``'s target and hand the samples on."""
        try:
            # a hung mount or /proc read must not hold the job forever; the thread may stay
            # stuck, but max_instances=1 keeps it to one and the series go UNKNOWN
            async with asyncio.timeout(job.interval):
                samples = await asyncio.to_thread(job.collector.collect)
        except Exception as exc:
            self.metrics.collection_errors.labels(job.name).inc()
            if not job.failing:
                log.warning("collection from %s failed: %s", job.name, exc)
            job.failing = True
            now = self.clock.now()
            unknown = [Sample(metric, labels, None, now) for metric, labels in job.last_series]
            self.sink([*unknown, Sample(UP_METRIC, job.labels, 0.0, now)])
            return
        if job.failing:
            log.info("collection from %s works again", job.name)
            job.failing = False
        job.last_series = tuple((s.metric, s.labels) for s in samples)
        self.metrics.samples_collected.labels(job.name).inc(len(samples))
        self.sink([*samples, Sample(UP_METRIC, job.labels, 1.0, self.clock.now())])

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
