"""The delivery worker: a process of its own that drives the durable outbox.

The daemon (``alertd run``) commits incidents and notification intents; this process, its
child, sends them (``Delivery``) on the second CPU core, so a storm's sends do not slow the
intake of alerts and the intake does not delay the sends. They share only the SQLite state
(WAL: each writes in short transactions and waits for the other's lock) and two pipes:

    daemon --stdin--> worker    a line per command: first, and on each accepted reload, the
                                config (``{"config": ...}``, channels and server as the daemon
                                validated them); ``w`` new intents; ``q`` stop (and end of
                                file: the daemon is gone)
    worker --stdout--> daemon   ``{"ready": true}`` once it runs; ``{"reloaded": true}`` or
                                ``{"reload_failed": why}``; a JSON line of its delivery
                                counters when they changed (at most every 0.25 s), folded
                                into the daemon's /metrics

Safety: one worker per state directory (``delivery.lock``, ``flock``: released by the
kernel when the process dies, so a worker left over from a killed daemon is waited for
before intents caught ``sending`` are recovered). A daemon that dies, even by SIGKILL,
closes the worker's stdin: the worker stops claiming, lets its sends in flight finish and
be recorded (up to ``DRAIN_SECONDS``), and exits; no sender outlives that. SIGTERM/SIGINT
(sent by systemd or a terminal to the whole group) stop it the same way.

Usage (started by the daemon, not by hand):
    python -m alertd.notify.worker --state-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry

from alertd import event_loop
from alertd.clock import SystemClock
from alertd.heap import settle_after_start
from alertd.incidents.routing import fallbacks_for
from alertd.log import setup_logging
from alertd.metrics import Metrics
from alertd.model import Notification
from alertd.notify.configure import Links, WorkerConfig, configure
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import Notifier
from alertd.notify.outbox import OutboxStore
from alertd.notify.registry import build_notifiers
from alertd.state.db import connect, observe_write_turns

log = logging.getLogger("alertd.notify.worker")  # not "__main__" under -m

DRAIN_SECONDS = 15.0  # on stop, how long sends in flight may finish
LOCK_NAME = "delivery.lock"
LOCK_WAIT = 60.0  # seconds to wait for a previous worker to let go of the lock
COMMAND_LIMIT = 64 << 20  # bytes of one command line (a config with many teams)
REPORT_EVERY = 0.25  # seconds between counter reports to the daemon (when changed)
HEARTBEAT_EVERY = 5.0  # with nothing to report, a line this often: the loop runs

# the Metrics counters the worker moves (and its turns writing the state); the daemon
# exports them
DELIVERY_COUNTERS = (
    "notifications_sent",
    "notifications_held",
    "notification_attempts",
    "notification_failovers",
    "notifications_failed",
    "notifications_given_up",
    "errors",
    "state_lock_waited",
    "state_lock_held",
    "state_write_turns",
)

Snapshot = list[tuple[str, dict[str, str], float]]


def counter_snapshot(metrics: Metrics) -> Snapshot:
    """Return every delivery counter's series that moved as (attribute, labels, value)
    (the series created at 0 in advance are the daemon's to show)."""
    out: Snapshot = []
    for attr in DELIVERY_COUNTERS:
        for family in getattr(metrics, attr).collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
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

    def __init__(self, state_dir: Path, config: WorkerConfig, commands: asyncio.StreamReader):
        self.config = config
        self.commands = commands
        self.clock = SystemClock()
        self.metrics = Metrics(CollectorRegistry())
        self.conn = connect(state_dir)
        observe_write_turns(self.conn, self.metrics.write_turns_of("delivery"))
        self.links = Links(config, self.clock)
        self.delivery = Delivery(
            OutboxStore(self.conn, prepare=self.links),
            {},
            self.metrics,
            self.clock,
            failover=self._failover,
        )
        self.notifiers: dict[str, Notifier] = {}
        self._retired: list[Notifier] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._reported: Snapshot = []
        self._use(config)

    def _failover(self, n: Notification, failed: tuple[str, ...], why: str) -> list[Notification]:
        told = self.delivery.store.told
        return fallbacks_for(n, failed, why, self.config.channels, told)

    def _use(self, config: WorkerConfig) -> None:
        """Build everything ``config`` needs first; swap only if all of it worked."""
        notifiers = build_notifiers(config.channels)
        old, self.notifiers, self.config = self.notifiers, notifiers, config
        self.links.use(config)
        configure(self.delivery, config, notifiers)
        self.metrics.init_channels(notifiers)
        self._close_later(list(old.values()))

    def _close_later(self, notifiers: list[Notifier]) -> None:
        """Close replaced notifiers once the sends they may have in flight are over (each is
        bounded by send_timeout): closing mid-send would make a delivered message look
        ambiguous, and it would be sent again."""
        if not notifiers:
            return
        self._retired.extend(notifiers)

        async def close() -> None:
            await asyncio.sleep(self.delivery.settings.send_timeout + 1.0)
            for notifier in notifiers:
                if notifier in self._retired:
                    self._retired.remove(notifier)
                    await notifier.close()

        task = asyncio.create_task(close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def reload(self, message: dict[str, object]) -> None:
        """Use the config the daemon has just accepted, and tell it how that went."""
        try:
            self._use(WorkerConfig.from_message(message))
        except Exception as exc:  # keep the running config; the daemon logs and counts it
            log.exception("delivery worker: reload failed; keeping the running config")
            tell({"reload_failed": f"{type(exc).__name__}: {exc}"[:500]})
            return
        log.info("delivery worker: config reloaded")
        tell({"reloaded": True})

    # -- the pipes ------------------------------------------------------------------------
    async def _read_commands(self) -> None:
        while not self._stop.is_set():
            try:
                line = await self.commands.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line over the limit
                log.error("delivery worker: a command line too long; ignored")
                continue
            if not line:
                log.warning("delivery worker: the daemon is gone; finishing the sends in flight")
                self._stop.set()
                return
            command = line.strip()
            if command == b"q":
                self._stop.set()
                return
            if command.startswith(b"{"):
                try:
                    message = json.loads(command)
                except ValueError:
                    log.error("delivery worker: an unreadable command; ignored")
                    continue
                if isinstance(message, dict) and "config" in message:
                    self.reload(message)
            self.delivery.wake()  # 'w', and after a reload

    def _report(self, force: bool = False) -> bool:
        """Tell the daemon the counters if they moved; return whether it was told."""
        snapshot = counter_snapshot(self.metrics)
        if snapshot == self._reported and not force:
            return False
        self._reported = snapshot
        tell({"counters": snapshot})
        return True

    async def _report_loop(self) -> None:
        loop = asyncio.get_running_loop()
        told = loop.time()
        while True:
            await asyncio.sleep(REPORT_EVERY)
            if self._report():
                told = loop.time()
            elif loop.time() - told >= HEARTBEAT_EVERY:
                tell({"alive": True})  # a worker that says nothing is taken for stuck
                told = loop.time()

    # -- running --------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the daemon sends reloads
        driving = asyncio.create_task(self.delivery.run())
        reading = asyncio.create_task(self._read_commands())
        settle_after_start()
        tell({"ready": True})  # config in use, database open, the lock held
        reporting = asyncio.create_task(self._report_loop())
        try:
            await self._stop.wait()
        finally:
            await self.delivery.stop(DRAIN_SECONDS)
            await driving
            for task in (reading, reporting, *self._retiring):
                task.cancel()
            await asyncio.gather(reading, reporting, *self._retiring, return_exceptions=True)
            for notifier in [*self._retired, *self.notifiers.values()]:
                await notifier.close()
            self._report(force=True)
            self.conn.close()
        return 0


def tell(message: dict[str, object]) -> None:
    """Write one JSON line to the daemon. Reports are snapshots: one dropped because the
    pipe is full (the daemon is busy) is made good by the next."""
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    try:
        written = os.write(1, data)
    except OSError:  # full (non-blocking), or the daemon is gone: nobody to tell now
        return
    if written < len(data):  # a line must not be cut: finish it (rare; bounded by the pipe)
        os.set_blocking(1, True)
        try:
            os.write(1, data[written:])
        except OSError:
            pass
        finally:
            os.set_blocking(1, False)


async def commands_from_stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=COMMAND_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def first_config(commands: asyncio.StreamReader) -> WorkerConfig | None:
    """Wait for the config the daemon sends first; None if it is gone or unreadable."""
    try:
        line = await commands.readline()
        return WorkerConfig.from_message(json.loads(line)) if line else None
    except Exception:
        log.exception("delivery worker: the daemon's config could not be read")
        return None


async def serve(state_dir: Path) -> int:
    commands = await commands_from_stdin()
    os.set_blocking(1, False)  # reports never stall the loop (see ``tell``)
    config = await first_config(commands)
    if config is None:
        return 1
    lock = await hold_lock(state_dir)
    if lock is None:
        log.error("delivery worker: another worker holds %s", state_dir / LOCK_NAME)
        return 1
    try:
        return await Worker(state_dir, config, commands).run()
    finally:
        lock.close()  # releases the flock


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m alertd.notify.worker")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return event_loop.run(serve(args.state_dir))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
