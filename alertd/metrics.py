"""alertd's own Prometheus metrics, built on a registry handed in by the composition root.

No import-time registration: tests build a fresh ``CollectorRegistry`` each time.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
    disable_created_metrics,
)

from alertd.errors import ATTEMPT_OUTCOMES, FailureReason
from alertd.model import EventKind

# no ``_created`` series beside each counter: they were 217 of /metrics' 495 lines, and no
# rule or dashboard reads them (Prometheus' own exporters leave them out too)
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

PRIORITIES = ("P1", "P2", "P3", "P4")
# where work can fail and be logged with its error (alertd_errors_total{where})
ERROR_PLACES = ("evaluation", "ingest", "deadline", "trap", "retention", "kpis", "delivery")
BACKLOG_CAP = 100_000  # alertd_outbox_backlog counts no further (the count stays cheap)


class Metrics:
    """Every ``alertd_*`` metric the daemon exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # process_start_time_seconds, memory, CPU, open files: a crash loop shows as restarts
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        Gauge(
            "alertd_build_info",
            "alertd's version, as a label (always 1).",
            ["version"],
            registry=registry,
        ).labels(_version()).set(1)
        self.errors = Counter(
            "alertd_errors_total",
            "Work that failed and was logged with its error, by where: evaluation (a cycle), "
            "ingest (a POST answered 503), deadline, trap, retention, kpis, delivery (the "
            "worker could not read or record the outbox). Each is tried "
            "again; a rise that goes on needs a look at the log.",
            ["where"],
            registry=registry,
        )
        for where in ERROR_PLACES:
            self.errors.labels(where)
        self.samples_collected = Counter(
            "alertd_samples_collected_total",
            "Samples produced by collectors (UNKNOWN samples included).",
            ["collector"],
            registry=registry,
        )
        self.collection_errors = Counter(
            "alertd_collection_errors_total",
            "Collections that failed or partly failed.",
            ["collector"],
            registry=registry,
        )
        self.collection_skipped = Counter(
            "alertd_collection_skipped_total",
            "Polls skipped because the previous poll of the target was still running.",
            ["collector"],
            registry=registry,
        )
        self.snmp_replies_dropped = Counter(
            "alertd_snmp_replies_dropped_total",
            "SNMP replies dropped: malformed, unmatched request id, wrong source.",
            ["reason"],
            registry=registry,
        )
        self.snmp_traps_dropped = Counter(
            "alertd_snmp_traps_dropped_total",
            "SNMP traps dropped: unknown source, bad credentials, malformed, unsupported PDU, "
            "too large, over the per-source rate.",
            ["reason"],
            registry=registry,
        )
        reasons = ("unknown_source", "bad_credentials", "malformed", "unsupported_pdu")
        for reason in (*reasons, "too_large", "rate_limited"):
            self.snmp_traps_dropped.labels(reason)
        self.rule_evaluations = Counter(
            "alertd_rule_evaluations_total",
            "Evaluation cycles run (each covers every rule).",
            registry=registry,
        )
        self.evaluation_duration = Histogram(
            "alertd_rule_evaluation_duration_seconds",
            "Time one evaluation cycle took.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        self.series = Gauge("alertd_series", "Series held by the evaluator.", registry=registry)
        self.alert_events = Counter(
            "alertd_alert_events_total",
            "Rule state changes by kind.",
            ["kind"],
            registry=registry,
        )
        self.ingest_held = Summary(
            "alertd_ingest_held_seconds",
            "POSTs of alerts held back while the delivery backlog shrank, and how long.",
            registry=registry,
        )
        self.incidents_open = Gauge(
            "alertd_incidents_open",
            "Unresolved incidents by priority.",
            ["priority"],
            registry=registry,
        )
        self.notifications_sent = Counter(
            "alertd_notifications_sent_total",
            "Notifications delivered, by channel.",
            ["channel"],
            registry=registry,
        )
        self.notifications_held = Counter(
            "alertd_notifications_held_total",
            "Notifications held by a rate limit and sent later in a digest, by channel.",
            ["channel"],
            registry=registry,
        )
        self.notification_attempts = Counter(
            "alertd_notification_attempts_total",
            "Delivery attempts by channel and outcome (ok, retryable, permanent, ambiguous).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.notification_failovers = Counter(
            "alertd_notification_failovers_total",
            "Notifications that failed for good on one channel and went to the next.",
            ["channel"],
            registry=registry,
        )
        self.outbox_intents = Gauge(
            "alertd_outbox_intents",
            "Notification intents in the durable outbox, by state (refreshed once a minute, "
            "put off during an alert storm; see alertd_outbox_backlog for now).",
            ["state"],
            registry=registry,
        )
        # read from the outbox at each scrape (two indexed reads): a backlog alert fires and
        # clears on what is true now, storm or not
        self.outbox_backlog = Gauge(
            "alertd_outbox_backlog",
            f"Notifications due and not yet sent, counted up to {BACKLOG_CAP}.",
            registry=registry,
        )
        self.outbox_oldest_unsent = Gauge(
            "alertd_outbox_oldest_unsent_seconds",
            "Age of the oldest notification neither delivered nor given up yet (waiting, "
            "retrying, in flight or held by a rate limit); 0 when there is none. It grows "
            "while a page reaches nobody: a failing provider, a stuck worker, a storm.",
            registry=registry,
        )
        self.notifications_failed = Counter(
            "alertd_notifications_failed_total",
            "Failed delivery attempts (not notifications: each retry counts), by channel and "
            "reason.",
            ["channel", "reason"],
            registry=registry,
        )
        self.notifications_given_up = Counter(
            "alertd_notifications_given_up_total",
            "Notifications that failed for good on a channel (a permanent error, or retries "
            "past delivery.max_age), by channel and the last attempt's reason; a failover, "
            "if the team has one, is counted in alertd_notification_failovers_total.",
            ["channel", "reason"],
            registry=registry,
        )
        # the two processes writing the state database take turns (state/db.py): how long
        # each waited for the other, and held the lock (its write transactions), in seconds
        self.state_lock_waited = Counter(
            "alertd_state_write_lock_wait_seconds_total",
            "Seconds spent waiting for the state database's writer lock, by process "
            "(daemon, delivery).",
            ["process"],
            registry=registry,
        )
        self.state_lock_held = Counter(
            "alertd_state_write_lock_held_seconds_total",
            "Seconds the state database's writer lock was held (write transactions), by "
            "process (daemon, delivery).",
            ["process"],
            registry=registry,
        )
        self.state_write_turns = Counter(
            "alertd_state_write_turns_total",
            "Turns holding the state database's writer lock (one or more write "
            "transactions each), by process (daemon, delivery).",
            ["process"],
            registry=registry,
        )
        self.delivery_worker_up = Gauge(
            "alertd_delivery_worker_up",
            "1 while the delivery worker process runs, 0 while it is down (intents wait).",
            registry=registry,
        )
        self.delivery_worker_restarts = Counter(
            "alertd_delivery_worker_restarts_total",
            "Delivery worker processes started again after one exited unexpectedly.",
            registry=registry,
        )
        self.reload_success = Gauge(
            "alertd_config_last_reload_successful",
            "1 if the last config load or reload succeeded, 0 if it was rejected.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            "alertd_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.",
            registry=registry,
        )
        # KPIs over the last 30 days, refreshed every minute (``alertd report`` for any window)
        kpi = ["priority"]
        self.kpi_mtta = Gauge(
            "alertd_kpi_mtta_seconds", "Mean time to acknowledge, 30 days.", kpi, registry=registry
        )
        self.kpi_mttr = Gauge(
            "alertd_kpi_mttr_seconds", "Mean time to resolve, 30 days.", kpi, registry=registry
        )
        self.kpi_incidents = Gauge(
            "alertd_kpi_incidents", "Incidents opened, 30 days.", kpi, registry=registry
        )
        self.kpi_breaches = Gauge(
            "alertd_kpi_sla_breaches",
            "Incidents that missed their respond or resolve target, 30 days.",
            ["priority", "target"],
            registry=registry,
        )
        self.kpi_tier1 = Gauge(
            "alertd_kpi_tier1_resolution_ratio",
            "Share of resolved incidents resolved without escalation, 30 days.",
            kpi,
            registry=registry,
        )
        self.kpi_team_mtta = Gauge(
            "alertd_kpi_team_mtta_seconds",
            "Mean time to acknowledge per team, 30 days.",
            ["team"],
            registry=registry,
        )
        self.kpi_team_mttr = Gauge(
            "alertd_kpi_team_mttr_seconds",
            "Mean time to resolve per team, 30 days.",
            ["team"],
            registry=registry,
        )
        self.kpi_team_breaches = Gauge(
            "alertd_kpi_team_sla_breaches",
            "Incidents that missed their respond or resolve target, per team, 30 days.",
            ["team", "target"],
            registry=registry,
        )
        self.kpi_team_tier1 = Gauge(
            "alertd_kpi_team_tier1_resolution_ratio",
            "Share of a team's resolved incidents resolved without escalation, 30 days.",
            ["team"],
            registry=registry,
        )
        self.kpi_rule_pages = Gauge(
            "alertd_kpi_rule_pages",
            "Pages per rule (noise), 30 days.",
            ["rule"],
            registry=registry,
        )
        for kind in EventKind:
            self.alert_events.labels(kind.value)
        for priority in PRIORITIES:
            self.incidents_open.labels(priority)

    def init_channels(self, names: Iterable[str]) -> None:
        """Pre-create per-channel series so a channel with no traffic still shows 0."""
        for name in names:
            self.notifications_sent.labels(name)
            self.notifications_held.labels(name)
            for reason in FailureReason:
                self.notifications_failed.labels(name, reason.value)
                self.notifications_given_up.labels(name, reason.value)
            for outcome in ATTEMPT_OUTCOMES:
                self.notification_attempts.labels(name, outcome)

    def set_outbox_counts(self, counts: Mapping[str, int], states: Iterable[str]) -> None:
        """``alertd_outbox_intents`` from ``counts`` (intents by state): each of ``states``
        shows, 0 included, so a backlog that drained reads 0, not its last count."""
        for state in dict.fromkeys((*states, *counts)):
            self.outbox_intents.labels(state).set(counts.get(state, 0))

    def write_turns_of(self, process: str) -> Callable[[float, float], None]:
        """Return what counts one process's turns with the writer lock (``on_turn``)."""
        waited = self.state_lock_waited.labels(process)
        held = self.state_lock_held.labels(process)
        turns = self.state_write_turns.labels(process)

        def count(waited_s: float, held_s: float) -> None:
            waited.inc(waited_s)
            held.inc(held_s)
            turns.inc()

        return count

    def init_collectors(self, names: Iterable[str]) -> None:
        for name in names:
            self.samples_collected.labels(name)
            self.collection_errors.labels(name)
            self.collection_skipped.labels(name)


def _version() -> str:
    try:
        return importlib.metadata.version("alertd")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"
