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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alertd.clock import Clock
from alertd.collect.host import (
    DEFAULT_EXCLUDED_FSTYPES,
    DEFAULT_EXCLUDED_MOUNTPOINT_PREFIXES,
    HostCollector,
)
from alertd.collect.snmp.collector import SnmpCollector, community_connector
from alertd.collect.snmp.transport import SnmpTransport
from alertd.collect.snmp.v3 import v3_connector
from alertd.config.collectors import HostTarget, SnmpTarget
from alertd.config.load import Config
from alertd.errors import CollectError, ConfigError, ConfigProblem
from alertd.metrics import Metrics
from alertd.model import TARGET_UP_METRIC, Labels, Sample, make_labels

log = logging.getLogger(__name__)

SampleSink = Callable[[Sequence[Sample]], None]
UP_METRIC = TARGET_UP_METRIC


class Collector(Protocol):
    async def collect(self) -> list[Sample]:
        """Return one round of samples; raise on failure."""
        ...


class ThreadedCollector:
    """Runs a blocking collector (psutil) in a worker thread."""

    def __init__(self, blocking: HostCollector) -> None:
        self.blocking = blocking

    async def collect(self) -> list[Sample]:
        return await asyncio.to_thread(self.blocking.collect)


@dataclass(slots=True)
class CollectJob:
    """One target's collector and what it produced last time.

    A failed poll is "soft" until ``unreachable_after`` fail in a row, then "hard": only then
    does ``alertd_target_up`` drop to 0 (before that it is UNKNOWN, like the rest).
    """

    name: str
    interval: float
    collector: Collector
    labels: Labels
    unreachable_after: int = 1
    last_series: tuple[tuple[str, Labels], ...] = ()
    failures: int = 0


def host_labels(target: HostTarget) -> Labels:
    instance = target.instance or socket.gethostname()
    return make_labels({**target.labels, "instance": instance})


def snmp_labels(target: SnmpTarget) -> Labels:
    return make_labels({**target.labels, "instance": target.instance or target.address})


def _community(target: SnmpTarget) -> bytes:
    if target.community is not None:
        return target.community.get_secret_value().encode()
    assert target.community_file is not None
    try:
        return Path(target.community_file).read_text(encoding="utf-8").strip().encode()
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(target.community_file, 0, 0, "", f"cannot read: {exc.strerror}")]
        ) from exc


def build_jobs(config: Config, clock: Clock, transport: SnmpTransport | None) -> list[CollectJob]:
    """Return a collection job per configured target."""
    jobs = []
    for snmp in config.snmp:
        if transport is None:
            raise CollectError("SNMP targets are configured but no SNMP transport is running")
        labels = snmp_labels(snmp)
        if snmp.version != "v3" or (snmp.v3 and snmp.v3.security_level == "noAuthNoPriv"):
            log.warning(
                "snmp target %s uses %s without encryption: credentials travel in clear text "
                "(SNMPv3 authPriv is the secure choice)",
                dict(labels)["instance"],
                snmp.version,
            )
        profiles = [config.profiles[name] for name in snmp.profiles]
        if snmp.version == "v3":
            connect = v3_connector(snmp)
        else:
            connect = community_connector(snmp, transport, _community(snmp))
        poller = SnmpCollector(snmp, profiles, labels, clock, connect)
        name = f"snmp:{dict(labels)['instance']}"
        jobs.append(CollectJob(name, snmp.interval, poller, labels, snmp.unreachable_after))
    for target in config.hosts:
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
        jobs.append(CollectJob(name, target.interval, ThreadedCollector(collector), labels))
    return jobs


class PollExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 has no types
    """APScheduler's asyncio executor, quiet about the polls its shutdown cancels.

    ``shutdown()`` cancels every poll still running or not yet started, and the parent logs
    each as "Error running job" with a traceback: a normal stop would read like a crash.
    """

    def _run_job_error(self, job_id: str, exc: BaseException, traceback: object = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self._run_job_success(job_id, [])  # the instance bookkeeping, and no event
            return
        super()._run_job_error(job_id, exc, traceback)


class CollectionScheduler:
    """Runs collection jobs on an ``AsyncIOScheduler`` and feeds their samples to a sink."""

    def __init__(self, sink: SampleSink, metrics: Metrics, clock: Clock) -> None:
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": PollExecutor()})
        self.jobs: list[CollectJob] = []
        self.stopping = False

    def start(self, jobs: list[CollectJob]) -> None:
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        self.replace(jobs)

    def _skipped(self, event: JobSubmissionEvent) -> None:
        # the previous poll of this target is still running: skip, count, never queue
        self.metrics.collection_skipped.labels(event.job_id).inc()

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
                samples = await job.collector.collect()
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            log.debug("collection from %s cut short by the stop", job.name)
            return  # APScheduler would log the cancel as a job error with a traceback
        except Exception as exc:
            self.metrics.collection_errors.labels(job.name).inc()
            job.failures += 1
            hard = job.failures >= job.unreachable_after
            if job.failures == 1 or job.failures == job.unreachable_after:
                log.warning(
                    "collection from %s failed (%d in a row, %s): %s",
                    job.name,
                    job.failures,
                    "down" if hard else "soft",
                    exc or type(exc).__name__,
                )
            now = self.clock.now()
            unknown = [Sample(metric, labels, None, now) for metric, labels in job.last_series]
            self.sink([*unknown, Sample(UP_METRIC, job.labels, 0.0 if hard else None, now)])
            return
        if job.failures:
            log.info("collection from %s works again after %d failures", job.name, job.failures)
            job.failures = 0
        job.last_series = tuple((s.metric, s.labels) for s in samples)
        self.metrics.samples_collected.labels(job.name).inc(len(samples))
        self.sink([*samples, Sample(UP_METRIC, job.labels, 1.0, self.clock.now())])

    def shutdown(self) -> None:
        """Stop polling; polls still running are cancelled."""
        self.stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
