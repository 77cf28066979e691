#!/usr/bin/env python3
"""The HTTP API under load on loopback: alertd next to Alertmanager 0.25, in one run.

Setup: a state directory with ``--incidents`` open incidents (written with ``IncidentStore``
in one transaction), an alertd daemon (``python -m alertd run``, tokens configured) on it,
and ``prometheus-alertmanager`` (no clustering, a receiver that sends nothing) on run-time
ports. ``GET /api/v1/incidents`` is measured on the daemon when it serves ``/api/v1``, else on
a standalone listener built the daemon's way (``alertd.server`` + ``api_v1_routes`` over the
real ``Inbound``) on the same state directory.

Cases (each ``--seconds`` after a 1 s warm-up, ``--concurrency`` requests in flight from one
aiohttp client process; latency is request start to last body byte):

* ``v1_incidents``: ``GET /api/v1/incidents`` (default page of 50, unresolved, newest first);
  ``v1_incidents_match``: the same with ``match=job=~bench.*`` (label matchers filter in
  Python: every unresolved incident is read); ``v1_incidents_500``: pages of 500.
* ``v2_alerts_get``: ``GET /api/v2/alerts`` with ``--alerts`` alerts loaded (Alertmanager: all
  of them in one answer, it has no paging; alertd too if the daemon serves it). Alertmanager
  runs with ``--web.get-concurrency`` = ``--concurrency``: by default it serves at most
  max(GOMAXPROCS, 8) GETs at once and answers the rest 503.
* ``v2_alerts_post_new``: the ``--alerts`` alerts pushed once, in batches of 64 (Prometheus'
  batch size): each is new, so alertd opens an incident per alert (and queues its page).
* ``v2_alerts_post``: the same batches re-sent round-robin for ``--seconds``: Prometheus
  re-sending firing alerts, the steady state.

Each line: ``RESULT api system=... case=... rps=... p50_ms=... p99_ms=... errors=...
server_cpu=... client_cpu=...`` (``*_cpu``: cores busy, from /proc; with 2 vCPUs a client
near 1.0 means the figure is the client's limit, not the server's).

Usage: .venv/bin/python bench/bench_api.py [--seconds 10] [--concurrency 32]
       [--incidents 10000] [--alerts 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from benchlib import alertd_run_args, free_port, pct, proc_cpu_seconds, result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

READER = "bench-reader-token"
PROMETHEUS = "bench-prometheus-token"
BATCH = 64
READY_TIMEOUT_S = 60.0
ALERTMANAGER = "prometheus-alertmanager"


# -- setup ---------------------------------------------------------------------------------------
def write_config(cfg: Path) -> None:
    from alertd.api.auth import token_hash

    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 15s\nrules: []\n")
    (cfg / "channels.yaml").write_text(
        "channels:\n  log: {type: log}\n"
        "teams:\n  ops:\n    members: [{name: Alice, email: alice@example.com}]\n"
        "    channels: [log]\n"
        "priorities:\n  targets:\n    P1: {respond_within: 5m, resolve_within: 1h}\n"
        "routes:\n  - match: {priority: [P1, P2]}\n    notify: [ops]\n  - notify: [log]\n"
    )
    (cfg / "server.yaml").write_text(
        "tokens:\n"
        f"  reader: {{sha256: {token_hash(READER)}, scopes: [read]}}\n"
        f"  prometheus: {{sha256: {token_hash(PROMETHEUS)}, scopes: [ingest]}}\n"
    )


def seed_incidents(state: Path, n: int, now: float) -> float:
    """Open ``n`` incidents in one transaction; return the seconds it took."""
    from alertd.model import Incident, IncidentState, Level, fingerprint, make_labels
    from alertd.state.db import connect
    from alertd.state.incidents import IncidentStore

    started = time.perf_counter()
    store = IncidentStore(connect(state))
    with store.transaction():
        for i in range(n):
            labels = make_labels({"instance": f"host{i:05d}", "job": "bench", "site": f"s{i % 7}"})
            opened = now - (n - i) * 30.0
            store.open(
                Incident(
                    id=0,
                    fingerprint=fingerprint("cpu", labels),
                    rule="cpu",
                    metric="host_cpu_usage_percent",
                    labels=labels,
                    level=Level(1 + i % 3),
                    priority=f"P{1 + i % 4}",
                    state=IncidentState.OPEN,
                    summary=f"CPU 97% on host{i:05d}",
                    value=97.0,
                    opened_at=opened,
                    updated_at=opened,
                )
            )
    store.conn.close()
    return time.perf_counter() - started


def alert_batches(n: int, now: float) -> list[bytes]:
    """``n`` distinct firing alerts as ``POST /api/v2/alerts`` bodies of up to 64."""

    def rfc3339(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")

    alerts = [
        {
            "labels": {
                "alertname": "BenchHighCPU",
                "instance": f"node{i:05d}:9100",
                "job": "bench",
                "severity": "critical" if i % 5 == 0 else "warning",
            },
            "annotations": {"summary": f"CPU high on node{i:05d}"},
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + 3600),
            "generatorURL": "http://prometheus.example:9090/graph",
        }
        for i in range(n)
    ]
    return [json.dumps(alerts[i : i + BATCH]).encode() for i in range(0, n, BATCH)]


# -- processes -----------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def http_get(port: int, path: str, token: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def spawn(name: str, argv: Sequence[str], port: int, work: Path, ready: str) -> Proc:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    p = Proc(name, proc, port, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(port, ready) == 200:
                return p
        time.sleep(0.1)
    p.stop()
    raise RuntimeError(f"{name} did not become ready; its log:\n{log.read_text()[-3000:]}")


def wait_idle(p: Proc, limit: float = 120.0) -> float:
    """Wait until ``p`` uses under 5 % of a core over half a second; return seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = p.cpu()
        time.sleep(0.5)
        if p.cpu() - before < 0.025:
            break
    return time.monotonic() - start


def serve_v1(state: Path, cfg: Path, port: int) -> None:
    """The standalone ``/api/v1`` listener (run as a child process of this script)."""
    from prometheus_client import CollectorRegistry

    from alertd.api.auth import Authorizer
    from alertd.api.v1 import api_v1_routes
    from alertd.clock import SystemClock
    from alertd.config.load import load_config
    from alertd.inbound import Inbound
    from alertd.incidents.manager import IncidentManager
    from alertd.metrics import Metrics
    from alertd.notify.delivery import Delivery
    from alertd.notify.outbox import OutboxStore
    from alertd.server import build_web_app, start_server
    from alertd.state.db import connect
    from alertd.state.incidents import IncidentStore

    async def main() -> None:
        config = load_config(cfg)
        conn = connect(state)
        manager = IncidentManager(IncidentStore(conn), config.channels)
        outbox = OutboxStore(conn)
        clock = SystemClock()
        registry = CollectorRegistry()
        delivery = Delivery(outbox, {}, Metrics(registry), clock)

        async def no_reload() -> bool:
            return False

        inbound = Inbound(
            manager, outbox, delivery, lambda: config, clock.now, lambda _: None, no_reload
        )
        routes = api_v1_routes(inbound, lambda: Authorizer(config.server.tokens))
        runner = await start_server(
            build_web_app(registry, no_reload, lambda: True, routes), "127.0.0.1", port
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# -- load ----------------------------------------------------------------------------------------
@dataclass
class Stats:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float


async def load(
    method: str,
    url: str,
    bodies: Iterator[bytes | None],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    server: Proc,
) -> Stats:
    """Keep ``concurrency`` requests in flight until ``seconds`` pass or ``bodies`` runs out."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                body = next(bodies, b"")
                if body == b"":
                    return
                started = time.perf_counter()
                try:
                    async with session.request(method, url, data=body, headers=headers) as r:
                        await r.read()
                        if r.status >= 300:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append(time.perf_counter() - started)

        cpu0, client0, t0 = server.cpu(), time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
        return Stats(
            len(latencies),
            errors,
            elapsed,
            latencies,
            (server.cpu() - cpu0) / elapsed,
            (time.process_time() - client0) / elapsed,
        )


def cycle(items: Sequence[bytes | None]) -> Iterator[bytes | None]:
    while True:
        yield from items


def measure(
    system: str,
    case: str,
    server: Proc,
    method: str,
    path: str,
    token: str | None,
    bodies: Callable[[], Iterator[bytes | None]],
    a: argparse.Namespace,
    warmup: float = 1.0,
) -> Stats:
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{server.port}{path}"
    if warmup:
        asyncio.run(load(method, url, bodies(), headers, a.concurrency, warmup, server))
    s = asyncio.run(load(method, url, bodies(), headers, a.concurrency, a.seconds, server))
    ms = [x * 1000 for x in s.latencies]
    result(
        "api",
        system=system,
        case=case,
        rps=s.requests / s.seconds,
        p50_ms=pct(ms, 50),
        p99_ms=pct(ms, 99),
        requests=s.requests,
        errors=s.errors,
        concurrency=a.concurrency,
        server_cpu=s.server_cpu,
        client_cpu=s.client_cpu,
    )
    return s


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="per case")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument(
        "--serve-v1", nargs=3, metavar=("STATE", "CONFIG", "PORT"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    if a.serve_v1:
        serve_v1(Path(a.serve_v1[0]), Path(a.serve_v1[1]), int(a.serve_v1[2]))
        return 0
    if shutil.which(ALERTMANAGER) is None:
        print(f"SKIP {ALERTMANAGER} is not installed (apt-get install prometheus-alertmanager)")
    python = str(REPO / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="alertd-bench-api-") as tmp:
        work = Path(tmp)
        cfg, state = work / "cfg", work / "state"
        write_config(cfg)
        now = time.time()
        took = seed_incidents(state, a.incidents, now)
        print(f"# {a.incidents} incidents written in {took:.2f} s (one transaction)", flush=True)
        batches = alert_batches(a.alerts, now)
        try:
            port = free_port()
            daemon = spawn(
                "alertd",
                [
                    python,
                    "-m",
                    "alertd",
                    *alertd_run_args(cfg, state, port, "--log-level", "WARNING"),
                ],
                port,
                work,
                "/-/ready",
            )
            procs.append(daemon)
            v1 = daemon
            if http_get(port, "/api/v1/openapi.json") != 200:
                v1_port = free_port()
                v1 = spawn(
                    "alertd-v1",
                    [
                        python,
                        str(Path(__file__).resolve()),
                        "--serve-v1",
                        str(state),
                        str(cfg),
                        str(v1_port),
                    ],
                    v1_port,
                    work,
                    "/-/ready",
                )
                procs.append(v1)
                print("# the daemon does not serve /api/v1 yet: a standalone listener does")

            def get() -> Iterator[bytes | None]:
                return cycle([None])

            measure("alertd", "v1_incidents", v1, "GET", "/api/v1/incidents", READER, get, a)
            measure(
                "alertd",
                "v1_incidents_match",
                v1,
                "GET",
                "/api/v1/incidents?match=job%3D~bench.%2A",
                READER,
                get,
                a,
            )
            measure(
                "alertd",
                "v1_incidents_500",
                v1,
                "GET",
                "/api/v1/incidents?limit=500",
                READER,
                get,
                a,
            )
            if v1 is not daemon:
                v1.stop()

            am: Proc | None = None
            if shutil.which(ALERTMANAGER):
                am_port = free_port()
                (work / "am").mkdir()
                (work / "am" / "alertmanager.yml").write_text(
                    "route: {receiver: blackhole, group_by: [alertname, instance]}\n"
                    "receivers: [{name: blackhole}]\n"
                )
                am = spawn(
                    "alertmanager",
                    [
                        ALERTMANAGER,
                        f"--config.file={work / 'am' / 'alertmanager.yml'}",
                        f"--storage.path={work / 'am' / 'data'}",
                        f"--web.listen-address=127.0.0.1:{am_port}",
                        "--cluster.listen-address=",
                        f"--web.get-concurrency={a.concurrency}",
                        "--log.level=warn",
                    ],
                    am_port,
                    work,
                    "/-/ready",
                )
                procs.append(am)

            def once() -> Iterator[bytes | None]:
                return iter(list(batches))

            def again() -> Iterator[bytes | None]:
                return cycle(list(batches))

            targets = [("alertd", daemon, PROMETHEUS)] + (
                [("alertmanager", am, None)] if am else []
            )
            for system, server, token in targets:
                measure(
                    system,
                    "v2_alerts_post_new",
                    server,
                    "POST",
                    "/api/v2/alerts",
                    token,
                    once,
                    a,
                    warmup=0,
                )
                print(f"# {system} idle again after {wait_idle(server):.1f} s", flush=True)
            for system, server, _ in targets:
                if system == "alertd" and http_get(server.port, "/api/v2/alerts", READER) != 200:
                    print("# alertd does not serve GET /api/v2/alerts yet: not measured")
                    continue
                measure(system, "v2_alerts_get", server, "GET", "/api/v2/alerts", READER, get, a)
            for system, server, token in targets:
                measure(system, "v2_alerts_post", server, "POST", "/api/v2/alerts", token, again, a)
        finally:
            for p in reversed(procs):
                p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
