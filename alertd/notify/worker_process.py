"""The delivery worker process as the daemon sees it: start it, wake it, hand it each accepted
config, stop it, start it again if it dies, and fold the counters it reports into the
daemon's metrics.

The worker itself is ``alertd.notify.worker``. What the daemon still does about delivery
itself is commit: intents (with the incident changes that cause them) and failovers a
provider's status callback asks for; then it wakes the worker.

The delivery counters on /metrics are the sums of what each worker reported; a worker killed
outright loses what it counted since its last report (at most 0.25 s), never a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import cast

import alertd
from alertd.metrics import Metrics
from alertd.notify.configure import HasDeliveryConfig, WorkerConfig
from alertd.notify.delivery import Failover, commit_failover
from alertd.notify.outbox import Intent, OutboxStore
from alertd.notify.worker import DELIVERY_COUNTERS

log = logging.getLogger(__name__)

_Series = tuple[str, tuple[tuple[str, str], ...]]  # a counter's attribute and labels

RESTART_FIRST = 1.0  # seconds before starting a worker that died; doubles up to the max
RESTART_MAX = 30.0
STEADY = 60.0  # a worker that ran this long resets the restart delay
READY_WAIT = 30.0  # seconds start() waits for the worker to say it runs
REPORT_LIMIT = 1 << 20  # bytes of one report line, well over one series set
# a running worker says something at least every HEARTBEAT_EVERY (5 s); one silent this long
# is stuck (a deadlock, a blocking call, SIGSTOP): it is killed and another started
HUNG_AFTER = 60.0
# where the daemon's alertd package lives: the worker imports the very same one
_OWN_ROOT = str(Path(alertd.__file__).resolve().parent.parent)
PROFILE_ENV = "ALERTD_PROFILE_WORKER"  # a file: run the worker under cProfile, write it there


class DeliveryWorker:
    """Runs ``python -m alertd.notify.worker`` as a child and keeps it running."""

    def __init__(
        self,
        config: HasDeliveryConfig,
        state_dir: Path,
        store: OutboxStore,
        metrics: Metrics,
        failover: Failover,
        *,
        log_level: str = "INFO",
        python: str = sys.executable,
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.metrics = metrics
        self.failover = failover
        self.log_level = log_level
        self.python = python
        self._config_line = WorkerConfig.to_line(config)
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._running = asyncio.Event()  # the current worker said it runs
        self._killed = ""  # why the daemon killed the current worker, if it did

    # -- what the daemon calls ------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker and wait (bounded) until it runs: until then, what is committed
        waits in the outbox, so the daemon says it is ready only after this."""
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())
        try:
            await asyncio.wait_for(self._running.wait(), READY_WAIT)
        except TimeoutError:
            log.warning("the delivery worker is not running yet; going on without waiting")

    def wake(self) -> None:
        """New intents were committed."""
        self._send(b"w\n", coalesce=True)

    def use(self, config: HasDeliveryConfig) -> None:
        """The daemon accepted ``config``: the worker uses exactly it (and any worker started
        later does too), whatever the files on disk say by then."""
        self._config_line = WorkerConfig.to_line(config)
        self._send(self._config_line)

    def fail_over(self, intent: Intent, recipients: tuple[str, ...], why: str, now: float) -> int:
        """Commit (in the caller's transaction) the failover of ``intent`` for ``recipients``
        (a provider's "failed" status); the caller wakes the worker."""
        return commit_failover(
            self.store, self.metrics, self.failover, intent, recipients, why, now
        )

    def expect_stop(self) -> None:
        """The daemon is stopping: a worker exiting now (systemd and Ctrl-C signal the whole
        group) is not a crash, and none is started again."""
        self._stopping = True

    async def stop(self, drain_seconds: float) -> None:
        """Ask the worker to stop; it lets sends in flight finish for up to
        ``drain_seconds``. Past that (plus a margin) it is killed; what it had in flight
        is sent again, as ambiguous, by the next worker."""
        self._stopping = True
        waited: set[asyncio.subprocess.Process] = set()
        # a restart may be under way: stop whichever worker is current, until none runs
        while (proc := self._proc) is not None and proc not in waited:
            waited.add(proc)
            if proc.returncode is None:
                self._send(b"q\n")
                try:
                    await asyncio.wait_for(proc.wait(), drain_seconds + 5.0)
                except TimeoutError:
                    log.error("delivery worker did not stop in time; killing it")
                    proc.kill()
                    await proc.wait()
        if self._supervisor is None:
            return
        # it reads the worker's last report, or waits to start another: bounded either way
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._supervisor), 2.0)
        self._supervisor.cancel()
        await asyncio.gather(self._supervisor, return_exceptions=True)

    # -- the child ------------------------------------------------------------------------
    async def _spawn(self) -> None:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)  # only the daemon talks to systemd
        # the daemon's own alertd, not one in its working directory: "-m" would put that
        # first on the path (an old checkout there ran as the worker: user-test finding)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_OWN_ROOT, env.get("PYTHONPATH")]))
        profile = os.environ.get(PROFILE_ENV)  # bench/profile_daemon.py
        profiling = ["-m", "cProfile", "-o", profile] if profile else []
        self._proc = await asyncio.create_subprocess_exec(
            self.python,
            "-P",  # no working directory on the path (Python 3.11)
            *profiling,
            "-m",
            "alertd.notify.worker",
            "--state-dir",
            str(self.state_dir),
            "--log-level",
            self.log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=REPORT_LIMIT,
        )
        self._send(self._config_line)  # the first thing it reads
        log.info("delivery worker started (pid %d)", self._proc.pid)

    def _send(self, command: bytes, coalesce: bool = False) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return  # no worker now: the next one gets the config and looks at the outbox
        if coalesce and proc.stdin.transport.get_write_buffer_size():
            return  # a command is already on its way: it wakes the worker too
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(command)

    async def _supervise(self) -> None:
        delay = RESTART_FIRST
        loop = asyncio.get_running_loop()
        while True:
            proc = self._proc
            assert proc is not None
            started = loop.time()
            await self._read_reports(proc)
            code = await proc.wait()
            self.metrics.delivery_worker_up.set(0)
            if self._stopping:
                log.info("delivery worker stopped (exit %d)", code)
                return
            if loop.time() - started >= STEADY:
                delay = RESTART_FIRST
            why = (
                f"was killed: it was {self._killed}"
                if self._killed
                else f"exited unexpectedly (exit {code})"
            )
            self._killed = ""
            log.log(
                logging.WARNING if code == 0 else logging.ERROR,
                "delivery worker %s; starting another in %gs "
                "(notifications wait in the outbox meanwhile)",
                why,
                delay,
            )
            while not self._stopping:
                await asyncio.sleep(delay)
                delay = min(RESTART_MAX, delay * 2)
                if self._stopping:
                    return
                try:
                    await self._spawn()
                except OSError as exc:
                    log.error(
                        "cannot start the delivery worker (%s); trying again in %gs", exc, delay
                    )
                    continue
                self.metrics.delivery_worker_restarts.inc()
                break

    async def _read_reports(self, proc: asyncio.subprocess.Process) -> None:
        """Read what the worker says until its stdout closes. A worker that says something
        unreadable is stopped (and started again): a stuck reader would block its writes.
        So is one that runs but says nothing for ``HUNG_AFTER``: its pages would wait
        forever while it looks alive."""
        assert proc.stdout is not None
        self._running.clear()
        seen: dict[_Series, float] = {}
        while True:
            try:
                if self._running.is_set():
                    line = await asyncio.wait_for(proc.stdout.readline(), HUNG_AFTER)
                else:  # starting: it may wait for the previous worker's lock first
                    line = await proc.stdout.readline()
            except TimeoutError:
                log.error(
                    "delivery worker (pid %d) has said nothing for %gs: it is stuck; killing "
                    "it and starting another (what it had in flight is sent again)",
                    proc.pid,
                    HUNG_AFTER,
                )
                self._kill(proc, "stuck")
                return
            except (ValueError, asyncio.LimitOverrunError):
                log.error("delivery worker: a report over %d bytes; stopping it", REPORT_LIMIT)
                self._kill(proc, "saying more than a report holds")
                return
            if not line:
                return
            try:
                self._heard(json.loads(line), seen)
            except Exception:  # one bad line must not end supervision
                log.warning("delivery worker: unreadable report %.80r", line, exc_info=True)

    def _kill(self, proc: asyncio.subprocess.Process, why: str) -> None:
        """Kill a running worker; its exit is then logged with ``why``, not as unexpected."""
        self._killed = why
        proc.kill()

    def _heard(self, message: dict[str, object], seen: dict[_Series, float]) -> None:
        if message.get("ready"):
            self._running.set()
            self.metrics.delivery_worker_up.set(1)
        elif message.get("reloaded"):
            log.info("delivery worker: using the new config")
        elif "reload_failed" in message:
            self.metrics.reload_success.set(0)
            log.error(
                "delivery worker could not use the new config (%s); it keeps the previous one",
                message["reload_failed"],
            )
        elif isinstance(counters := message.get("counters"), list):
            self._fold(counters, seen)

    def _fold(self, counters: list[object], seen: dict[_Series, float]) -> None:
        """A worker's counters start at 0, so what was seen is per worker."""
        for entry in counters:
            attr, labels, value = cast(tuple[str, dict[str, str], float], entry)
            if attr not in DELIVERY_COUNTERS:
                continue
            key = (attr, tuple(sorted(labels.items())))
            delta = value - seen.get(key, 0.0)
            seen[key] = value
            if delta > 0:
                getattr(self.metrics, attr).labels(**labels).inc(delta)
