"""The delivery worker: a process of its own that drives the durable outbox.

The daemon (``alertd run``) commits incidents and notification intents; this process, its
child, sends them (``Delivery``) on the second CPU core, so a storm's sends do not slow the
intake of alerts and the intake does not delay the sends. They share only the SQLite state
(WAL: each writes in short transactions and waits for the other's lock) and two pipes:

    daemon --stdin--> worker    one byte per command: ``w`` new intents, ``r`` reload the
                                config, ``q`` stop (and end of file: the daemon is gone)
    worker --stdout--> daemon   ``{"ready": true}`` once it runs, then a JSON line of its
                                delivery counters when they changed (at most every 0.25 s),
                                folded into the daemon's /metrics

Safety: one worker per state directory (``delivery.lock``, ``flock``: released by the
kernel when the process dies, so a worker left over from a killed daemon is waited for
before intents caught ``sending`` are recovered). A daemon that dies, even by SIGKILL,
closes the worker's stdin: the worker stops claiming, lets its sends in flight finish and
be recorded (up to ``DRAIN_SECONDS``), and exits; no sender outlives that. SIGTERM/SIGINT
(sent by systemd or a terminal to the whole group) stop it the same way.

Usage (started by the daemon, not by hand):
    python -m alertd.notify.worker --config-dir DIR --state-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry

from alertd.clock import SystemClock
from alertd.config.load import Config, load_config
from alertd.errors import ConfigError
from alertd.incidents.routing import failover_for
from alertd.log import setup_logging
from alertd.metrics import Metrics
from alertd.model import Notification
from alertd.notify.configure import Links, configure
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import Notifier
from alertd.notify.outbox import OutboxStore
from alertd.notify.registry import build_notifiers
from alertd.state.db import connect

log = logging.getLogger(__name__)

DRAIN_SECONDS = 15.0  # on stop, how long sends in flight may finish
LOCK_NAME = "delivery.lock"
LOCK_WAIT = 60.0  # seconds to wait for a previous worker to let go of the lock
REPORT_EVERY = 0.25  # seconds between counter reports to the daemon (when changed)

# the Metrics counters the worker moves; the daemon exports them
DELIVERY_COUNTERS = (
    "notifications_sent",
    "notifications_held",
    "notification_attempts",
    "notification_failovers",
    "notifications_failed",
)

Snapshot = list[tuple[str, dict[str, str], float]]


def counter_snapshot(metrics: Metrics) -> Snapshot:
    """Return every delivery counter's series as (attribute, labels, value)."""
    out: Snapshot = []
    for attr in DELIVERY_COUNTERS:
        for family in getattr(metrics, attr).collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out.append((attr, dict(sample.labels), sample.value))
    return out


async def hold_lock(state_dir: Path) -> IO[bytes] | None:
    """Take the state directory's delivery lock, waiting for a previous worker (bounded)."""
    lock = (state_dir / LOCK_NAME).open("ab")
    deadline = time.monotonic() + LOCK_WAIT
    waited = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                return None
            if not waited:
                log.warning("waiting for the previous delivery worker to exit")
                waited = True
            await asyncio.sleep(0.05)


class Worker:
    """One delivery worker process's state: config, notifiers, the outbox and its driver."""

    def __init__(self, config_dir: Path, state_dir: Path, config: Config) -> None:
        self.config_dir = config_dir
        self.config = config
        self.clock = SystemClock()
        self.metrics = Metrics(CollectorRegistry())
        self.conn = connect(state_dir)
        self.links = Links(config, self.clock)
        self.delivery = Delivery(
            OutboxStore(self.conn, prepare=self.links),
            {},
            self.metrics,
            self.clock,
            failover=self._failover,
        )
        self.notifiers: dict[str, Notifier] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._reported: Snapshot = []
        self._use(config)

    def _failover(self, n: Notification, failed: tuple[str, ...], why: str) -> list[Notification]:
        return failover_for(n, failed, why, self.config.channels)

    def _use(self, config: Config) -> None:
        old = self.notifiers.values()
        self.notifiers = build_notifiers(config.channels)
        self.config = config
        self.links.use(config)
        configure(self.delivery, config, self.notifiers)
        self.metrics.init_channels(self.notifiers)
        self._close_later(list(old))

    def _close_later(self, notifiers: Iterable[Notifier]) -> None:
        """Close replaced notifiers once the sends they may have in flight are over (each is
        bounded by send_timeout): closing mid-send would make a delivered message look
        ambiguous, and it would be sent again."""
        retired = list(notifiers)
        if not retired:
            return

        async def close() -> None:
            await asyncio.sleep(self.delivery.settings.send_timeout + 1.0)
            for notifier in retired:
                await notifier.close()

        task = asyncio.create_task(close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def reload(self) -> None:
        """Load the config the daemon has just accepted; keep the running one if it fails
        here (the files changed again in between)."""
        try:
            config = load_config(self.config_dir)
            self._use(config)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("delivery worker: reload rejected: %s", problem)
            return
        except Exception:
            log.exception("delivery worker: reload failed; keeping the running config")
            return
        log.info("delivery worker: config reloaded")

    # -- the pipes ------------------------------------------------------------------------
    def _command(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            log.warning("delivery worker: the daemon is gone; finishing the sends in flight")
            self._stop.set()
            return
        if b"q" in data:
            self._stop.set()
            return
        if b"r" in data:
            self.reload()
        self.delivery.wake()  # 'w', and after a reload

    def _report(self, force: bool = False) -> None:
        snapshot = counter_snapshot(self.metrics)
        if snapshot == self._reported and not force:
            return
        self._reported = snapshot
        self._tell({"counters": snapshot})

    def _tell(self, message: dict[str, object]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with contextlib.suppress(OSError):  # the daemon is gone: nobody to tell
            os.write(1, line.encode())

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            self._report()

    # -- running --------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the daemon forwards reloads
        os.set_blocking(0, False)
        loop.add_reader(0, self._command)
        driving = asyncio.create_task(self.delivery.run())
        self._tell({"ready": True})  # config loaded, database open, the lock held
        reporting = asyncio.create_task(self._report_loop())
        try:
            await self._stop.wait()
        finally:
            loop.remove_reader(0)
            await self.delivery.stop(DRAIN_SECONDS)
            await driving
            reporting.cancel()
            for task in self._retiring:
                task.cancel()
            await asyncio.gather(reporting, *self._retiring, return_exceptions=True)
            for notifier in self.notifiers.values():
                await notifier.close()
            self._report(force=True)
            self.conn.close()
        return 0


async def serve(config_dir: Path, state_dir: Path) -> int:
    lock = await hold_lock(state_dir)
    if lock is None:
        log.error("delivery worker: another worker holds %s", state_dir / LOCK_NAME)
        return 1
    try:
        try:
            config = load_config(config_dir)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("delivery worker: config: %s", problem)
            return 1
        return await Worker(config_dir, state_dir, config).run()
    finally:
        lock.close()  # releases the flock


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m alertd.notify.worker")
    ap.add_argument("--config-dir", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(serve(args.config_dir, args.state_dir))


if __name__ == "__main__":
    sys.exit(main())
