"""The composition root: build every stage from config, run them, reload, stop.

    collectors --Sample--> Evaluator --AlertEvent--> IncidentManager --Notification--> outbox
    Prometheus (POST /api/v2/alerts) --AlertEvent--^            outbox --Delivery--> channels
                                                  (Delivery runs in a worker process)

Only this module wires stages together. A reload (SIGHUP or POST /-/reload) loads and builds
everything new first and swaps only if all of it worked; otherwise the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
import sqlite3
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.api.amv2 import am_v2_routes
from alertd.api.auth import Authorizer
from alertd.api.ops import Operations
from alertd.api.v1 import api_v1_routes
from alertd.board.routes import board_routes, root_redirect
from alertd.board.session import load_or_create_key
from alertd.clock import Clock, SystemClock
from alertd.collect.schedule import CollectionScheduler, CollectJob, build_jobs, snmp_labels
from alertd.collect.snmp.collector import resolve_ipv4
from alertd.collect.snmp.transport import SnmpTransport
from alertd.collect.snmp.traps import TrapReceiver
from alertd.collect.snmp.v3 import close_engines
from alertd.config.channels import ChannelsFile
from alertd.config.load import Config, load_config
from alertd.config.server import IngestSettings, Scope, reload_warnings
from alertd.errors import CollectError, ConfigError, StoreError
from alertd.evaluate.evaluator import Evaluator
from alertd.heap import settle_after_start
from alertd.inbound import Inbound
from alertd.incidents.kpi import KpiReport, compute_kpis
from alertd.incidents.kpi_facts import FactsCache
from alertd.incidents.maintenance import from_config, from_rows
from alertd.incidents.manager import IncidentManager
from alertd.incidents.routing import fallbacks_for
from alertd.ingest import external
from alertd.ingest.alertmanager import IngestLimits, PostedAlert
from alertd.ingest.backpressure import Backpressure
from alertd.ingest.http import alerts_routes
from alertd.log import log_failure
from alertd.metrics import BACKLOG_CAP, PRIORITIES, Metrics
from alertd.model import (
    AlertEvent,
    Level,
    Notification,
    Sample,
    StateRecord,
)
from alertd.notify.acklink import ack_routes
from alertd.notify.configure import Links
from alertd.notify.outbox import STATES as OUTBOX_STATES
from alertd.notify.outbox import OutboxStore
from alertd.notify.registry import build_notifiers
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.sms.hooks import twilio_routes
from alertd.notify.worker_process import DeliveryWorker
from alertd.sdnotify import SystemdNotifier
from alertd.server import build_web_app, start_server, tls_context
from alertd.state.daemon_lock import record_config_dir, take_daemon_lock
from alertd.state.db import connect, observe_write_turns, read_in_thread, require_writable
from alertd.state.events import DeviceEvent, prune_device_events, record_device_event
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import stored_windows
from alertd.state.retention import BATCH as PURGE_BATCH
from alertd.state.retention import (
    purge_resolved_external_alerts,
    purge_resolved_incidents,
)
from alertd.state.rule_state import load_rule_state, save_rule_state
from alertd.storm import StormWatch, put_off

log = logging.getLogger(__name__)

DRAIN_SECONDS = 15.0  # on shutdown, how long in-flight notifications may finish
KPI_WINDOW = 30 * 86400.0  # the window of the alertd_kpi_* gauges
DEADLINE_POLL = 1.0  # seconds between looks for a group_wait, escalation or endsAt now due
KPI_EVERY = 60.0  # seconds between refreshes of the alertd_kpi_* gauges (and outbox purges)
# resolved incidents, pushed alerts and device events past server.yaml's retention are
# purged this often, a batch at a time; sooner while batches come full (a first purge)
PURGE_EVERY = 3600.0
# alert events kept, at most, for the next try while the state database refuses writes
MAX_UNAPPLIED = 100_000


@dataclass(slots=True)
class _Built:
    """Everything that depends on config, built before it replaces the running set."""

    config: Config
    jobs: list[CollectJob]
    evaluator: Evaluator


class App:
    """The alertd daemon."""

    def __init__(
        self,
        config_dir: Path,
        state_dir: Path,
        listen_host: str = "127.0.0.1",
        listen_port: int = 9095,
        clock: Clock | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.clock = clock or SystemClock()
        self.log_level = log_level
        self.metrics = Metrics(CollectorRegistry())
        self._stop = asyncio.Event()
        self._ready = False
        self.reload_problems: list[str] = []  # why the last reload was rejected (file:line)
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kpis_at = self.clock.now() - KPI_EVERY  # due at the first evaluation
        self._kpi_refresh: asyncio.Task[None] | None = None
        self._kpi_facts = FactsCache()
        self.storm = StormWatch(clock=self.clock.monotonic)
        self.systemd = SystemdNotifier()
        self._purge_at = 0.0  # when resolved incidents past their retention go next
        # what a failed write did not store, applied first by the next ``_apply``
        self._unapplied_events: list[AlertEvent] = []
        self._unapplied_changes: dict[str, StateRecord | None] = {}

    # -- building -----------------------------------------------------------------------
    def _build(self, config: Config, previous: Evaluator | None) -> _Built:
        if previous is None:
            evaluator = Evaluator(config.rules, load_rule_state(self.conn), config.flapping)
        else:
            evaluator = Evaluator(config.rules, previous.export_state(), config.flapping)
            evaluator.ingest(previous.latest_samples())
        # the delivery worker builds its own; building them here rejects, before the swap,
        # a channel the worker could not build (no connection is opened until a send)
        build_notifiers(config.channels)
        return _Built(
            config,
            build_jobs(config, self.clock, self.snmp_transport),
            evaluator,
        )

    def _install(self, built: _Built) -> None:
        self.config = built.config
        configured = from_config(built.config.channels)
        self.manager.windows = lambda now: [
            *configured,
            *from_rows(stored_windows(self.conn, now)),
        ]
        self.evaluator = built.evaluator
        self.manager.channels = built.config.channels
        self.links.use(built.config)
        self.authorizer = Authorizer(built.config.server.tokens)  # tokens follow reloads
        self.metrics.init_channels(built.config.channels.channels)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(self.clock.now())

    # -- running ------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        try:
            config = load_config(self.config_dir)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config: %s", problem)
            return 1
        tls = None
        if config.server.tls is not None:
            try:
                tls = tls_context(str(config.server.tls.cert_file), str(config.server.tls.key_file))
            except (OSError, ssl.SSLError) as exc:
                log.error("server.yaml: tls: cannot use the certificate or key: %s", exc)
                return 1
        self._daemon_lock = take_daemon_lock(self.state_dir)  # held until the process ends
        record_config_dir(self.state_dir, self.config_dir)
        self.conn = connect(self.state_dir)
        try:
            require_writable(self.conn, self.state_dir)
        except StoreError:
            self.conn.close()
            raise
        observe_write_turns(self.conn, self.metrics.write_turns_of("daemon"))
        # signs board sessions; kept in the state dir so logins survive a restart
        self._board_key = load_or_create_key(self.state_dir / "board-session.key")
        store = IncidentStore(self.conn)
        self.manager = IncidentManager(store, config.channels)
        self.links = Links(config, self.clock)
        self.outbox = OutboxStore(self.conn, prepare=self.links)
        self.delivery = DeliveryWorker(
            config,
            self.state_dir,
            self.outbox,
            self.metrics,
            self._failover,
            log_level=self.log_level,
        )
        self.snmp_transport = SnmpTransport(on_drop=self._snmp_dropped)
        await self.snmp_transport.start()
        try:
            built = self._build(config, None)
        except Exception:
            self.snmp_transport.close()
            self.conn.close()
            raise
        self._install(built)
        self.collection = CollectionScheduler(self._ingest, self.metrics, self.clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._shutdown)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        self.inbound = Inbound(
            self.manager,
            self.outbox,
            self.delivery,
            lambda: self.config,
            self.clock.now,
            self._count_events,
            self.reload,
            lambda: self.reload_problems,
        )
        self.operations: Operations = self.inbound  # what the HTTP surfaces may do
        try:
            runner = await self._listen(config, tls)
        except OSError as exc:  # the port is taken, or not ours to bind
            log.error("cannot listen on %s:%d: %s", self.listen_host, self.listen_port, exc)
            self.snmp_transport.close()
            self.conn.close()
            return 1
        self.traps: TrapReceiver | None = None
        self.config_of_traps = config  # what the running trap receiver was built from
        await self.delivery.start()  # first re-drives the unfinished
        try:
            async with self._reload_lock:  # no reload may race the start-up below
                try:
                    self.traps = await self._start_traps(config)
                except OSError as exc:
                    assert config.traps is not None
                    log.error("cannot receive SNMP traps on %s: %s", config.traps.listen, exc)
                    return 1
                self.collection.start(built.jobs)
            log.info(
                "alertd running: %s; state in %s; listening on http://%s:%d",
                config.summary(),
                self.state_dir,
                self.listen_host,
                self.listen_port,
            )
            settle_after_start()  # before READY: the first collection walks everything
            self._ready = True
            self.systemd.ready(self._status())
            watchdog = asyncio.create_task(self.systemd.watchdog_loop(lambda: self._ready))
            deadlines = asyncio.create_task(self._deadline_loop())
            try:
                await self._evaluation_loop()
            finally:
                watchdog.cancel()
                deadlines.cancel()
                self.systemd.stopping()
        finally:
            self._ready = False
            self.collection.shutdown()
            if self.traps is not None:
                self.traps.close()
            await self._drain_tasks()
            await self.delivery.stop(DRAIN_SECONDS)
            await runner.cleanup()
            self.snmp_transport.close()
            await close_engines()
            self.conn.close()
            log.info("alertd stopped")
        return 0

    async def _listen(self, config: Config, tls: ssl.SSLContext | None) -> web.AppRunner:
        """Serve the HTTP endpoints; raises ``OSError`` if the address cannot be bound."""
        return await start_server(
            build_web_app(
                self.metrics.registry,
                self.reload,
                lambda: self._ready,
                self._routes(config),
                authorize_reload=lambda request: self._require(request, "admin"),
                reload_problems=lambda: self.reload_problems,
                stopping=self._stop.is_set,
                before_scrape=self._refresh_outbox_gauges,
            ),
            self.listen_host,
            self.listen_port,
            tls,
        )

    def _routes(self, config: Config) -> list[web.RouteDef]:
        """The inbound HTTP routes. What they read follows reloads: ingest limits, tokens, the
        public URL Twilio signs (ingest limits stayed at their start values while the log
        said reloaded: a user-test finding)."""
        routes = alerts_routes(
            self._receive_alerts,
            lambda: _ingest_limits(self.config.server.ingest),
            authorize=lambda request: self._require(request, "ingest"),
            resolve_timeout=lambda: self.config.server.ingest.resolve_timeout,
            clock=self.clock.now,
            default_level=lambda: Level.parse(self.config.server.ingest.default_level),
            backpressure=Backpressure(
                lambda cap: self.outbox.backlog(self.clock.now(), cap),
                lambda: (
                    self.config.server.ingest.backpressure_backlog,
                    self.config.server.ingest.backpressure_max_wait,
                ),
                self.metrics.ingest_held.observe,
            ),
        )
        routes += am_v2_routes(
            self.operations,
            lambda: self.authorizer,
            version=_version(),
            started_at=self.clock.now(),
        )
        # last among /api/v1: its final route answers unknown /api/v1 paths with JSON errors
        routes += api_v1_routes(self.operations, lambda: self.authorizer)
        routes += board_routes(
            self.operations,
            lambda: self.authorizer,
            lambda: self._board_key,
        )
        routes.append(root_redirect())
        routes += ack_routes(
            lambda: self.links.secret if self.config.server.public_url else None,
            lambda incident_id, how: self.inbound.respond("ack", incident_id, how, how).message,
            now=self.clock.now,
            state_of=self._incident_state,
        )
        routes += twilio_routes(
            lambda: self.config.server.base_url,
            self._twilio_tokens,
            self.inbound.provider_status,
            self.inbound.sms_reply,
            self.inbound.seen_hook,
            self.inbound.forget_hook,
        )
        return routes

    def _require(self, request: web.Request, scope: Scope) -> None:
        self.authorizer.require(request, scope)

    def _twilio_tokens(self) -> list[str]:
        """The auth tokens of the configured SMS channels: Twilio signs each account's
        callbacks and replies with that account's."""
        tokens = (
            channel.resolve_auth_token()
            for channel in self.config.channels.channels.values()
            if isinstance(channel, SmsChannelConfig) and channel.configured
        )
        return list(dict.fromkeys(t for t in tokens if t))

    def _count_events(self, events: Sequence[AlertEvent]) -> None:
        self.storm.count(len(events))
        # per kind, not per event: a storm's POST is 64 events of one kind
        for kind, count in Counter(event.kind for event in events).items():
            self.metrics.alert_events.labels(kind.value).inc(count)

    def _refresh_open_gauges(self) -> None:
        """``alertd_incidents_open`` once per evaluation cycle, not on every POST or trap."""
        open_counts = self.manager.store.count_open_by_priority()
        for priority in PRIORITIES:
            self.metrics.incidents_open.labels(priority).set(open_counts.get(priority, 0))

    def _failed(self, where: str, message: str, exc: BaseException) -> None:
        """Count (``alertd_errors_total{where}``) and log work of the daemon's own that
        failed; it is tried again (the next cycle, deadline look, trap or minute)."""
        self.metrics.errors.labels(where).inc()
        log_failure(log, message, exc)

    def _receive_alerts(self, alerts: list[PostedAlert]) -> None:
        """``POST /api/v2/alerts``' store; a failure (answered 503) is counted."""
        try:
            self.inbound.receive_alerts(alerts)
        except Exception:
            self.metrics.errors.labels("ingest").inc()
            raise

    def _refresh_outbox_gauges(self) -> None:
        """``alertd_outbox_backlog`` and ``alertd_outbox_oldest_unsent_seconds`` as of this
        scrape (reads through the outbox's partial indexes: the unfinished intents only)."""
        now = self.clock.now()
        self.metrics.outbox_backlog.set(self.outbox.backlog(now, BACKLOG_CAP))
        oldest = self.outbox.oldest_unsent()
        self.metrics.outbox_oldest_unsent.set(0.0 if oldest is None else max(0.0, now - oldest))

    def _snmp_dropped(self, reason: str) -> None:
        self.metrics.snmp_replies_dropped.labels(reason).inc()

    def _ingest(self, samples: Sequence[Sample]) -> None:
        self.evaluator.ingest(samples)

    async def _evaluation_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.evaluation_interval)
            if self._stop.is_set():
                break
            try:
                self.evaluate_once()
            except Exception as exc:  # one bad cycle must not stop the daemon
                self._failed("evaluation", "evaluation cycle failed", exc)

    async def _deadline_loop(self) -> None:
        """Between evaluation cycles, act on a deadline when it comes (a group's
        ``group_wait``, an escalation step, a pushed alert's ``endsAt``), to the second, not
        at the next cycle (``evaluation_interval``). One indexed read a second; a write only
        when something is due."""
        passed: float | None = None  # a deadline acted on that did not move: left to the cycle
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), DEADLINE_POLL)
            if self._stop.is_set():
                break
            due: float | None = None
            try:
                now = self.clock.now()
                due = self.manager.store.next_deadline()
                if due is None or due > now or due == passed:
                    continue
                self._apply([], {}, now, expire=True)
                passed = due
            except Exception as exc:  # the evaluation cycle still acts on it
                self._failed("deadline", "could not act on a deadline", exc)
                passed = due  # not a failing write (and a traceback) every second

    def evaluate_once(self) -> None:
        """Run one evaluation and hand its notifications to delivery."""
        now = self.clock.now()
        started = time.perf_counter()
        events = self.evaluator.evaluate(now)
        changes = self.evaluator.take_changes()
        self.metrics.rule_evaluations.inc()
        self.metrics.evaluation_duration.observe(time.perf_counter() - started)
        self.metrics.series.set(self.evaluator.series_count())
        self._apply(events, changes, now, expire=True)
        self._refresh_open_gauges()
        self._export_kpis()

    def _apply(
        self,
        events: Sequence[AlertEvent],
        changes: Mapping[str, StateRecord | None],
        now: float,
        expire: bool = False,
    ) -> None:
        """Turn alert events into incident changes (with the rule state, atomically) and
        commit the resulting notifications to the outbox in the same transaction.

        If the write fails (the database locked by another program, a full disk), the events
        and rule state are kept and go first in the next try: the evaluator has moved on and
        will not report those changes again, so dropping them would lose the incident."""
        if self._unapplied_events or self._unapplied_changes:
            events = [*self._unapplied_events, *events]
            changes = {**self._unapplied_changes, **changes}
        try:
            with self.manager.store.transaction():
                save_rule_state(self.conn, changes)
                applied = events
                if expire:  # pushed alerts whose endsAt passed without a refresh
                    applied = [*events, *external.expire(self.conn, now)]
                notifications = self.manager.apply(applied, now)
                notifications += self.manager.escalate(now)
                notifications = external.stored_sources(self.conn, notifications)
                # the intents commit with the incident changes that caused them, before any send
                self.outbox.enqueue(notifications, now, supersede=True)
        except Exception:
            self._keep_unapplied(events, changes)
            raise
        if self._unapplied_events or self._unapplied_changes:
            log.info(
                "the state database took the writes again: %d alert event(s) kept from "
                "failed tries applied",
                len(self._unapplied_events),
            )
            self._unapplied_events, self._unapplied_changes = [], {}
        self._count_events(applied)
        if notifications:
            self.delivery.wake()

    def _keep_unapplied(
        self, events: Sequence[AlertEvent], changes: Mapping[str, StateRecord | None]
    ) -> None:
        """Keep what a failed write did not store for the next try, the oldest events
        dropped past ``MAX_UNAPPLIED`` (memory stays bounded however long the outage)."""
        dropped = max(0, len(events) - MAX_UNAPPLIED)
        if dropped:
            log.error(
                "the state database has refused writes for long: %d alert event(s) dropped, "
                "the oldest; the %d newest are kept for the next try",
                dropped,
                MAX_UNAPPLIED,
            )
        self._unapplied_events = list(events[dropped:])
        self._unapplied_changes = dict(changes)
        if self._unapplied_events:
            log.warning(
                "could not store %d alert event(s); they are kept and applied at the next try",
                len(self._unapplied_events),
            )

    def _incident_state(self, incident_id: int) -> str | None:
        incident = self.manager.store.get(incident_id)
        return None if incident is None else incident.state.value

    def _failover(self, n: Notification, failed: tuple[str, ...], why: str) -> list[Notification]:
        return fallbacks_for(n, failed, why, self.config.channels, self.outbox.told)

    # -- traps --------------------------------------------------------------------------
    async def _start_traps(self, config: Config) -> TrapReceiver | None:
        if config.traps is None:
            return None
        targets = {}
        for target in config.snmp:
            with contextlib.suppress(CollectError):  # an unresolvable name just isn't a source
                ip, _ = await resolve_ipv4(target.address, target.port)
                targets[ip] = snmp_labels(target)
        receiver = TrapReceiver(
            config.traps,
            targets,
            on_events=self._trap_events,
            on_device_event=self._device_event,
            on_drop=self._trap_dropped,
            clock=self.clock,
        )
        await receiver.start()
        log.info("receiving SNMP traps on %s:%d", *(receiver.address or ("?", 0)))
        return receiver

    def _trap_events(self, events: list[AlertEvent]) -> None:
        try:
            self._apply(events, {}, self.clock.now())
        except Exception as exc:  # a trap must never take the receiver down
            self._failed("trap", "could not apply trap events", exc)

    def _device_event(self, event: DeviceEvent) -> None:
        try:
            record_device_event(self.conn, event)
        except Exception:
            log.exception("could not record a device event")

    def _trap_dropped(self, reason: str) -> None:
        self.metrics.snmp_traps_dropped.labels(reason).inc()

    def _export_kpis(self) -> None:
        """Purge old outbox rows, refresh the outbox gauges and the ``alertd_kpi_*`` gauges
        from the last 30 days: once a minute, put off during an alert storm (``storm.py``).
        The KPIs read the incidents in the window (only the open and recently resolved ones
        after the first time: ``FactsCache``) in a thread, so ingest and the API are not
        held up by it."""
        now = self.clock.now()
        refreshing = self._kpi_refresh is not None and not self._kpi_refresh.done()
        if now - self._kpis_at < KPI_EVERY or refreshing:
            return
        if put_off(now - self._kpis_at - KPI_EVERY, self.storm):
            return  # a storm: the CPU and the writer lock go to incidents and pages first
        self._kpis_at = now
        self._purge(now)
        self.metrics.set_outbox_counts(self.outbox.counts(), OUTBOX_STATES)
        self.systemd.status(self._status())
        task = self._kpi_refresh = asyncio.create_task(self._refresh_kpis(now))
        self._tasks.add(task)  # a stop waits for it
        task.add_done_callback(self._tasks.discard)

    def _purge(self, now: float) -> None:
        """Forget what is past ``retention`` (server.yaml): finished notifications every
        minute, resolved incidents (a batch at a time), pushed alerts and device events
        every ``PURGE_EVERY``. Never a reason to stop: a failure is logged, tried again."""
        keep = self.config.server.retention
        try:
            with self.outbox.transaction():
                self.outbox.purge(now - keep.notifications)
                if now < self._purge_at:
                    return
                gone = purge_resolved_incidents(self.conn, now - keep.incidents)
                alerts = purge_resolved_external_alerts(self.conn, now - keep.incidents)
                events = prune_device_events(self.conn, now - keep.events)
        except Exception as exc:
            self._failed("retention", "could not purge what is past its retention", exc)
            return
        more = gone >= PURGE_BATCH  # more to go: the next minute, not the next hour
        self._purge_at = now if more else now + PURGE_EVERY
        if gone or alerts or events:
            log.info(
                "retention: %d resolved incident(s), %d pushed alert(s) and %d device "
                "event(s) forgotten%s",
                gone,
                alerts,
                events,
                "; more next minute" if more else "",
            )

    async def _refresh_kpis(self, now: float) -> None:
        since = now - KPI_WINDOW

        def report(conn: sqlite3.Connection, channels: ChannelsFile) -> KpiReport:
            facts = self._kpi_facts.facts(conn, since, channels, now)
            return compute_kpis(facts, channels.priorities.targets, since, now)

        channels = self.config.channels
        try:
            self._set_kpis(await read_in_thread(self.conn, lambda conn: report(conn, channels)))
        except Exception as exc:  # the gauges keep their last values; the next minute tries again
            self._failed("kpis", "KPIs could not be computed", exc)

    def _set_kpis(self, report: KpiReport) -> None:
        m = self.metrics
        for group in report.by_priority:
            p = group.key
            m.kpi_incidents.labels(p).set(group.incidents)
            m.kpi_mtta.labels(p).set(group.mtta if group.mtta is not None else float("nan"))
            m.kpi_mttr.labels(p).set(group.mttr if group.mttr is not None else float("nan"))
            m.kpi_tier1.labels(p).set(
                group.tier1_rate if group.tier1_rate is not None else float("nan")
            )
            m.kpi_breaches.labels(p, "respond").set(group.respond_breaches or 0)
            m.kpi_breaches.labels(p, "resolve").set(group.resolve_breaches or 0)
        for group in report.by_team:
            t = group.key
            m.kpi_team_mtta.labels(t).set(group.mtta if group.mtta is not None else float("nan"))
            m.kpi_team_mttr.labels(t).set(group.mttr if group.mttr is not None else float("nan"))
            m.kpi_team_tier1.labels(t).set(
                group.tier1_rate if group.tier1_rate is not None else float("nan")
            )
            m.kpi_team_breaches.labels(t, "respond").set(group.respond_breaches or 0)
            m.kpi_team_breaches.labels(t, "resolve").set(group.resolve_breaches or 0)
        m.kpi_rule_pages.clear()
        for noise in report.noise:
            m.kpi_rule_pages.labels(noise.rule).set(noise.pages)

    async def _drain_tasks(self) -> None:
        """Let a reload or a KPI refresh in progress finish (bounded)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()

    # -- reload -------------------------------------------------------------------------
    async def _restart_traps(self, config: Config) -> bool:
        """Replace the trap receiver; if the new one can't start, bring the old one back."""
        previous = self.config_of_traps
        if self.traps is not None:
            self.traps.close()
            self.traps = None
        for candidate in (config, previous):
            for _ in range(20):  # the old socket is released a loop turn or two after close()
                await asyncio.sleep(0.05)
                try:
                    self.traps = await self._start_traps(candidate)
                except OSError:
                    continue
                except Exception:
                    log.exception("the trap receiver could not start")
                    break
                self.config_of_traps = candidate
                return candidate is config
            log.error(
                "the trap receiver could not start with the %s config",
                "new" if candidate is config else "previous",
            )
        return False

    def _shutdown(self) -> None:
        """SIGTERM/SIGINT: systemd and a terminal signal the delivery worker too; it stops on
        its own, and that is no crash."""
        self.delivery.expect_stop()
        self._stop.set()

    def _reload_soon(self) -> None:
        task = asyncio.create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """Load, validate and build the config again; swap only if all of it is good.
        systemd hears RELOADING=1 before and READY=1 after, whichever way it went."""
        self.systemd.reloading()
        try:
            return await self._reload()
        finally:
            self.systemd.ready_again(self._status())

    def _status(self) -> str:
        """One line for ``systemctl status``: open incidents by priority, and the outbox."""
        counts = self.manager.store.count_open_by_priority()
        open_text = " ".join(f"{p}={counts.get(p, 0)}" for p in PRIORITIES)
        waiting = sum(n for s, n in self.outbox.counts().items() if s in ("pending", "held"))
        return f"open incidents: {open_text}; notifications waiting: {waiting}"

    async def _reload(self) -> bool:
        async with self._reload_lock:
            try:
                config = load_config(self.config_dir)
                built = self._build(config, self.evaluator)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload rejected: %s", problem)
                log.error("reload rejected: keeping the running config")
                self.metrics.reload_success.set(0)
                self.reload_problems = [str(problem) for problem in exc.problems]
                return False
            except Exception as exc:
                log.exception("reload failed while building; keeping the running config")
                self.metrics.reload_success.set(0)
                self.reload_problems = [
                    f"building the new config failed ({type(exc).__name__}; see the log)"
                ]
                return False
            self.reload_problems = []
            for warning in reload_warnings(self.config.server, config.server):
                log.warning("reload: %s", warning)
            running = self.config_of_traps
            traps_changed = (config.traps, config.snmp) != (running.traps, running.snmp)
            self._install(built)
            self.collection.replace(built.jobs)
            self.delivery.use(config)
            if traps_changed and not await self._restart_traps(config):
                self.metrics.reload_success.set(0)
                log.error("reload: the rest of the config is in use, the trap receiver is not")
                self.reload_problems = ["the new trap receiver settings failed (see the log)"]
                return False
            log.info("config reloaded: %s", config.summary())
            return True


def _ingest_limits(ingest: IngestSettings) -> IngestLimits:
    return IngestLimits(max_body_bytes=ingest.max_body_bytes, max_alerts=ingest.max_alerts)


def _version() -> str:
    try:
        return importlib.metadata.version("alertd")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0+unknown"
