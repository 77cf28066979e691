"""Crash-test harness for reliability scenario S1: SIGKILL the daemon while it delivers.

A Jepsen-style history check (reliability.md §2.0). The acknowledged operation is a batch of
alerts that ``POST /api/v2/alerts`` answered 200: alertd has committed each alert's incident
and its notification intent by then. The harness

1. runs a webhook receiver of its own (aiohttp in a background thread, 127.0.0.1, a run-time
   port) that records every request's ``Idempotency-Key`` and arrival time, then answers 200
   after a random 0-30 ms, so sends are in flight when a kill lands;
2. starts ``python -m alertd run`` with one ``webhook`` channel to that receiver;
3. posts N distinct alerts in batches of 64, each batch retried until it gets a 200 (while the
   daemon is down, posts fail and are retried after the restart);
4. SIGKILLs the daemon K times, restarting it on the same state directory each time. The kill
   moments are uniform over the work to do (N commits followed or overlapped by N arrivals):
   kill k happens when ``(committed + arrived) / 2N`` first reaches ``u_k ~ U(0, 1)``, which
   spreads the kills over the storm and the delivery that follows it whatever the machine's
   speed. Right after each kill (the process is gone, the state frozen) it reads the outbox;
5. waits (bounded) until every committed alert's notification arrived and the outbox holds
   nothing unfinished, stops the daemon with SIGTERM, and checks the history against the
   state database (opened read-only) and the receiver's record.

Checks: lost = committed alerts whose notification never arrived (must be 0); duplicates =
keys received more than once, each "in flight at a kill" if its intent has an ``ambiguous``
attempt row, else a violation (a confirmed send repeated; must be 0); over_bound = keys that
arrived more than 1 + their ambiguous attempts; ``PRAGMA integrity_check`` is ok; every intent
ends ``delivered``.

``run()`` is used by ``tests/e2e/test_crash.py`` (small and bounded) and ``bench/crash_test.py``
(the CLI, for large N and K).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

BATCH = 64
ALERTNAME = "CrashTest"
DB_NAME = "alertd.sqlite3"
FINAL = ("delivered", "failed", "digested")
POLL = 0.002  # seconds between progress checks of the kill loop
RETRY_PAUSE = 0.02  # seconds before a failed POST is tried again
SETTLE = 5.0  # seconds without an arrival after which a finished outbox means quiescence


# -- the receiver --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Arrival:
    """One webhook request as the receiver saw it."""

    key: str  # the Idempotency-Key header ("" if missing)
    instance: str  # the alert's instance label
    at: float  # time.monotonic() when the body was read


class Receiver:
    """A webhook receiver on 127.0.0.1 in a background thread; every request is recorded.

    Each answer is a 200 after a random delay in ``[0, max_delay]`` (from its own seeded RNG),
    so a kill finds requests in flight. ``in_flight`` counts requests read but not yet answered.
    """

    def __init__(self, seed: int, max_delay: float = 0.030) -> None:
        self.max_delay = max_delay
        self.arrivals: list[Arrival] = []
        self.instances: set[str] = set()  # instances with at least one arrival
        self.answered: set[str] = set()  # keys that got their 200 at least once
        self.in_flight = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        """Serve from a new thread; return once it listens."""
        self._thread = threading.Thread(target=self._serve, name="crash-receiver", daemon=True)
        self._thread.start()
        if not self._started.wait(10) or self._error is not None:
            raise RuntimeError(f"the webhook receiver did not start: {self._error!r}")

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def snapshot(self) -> tuple[int, int]:
        """Return (requests received, distinct instances arrived)."""
        with self._lock:
            return len(self.arrivals), len(self.instances)

    def answered_keys(self) -> set[str]:
        """Return a copy of the keys answered 200 so far."""
        with self._lock:
            return set(self.answered)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()/the caller, never lost
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, self._sock)
        await site.start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        at = time.monotonic()
        try:
            alerts = json.loads(body).get("alerts") or [{}]
            instance = str(alerts[0].get("labels", {}).get("instance", ""))
        except (ValueError, AttributeError):
            instance = ""
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            self.arrivals.append(Arrival(key, instance, at))
            self.instances.add(instance)
            self.in_flight += 1
            delay = self._rng.uniform(0.0, self.max_delay)
        try:
            await asyncio.sleep(delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.answered.add(key)
        return web.Response(text="ok")


# -- the daemon ----------------------------------------------------------------------------
def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def descendants(pid: int) -> list[int]:
    """Return the live descendants of ``pid`` (the daemon's delivery worker)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    found = [int(c) for c in f.read().split()]
                out += found
                todo += found
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def write_config(config_dir: Path, hook_url: str) -> None:
    """Write a config with no rules and one webhook channel that every incident notifies."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (config_dir / "channels.yaml").write_text(
        f"channels:\n  hook:\n    type: webhook\n    url: {hook_url}\nroutes:\n  - notify: [hook]\n"
    )


class DaemonProcess:
    """``python -m alertd run`` as a child process that can be killed and started again."""

    def __init__(
        self, config_dir: Path, state_dir: Path, log_dir: Path, python: str = sys.executable
    ) -> None:
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.python = python
        self.port = free_port()
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> float:
        """Start the daemon and wait until ``/-/ready`` answers 200; return the seconds taken."""
        t0 = time.monotonic()
        log = (self.log_dir / f"daemon-{self.starts}.log").open("wb")
        self.starts += 1
        argv = [self.python, "-m", "alertd", "run", "--config-dir", str(self.config_dir)]
        argv += ["--state-dir", str(self.state_dir), "--listen", f"127.0.0.1:{self.port}"]
        with log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"alertd exited with {self.proc.returncode} during start; see "
                    f"{self.log_dir}/daemon-{self.starts - 1}.log"
                )
            if self._ready():
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError(f"alertd not ready within {ready_timeout:g}s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except urllib.error.HTTPError as exc:
            exc.close()
            return False
        except (OSError, http.client.HTTPException):
            return False

    def kill(self) -> None:
        """SIGKILL the daemon and its delivery worker at once (a power cut, an OOM kill of
        the service), and reap the daemon."""
        assert self.proc is not None
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the daemon (SIGKILL after ``timeout``); return its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


# -- the state database, read-only ---------------------------------------------------------
def open_ro(state_dir: Path) -> sqlite3.Connection:
    """Open the state database read-only (it may belong to a running daemon)."""
    uri = f"file:{state_dir / DB_NAME}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=10.0)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def outbox_states(state_dir: Path) -> dict[str, int]:
    """Return how many intents are in each state (empty before the first start)."""
    if not (state_dir / DB_NAME).exists():
        return {}
    conn = open_ro(state_dir)
    try:
        return dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
    finally:
        conn.close()


def sending_keys(state_dir: Path) -> set[str]:
    """Return the keys of the intents caught ``sending``."""
    if not (state_dir / DB_NAME).exists():
        return set()
    conn = open_ro(state_dir)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM outbox WHERE state = 'sending'")}
    finally:
        conn.close()


# -- the alerts ----------------------------------------------------------------------------
def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def instance_name(i: int) -> str:
    return f"host{i:06d}"


def make_batches(n: int, now: float) -> list[bytes]:
    """Return the POST bodies: N distinct alerts, 64 a body, ending a day from now (so none
    resolves by itself during a run)."""
    ends = rfc3339(now + 86400)
    starts = rfc3339(now)
    bodies = []
    for first in range(0, n, BATCH):
        alerts = [
            {
                "labels": {
                    "alertname": ALERTNAME,
                    "instance": instance_name(i),
                    "severity": "critical",
                },
                "annotations": {"summary": f"crash test alert {i}"},
                "startsAt": starts,
                "endsAt": ends,
                "generatorURL": "http://127.0.0.1/crash-test",
            }
            for i in range(first, min(n, first + BATCH))
        ]
        bodies.append(json.dumps(alerts).encode())
    return bodies


class Poster:
    """Posts the batches in order, each until it gets a 200, from a background thread."""

    def __init__(self, daemon: DaemonProcess, bodies: list[bytes], n: int, deadline: float):
        self.daemon = daemon
        self.bodies = bodies
        self.n = n
        self.deadline = deadline
        self.committed = 0  # alerts whose batch got a 200
        self.failed_posts = 0
        self.statuses: Counter[int] = Counter()  # non-200 answers
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="crash-poster", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _post(self, body: bytes) -> int:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.daemon.port}/api/v2/alerts",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
        except (OSError, http.client.HTTPException):
            return 0  # refused, reset, cut short: the daemon is down or dying

    def _run(self) -> None:
        try:
            self._post_all()
        except Exception as exc:  # reported in the run's error, never lost in the thread
            self.error = f"poster crashed: {exc!r}"

    def _post_all(self) -> None:
        for i, body in enumerate(self.bodies):
            while True:
                if time.monotonic() > self.deadline:
                    self.error = f"batch {i} not committed before the deadline"
                    return
                status = self._post(body)
                if status == 200:
                    self.committed = min(self.n, (i + 1) * BATCH)
                    break
                self.failed_posts += 1
                if status:
                    self.statuses[status] += 1
                if status not in (0, 503):  # only "down" or "retry later" are expected
                    self.error = f"batch {i}: POST answered {status}"
                    return
                time.sleep(RETRY_PAUSE)


# -- the run -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KillRecord:
    """One SIGKILL, and what the outbox held right after it."""

    at_s: float  # seconds since the run started
    target: float  # the progress point this kill was drawn for
    progress: float  # (committed + arrived) / 2N when it was sent
    committed: int
    arrived: int  # distinct alerts whose notification had arrived
    receiver_in_flight: int  # requests the receiver was holding at the kill
    states: dict[str, int]  # outbox state -> intents, read after the process was gone
    # intents still ``sending`` whose request the receiver had already answered 200: the
    # window between the provider's answer and alertd's commit of "delivered"
    answered_unrecorded: int
    restart_s: float  # seconds from the kill until the new daemon was ready

    @property
    def unfinished(self) -> int:
        """Intents not yet delivered (or failed) at the kill."""
        return sum(c for s, c in self.states.items() if s not in FINAL)

    @property
    def sending(self) -> int:
        return self.states.get("sending", 0)


@dataclass(slots=True)
class CrashReport:
    """The outcome of one crash run; ``ok`` when every check passed."""

    n: int
    kills: int
    seed: int
    committed: int = 0
    intents: int = 0
    lost: int = 0  # committed alerts whose notification never arrived
    missing_intents: int = 0  # committed alerts with no outbox intent
    duplicates: int = 0  # keys that arrived more than once
    duplicates_in_flight: int = 0  # ... and whose intent has an ambiguous attempt
    violations: int = 0  # ... and whose intent has none: a confirmed send repeated
    over_bound: int = 0  # keys that arrived more than 1 + their ambiguous attempts
    unknown_keys: int = 0  # keys the outbox does not know (or missing)
    max_arrivals_per_key: int = 0
    requests: int = 0
    ambiguous_attempts: int = 0
    states: dict[str, int] = field(default_factory=dict)
    integrity: str = ""
    failed_posts: int = 0
    elapsed_s: float = 0.0
    error: str | None = None  # the run could not finish (deadline, daemon would not start)
    kill_records: list[KillRecord] = field(default_factory=list)
    daemon_tracebacks: int = 0  # "Traceback" lines in the daemon logs

    @property
    def all_delivered(self) -> bool:
        return self.intents > 0 and self.states == {"delivered": self.intents}

    @property
    def kills_mid_delivery(self) -> int:
        """Kills that found intents not yet delivered in the outbox."""
        return sum(1 for k in self.kill_records if k.unfinished > 0)

    @property
    def sending_at_kills(self) -> int:
        """Intents caught ``sending`` by the kills, summed (each gets an ambiguous attempt)."""
        return sum(k.sending for k in self.kill_records)

    @property
    def answered_unrecorded(self) -> int:
        """Sends the receiver had answered 200 that alertd had not yet recorded, summed."""
        return sum(k.answered_unrecorded for k in self.kill_records)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.committed == self.n
            and self.lost == 0
            and self.missing_intents == 0
            and self.violations == 0
            and self.over_bound == 0
            and self.unknown_keys == 0
            and self.integrity == "ok"
            and self.all_delivered
            and len(self.kill_records) == self.kills
        )

    def summary(self) -> str:
        return (
            f"n={self.n} kills={len(self.kill_records)}/{self.kills} committed={self.committed} "
            f"lost={self.lost} duplicates={self.duplicates} "
            f"in_flight={self.duplicates_in_flight} violations={self.violations} "
            f"over_bound={self.over_bound} max_per_key={self.max_arrivals_per_key} "
            f"ambiguous={self.ambiguous_attempts} integrity={self.integrity} "
            f"states={self.states} kills_mid_delivery={self.kills_mid_delivery} "
            f"sending_at_kills={self.sending_at_kills} "
            f"answered_unrecorded={self.answered_unrecorded} "
            f"elapsed={self.elapsed_s:.1f}s error={self.error}"
        )


def run(
    n: int,
    kills: int,
    seed: int,
    workdir: Path,
    *,
    timeout: float = 300.0,
    max_delay: float = 0.030,
    python: str = sys.executable,
) -> CrashReport:
    """Run one crash test in ``workdir`` (created; left in place for the logs) and return
    its report. Everything is bounded by ``timeout`` seconds; a run that hits it comes back
    with ``error`` set rather than raising."""
    rng = random.Random(seed)
    targets = sorted(rng.random() for _ in range(kills))
    report = CrashReport(n=n, kills=kills, seed=seed)
    t0 = time.monotonic()
    deadline = t0 + timeout
    receiver = Receiver(seed + 1, max_delay)
    receiver.start()
    config_dir, state_dir = workdir / "config", workdir / "state"
    workdir.mkdir(parents=True, exist_ok=True)
    write_config(config_dir, receiver.url)
    daemon = DaemonProcess(config_dir, state_dir, workdir, python)
    poster: Poster | None = None
    try:
        daemon.start()
        poster = Poster(daemon, make_batches(n, time.time()), n, deadline)
        poster.start()
        for target in targets:
            report.kill_records.append(_kill_at(target, n, daemon, poster, receiver, deadline, t0))
        _quiesce(n, daemon, poster, receiver, state_dir, deadline)
    except (RuntimeError, TimeoutError) as exc:
        report.error = str(exc)
    finally:
        daemon.stop()
        if poster is not None:
            poster.join(max(0.0, deadline - time.monotonic()) + 20)
        receiver.stop()
    if poster is not None:
        report.committed = poster.committed
        report.failed_posts = poster.failed_posts
        if poster.error and report.error is None:
            report.error = poster.error
    report.elapsed_s = time.monotonic() - t0
    _check(report, receiver, state_dir, poster.committed if poster else 0)
    report.daemon_tracebacks = sum(
        p.read_text(errors="replace").count("Traceback") for p in workdir.glob("daemon-*.log")
    )
    return report


def _progress(n: int, poster: Poster, receiver: Receiver) -> tuple[float, int]:
    arrived = receiver.snapshot()[1]
    return (poster.committed + arrived) / (2 * n), arrived


def _kill_at(
    target: float,
    n: int,
    daemon: DaemonProcess,
    poster: Poster,
    receiver: Receiver,
    deadline: float,
    t0: float,
) -> KillRecord:
    """Wait until progress reaches ``target``, SIGKILL, read the outbox, restart."""
    while True:
        progress, arrived = _progress(n, poster, receiver)
        if progress >= target:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"progress {progress:.3f} never reached the kill point {target:.3f}")
        if poster.done and poster.error:
            raise RuntimeError(f"posting stopped: {poster.error}")
        time.sleep(POLL)
    committed, in_flight = poster.committed, receiver.in_flight
    answered = receiver.answered_keys()
    at = time.monotonic()
    daemon.kill()
    states = outbox_states(daemon.state_dir)
    answered_unrecorded = len(sending_keys(daemon.state_dir) & answered)
    daemon.start()
    return KillRecord(
        at_s=at - t0,
        target=target,
        progress=progress,
        committed=committed,
        arrived=arrived,
        receiver_in_flight=in_flight,
        states=states,
        answered_unrecorded=answered_unrecorded,
        restart_s=time.monotonic() - at,
    )


def _quiesce(
    n: int,
    daemon: DaemonProcess,
    poster: Poster,
    receiver: Receiver,
    state_dir: Path,
    deadline: float,
) -> None:
    """Wait until everything is committed, has arrived and the outbox is finished."""
    poster.join(max(0.0, deadline - time.monotonic()))
    if poster.error:
        raise RuntimeError(f"posting stopped: {poster.error}")
    last, changed = receiver.snapshot(), time.monotonic()
    while time.monotonic() < deadline:
        now, seen = time.monotonic(), receiver.snapshot()
        if seen != last:
            last, changed = seen, now
        if receiver.in_flight == 0 and (seen[1] >= n or now - changed > SETTLE):
            # all arrived, or nothing has arrived for a while: done once the outbox is
            # finished (what never arrived is then reported as lost)
            states = outbox_states(state_dir)
            if states and all(s in FINAL for s in states):
                return
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise RuntimeError(f"alertd exited on its own with {daemon.proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(
        f"not quiescent before the deadline: {receiver.snapshot()[1]}/{n} arrived, "
        f"outbox {outbox_states(state_dir)}"
    )


def _check(report: CrashReport, receiver: Receiver, state_dir: Path, committed: int) -> None:
    """Fill in the history checks from the receiver's record and the state database."""
    arrivals = list(receiver.arrivals)
    report.requests = len(arrivals)
    per_key = Counter(a.key for a in arrivals)
    arrived = {a.instance for a in arrivals}
    committed_instances = {instance_name(i) for i in range(committed)}
    report.lost = len(committed_instances - arrived)
    report.max_arrivals_per_key = max(per_key.values(), default=0)
    if not (state_dir / DB_NAME).exists():
        report.integrity = "no database"
        return
    conn = open_ro(state_dir)
    try:
        report.integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        report.states = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
        report.intents = sum(report.states.values())
        ambiguous = dict(
            conn.execute(
                "SELECT o.key, COUNT(a.id) FROM outbox o LEFT JOIN outbox_attempts a "
                "ON a.outbox_id = o.id AND a.outcome = 'ambiguous' GROUP BY o.key"
            )
        )
        report.ambiguous_attempts = sum(ambiguous.values())
        with_intent = set()
        for (payload,) in conn.execute(
            "SELECT COALESCE(b.payload, o.payload) FROM outbox o "
            "LEFT JOIN outbox_body b ON b.id = o.id"
        ):
            labels = dict(json.loads(payload)["incident"]["labels"])
            with_intent.add(labels.get("instance", ""))
    finally:
        conn.close()
    report.missing_intents = len(committed_instances - with_intent)
    for key, count in per_key.items():
        if key not in ambiguous:
            report.unknown_keys += count
            continue
        if count > 1:
            report.duplicates += 1
            if ambiguous[key] > 0:
                report.duplicates_in_flight += 1
            else:
                report.violations += 1
        if count > 1 + ambiguous[key]:
            report.over_bound += 1


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.crash_harness N KILLS SEED WORKDIR``: one run, the summary printed."""
    args = sys.argv[1:] if argv is None else argv
    n, kills, seed, workdir = int(args[0]), int(args[1]), int(args[2]), Path(args[3])
    report = run(n, kills, seed, workdir)
    print(report.summary())
    for k in report.kill_records:
        print(
            f"  kill at {k.at_s:.2f}s progress {k.progress:.2f} outbox {k.states} "
            f"answered, unrecorded {k.answered_unrecorded}"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
