#!/usr/bin/env python3
"""The whole notification pipeline, side by side: Alertmanager 0.25 and alertd.

POST /api/v2/alerts -> webhook arrival, for both systems in one run, on this machine:

* **Alertmanager** (Debian ``prometheus-alertmanager``; installed with apt-get when missing
  and running as root, else a SKIP line), started by this script on 127.0.0.1:<free port>,
  fresh storage per run, no clustering, routing everything to the receiver with
  ``group_by: [alertname, instance]`` and ``group_wait: 0s`` (as the peer-bench script), so
  N distinct alerts make N notifications.
* **alertd** (``python -m alertd run``, fresh state directory per run, no rules) with one
  ``webhook`` channel to the same receiver and one route; its durable outbox is always on:
  the 200 to each POST means the alerts' incidents and notification intents are committed.

The receiver is ``bench/webhook_sink.py``, an aiohttp process of its own (its CPU is
reported, to show it is not the bottleneck). For each N (``--n``), ``--runs`` times per
system: push N distinct alerts in POSTs of ``--batch`` (64, Prometheus' batch size) with one
POST in flight, wait until all N notifications arrived (bounded), and report push time, time
until the last arrival, per-alert latency POST start -> arrival (p50/p90/p99/max),
notifications/s, the server's CPU seconds (/proc/PID/stat, from before the push to the last
arrival; ``cpu_s`` counts its child processes too, ``cpu_main_s`` the main process alone)
and peak RSS (VmHWM); for alertd also how long its daemon and its delivery worker each held
and waited for the state database's writer lock, in how many turns (``lock_held_daemon_s``,
``turns_delivery`` ..., from its ``/metrics``) and how many POSTs its backpressure held
back, for how long (``held_posts``, ``held_s``). Then the idle pipeline: one alert at a
time, each waited for, ``--single`` times, into a fresh server. Medians over the runs are
printed as::

    RESULT pipeline system=alertmanager|alertd n=... total_s=... p50_ms=... p99_ms=... ...
    RESULT pipeline_idle system=... count=50 p50_ms=... p99_ms=...

followed by a table. ``--profile`` adds one alertd run at the largest N under cProfile
(``bench/profile_daemon.py``, and the delivery worker process too; not counted in the
medians) and prints the top functions of each.

Usage: .venv/bin/python bench/bench_pipeline.py [--n 1000,10000] [--runs 3] [--single 50]
           [--profile] [--profile-out FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from benchlib import (
    Child,
    alertd_run_args,
    free_port,
    median,
    pct,
    proc_cpu_seconds,
    result,
    table,
)
from profile_daemon import print_profile

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
AM_BIN = "prometheus-alertmanager"
STALL_S = 15.0  # no new arrival for this long: give the run up


def python_bin() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", default="1000,10000", help="alert counts, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--single", type=int, default=50, help="idle-pipeline alerts; 0 = skip")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per run, at most")
    ap.add_argument("--systems", default="alertmanager,alertd")
    ap.add_argument("--profile", action="store_true", help="one more alertd run under cProfile")
    ap.add_argument("--profile-out", type=Path, default=None, help="keep the .prof file here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return ap.parse_args(argv)


# -- the receiver ---------------------------------------------------------------------------
class Sink:
    """``bench/webhook_sink.py`` in its own process."""

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        self.child = Child(
            [python_bin(), str(BENCH / "webhook_sink.py"), "--port", str(self.port)],
            scratch / "sink.log",
        )
        self.child.wait_http(self.port, "/count", timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _call(self, method: str, path: str, timeout: float = 30.0) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"sink {method} {path}: {resp.status}")
            return body
        finally:
            conn.close()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def wait(self, count: int, timeout: float) -> int:
        return int(self._call("GET", f"/wait?count={count}&timeout={timeout}", timeout + 10))

    def dump(self) -> tuple[list[tuple[float, str, str]], int]:
        d = json.loads(self._call("GET", "/dump"))
        return [tuple(a) for a in d["alerts"]], int(d["requests"])

    def cpu_seconds(self) -> float:
        return self.child.cpu_seconds()


# -- the systems ----------------------------------------------------------------------------
@dataclass
class Server:
    child: Child
    port: int


def start_alertmanager(work: Path, hook_url: str) -> Server:
    work.mkdir(parents=True)
    (work / "alertmanager.yml").write_text(
        "route:\n"
        "  receiver: bench\n"
        "  group_by: ['alertname', 'instance']\n"
        "  group_wait: 0s\n"
        "  group_interval: 5m\n"
        "  repeat_interval: 24h\n"
        "receivers:\n"
        "  - name: bench\n"
        "    webhook_configs:\n"
        f"      - url: {hook_url}\n"
        "        send_resolved: false\n"
    )
    port = free_port()
    child = Child(
        [
            AM_BIN,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        work / "alertmanager.log",
    )
    child.wait_http(port, "/-/ready")
    return Server(child, port)


def start_alertd(work: Path, hook_url: str, profile: Path | None = None) -> Server:
    config, state = work / "config", work / "state"
    config.mkdir(parents=True)
    (config / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (config / "channels.yaml").write_text(
        f"channels:\n  hook:\n    type: webhook\n    url: {hook_url}\nroutes:\n  - notify: [hook]\n"
    )
    port = free_port()
    args = alertd_run_args(config, state, port)
    if profile is None:
        argv = [python_bin(), "-m", "alertd", *args]
    else:
        argv = [python_bin(), str(BENCH / "profile_daemon.py"), str(profile), *args]
    child = Child(argv, work / "alertd.log")
    child.wait_http(port, "/-/ready")
    return Server(child, port)


Starter = Callable[[Path, str], Server]


# -- pushing --------------------------------------------------------------------------------
def alert(instance: str) -> dict[str, object]:
    return {
        "labels": {
            "alertname": "BenchHighCPU",
            "instance": instance,
            "severity": "page",
            "job": "alertd-bench",
        },
        "annotations": {"summary": f"CPU high on {instance}"},
        "generatorURL": "http://127.0.0.1/bench",
    }


async def push(port: int, instances: list[str], batch: int) -> tuple[dict[str, float], float]:
    """POST the alerts, ``batch`` a request, one request in flight; return each instance's
    POST start time (monotonic) and the push's wall seconds."""
    bodies = [
        (instances[i : i + batch], json.dumps([alert(x) for x in instances[i : i + batch]]))
        for i in range(0, len(instances), batch)
    ]
    sent: dict[str, float] = {}
    url = f"http://127.0.0.1:{port}/api/v2/alerts"
    headers = {"Content-Type": "application/json"}
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for names, body in bodies:
            t = time.monotonic()
            for name in names:
                sent[name] = t
            async with session.post(url, data=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"POST /api/v2/alerts -> {resp.status}: {text[:200]}")
    return sent, time.monotonic() - t0


def wait_all(sink: Sink, n: int, timeout: float) -> int:
    """Wait until ``n`` alerts arrived, giving up at ``timeout`` or after a stall."""
    deadline = time.monotonic() + timeout
    got, last, changed = 0, -1, time.monotonic()
    while time.monotonic() < deadline:
        got = sink.wait(n, timeout=1.0)
        if got >= n:
            break
        if got != last:
            last, changed = got, time.monotonic()
        elif time.monotonic() - changed > STALL_S:
            print(f"# stalled at {got}/{n}; giving this run up", flush=True)
            break
    return got


LOCK_SERIES = {  # alertd's /metrics: its two processes' turns writing the state database
    "alertd_state_write_lock_held_seconds_total": "lock_held",
    "alertd_state_write_lock_wait_seconds_total": "lock_wait",
    "alertd_state_write_turns_total": "turns",
}
HELD_SERIES = {  # alertd's /metrics: POSTs held back by ingest backpressure, and for how long
    "alertd_ingest_held_seconds_count": "held_posts",
    "alertd_ingest_held_seconds_sum": "held_s",
}
REPORT_LAG_S = 0.5  # the worker reports its counters to the daemon every 0.25 s


def daemon_counters(port: int) -> dict[str, float]:
    """Return alertd's writer-lock counters: ``lock_held_daemon_s``, ``lock_wait_delivery_s``
    and so on (seconds each process held or waited for the lock, since it started, and
    ``turns_daemon``/``turns_delivery``: in how many turns), and
    ``held_posts``/``held_s`` (POSTs held back by backpressure and their seconds held)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition('{process="')
        if name in LOCK_SERIES:
            process, _, value = rest.partition('"} ')
            unit = "" if LOCK_SERIES[name] == "turns" else "_s"
            out[f"{LOCK_SERIES[name]}_{process}{unit}"] = float(value)
        name, _, value = line.partition(" ")
        if name in HELD_SERIES:
            out[HELD_SERIES[name]] = float(value)
    return out


def storm(
    name: str, start: Starter, n: int, tag: str, a: argparse.Namespace, sink: Sink, work: Path
) -> dict[str, float]:
    """One run: a fresh server, N alerts pushed, all arrivals awaited; return the figures."""
    sink.reset()
    server = start(work, sink.url)
    try:
        rss_idle = server.child.rss_kib() or 0
        c_srv0, c_sink0, c_self0 = (
            server.child.cpu_seconds(),
            sink.cpu_seconds(),
            time.process_time(),
        )
        c_main0 = proc_cpu_seconds(server.child.pid)  # alertd: the daemon without its worker
        locks0 = daemon_counters(server.port) if name == "alertd" else {}
        t_start = time.monotonic()
        instances = [f"{tag}-host{i:06d}" for i in range(n)]
        sent, push_s = asyncio.run(push(server.port, instances, a.batch))
        got = wait_all(sink, n, a.timeout)
        c_srv = server.child.cpu_seconds() - c_srv0
        c_main = proc_cpu_seconds(server.child.pid) - c_main0
        c_sink = sink.cpu_seconds() - c_sink0
        c_self = time.process_time() - c_self0
        hwm = server.child.hwm_kib() or 0
        rss_after = server.child.rss_kib() or 0
        if locks0:
            time.sleep(REPORT_LAG_S)  # the worker's last turns reach the daemon's metrics
            locks = {k: v - locks0.get(k, 0.0) for k, v in daemon_counters(server.port).items()}
        else:
            locks = {}
    finally:
        code = server.child.stop()
    alerts, requests = sink.dump()
    first: dict[str, float] = {}
    for t, instance, _key in alerts:
        if instance in sent and instance not in first:
            first[instance] = t
    lat = [first[i] - sent[i] for i in first]
    last = max(first.values()) if first else float("nan")
    total = last - t_start
    return {
        "received": float(len(first)),
        "notifications": float(requests),
        "duplicates": float(len(alerts) - len(first)),
        "push_s": push_s,
        "total_s": total,
        "p50_ms": pct(lat, 50) * 1e3,
        "p90_ms": pct(lat, 90) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3 if lat else float("nan"),
        "notif_per_s": len(first) / total if first else 0.0,
        "cpu_s": c_srv,
        "cpu_ms_per_alert": c_srv / n * 1e3,
        "cpu_main_s": c_main,  # the main process; cpu_s - cpu_main_s is its children's
        "util": c_srv / total if first else float("nan"),
        "hwm_mib": hwm / 1024,
        "rss_idle_mib": rss_idle / 1024,
        "rss_after_mib": rss_after / 1024,
        "sink_cpu_s": c_sink,
        "sink_util": c_sink / total if first else float("nan"),
        "pusher_cpu_s": c_self,
        "exit_code": float(code if code is not None else -1),
        "complete": float(got >= n),
        **locks,
    }


def idle(name: str, start: Starter, count: int, sink: Sink, work: Path) -> list[float]:
    """One alert at a time into an idle pipeline; return each POST start -> arrival."""
    sink.reset()
    server = start(work, sink.url)
    sent: dict[str, float] = {}
    try:
        time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for i in range(count):
            instance = f"idle-{name}-{os.getpid()}-{i}"
            body = json.dumps([alert(instance)])
            sent[instance] = time.monotonic()
            conn.request(
                "POST", "/api/v2/alerts", body, headers={"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{name}: POST -> {resp.status}")
            sink.wait(i + 1, timeout=10)
            time.sleep(0.05)  # the pipeline goes idle again
        conn.close()
    finally:
        server.child.stop()
    alerts, _ = sink.dump()
    first: dict[str, float] = {}
    for t, instance, _key in alerts:
        first.setdefault(instance, t)
    return [first[i] - sent[i] for i in sent if i in first]


# -- Alertmanager availability --------------------------------------------------------------
def alertmanager_missing() -> str | None:
    """Return why Alertmanager can't run here (after trying apt-get as root), or None."""
    if shutil.which(AM_BIN):
        return None
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"# installing {AM_BIN} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", AM_BIN], env=env, capture_output=True, check=False
        )
        if shutil.which(AM_BIN):
            return None
        return f"apt-get install {AM_BIN} failed (offline?)"
    return f"{AM_BIN} not installed (apt-get install {AM_BIN}, as root)"


def version_of(name: str) -> str:
    if name == "alertmanager":
        out = subprocess.run([AM_BIN, "--version"], capture_output=True, text=True, check=False)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    out = subprocess.run(
        [python_bin(), "-c", "import alertd, sys; print(alertd.__file__, sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "alertd " + out.stdout.strip()


# -- main -----------------------------------------------------------------------------------
def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Return each field's median over the runs."""
    return {k: median([r[k] for r in runs]) for k in runs[0]}


FIELDS = ("push_s", "total_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "notif_per_s", "cpu_s")


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    sizes = [int(x) for x in a.n.split(",")]
    systems: dict[str, Starter] = {}
    for name in a.systems.split(","):
        if name == "alertmanager":
            why = alertmanager_missing()
            if why:
                print(f"SKIP alertmanager: {why}", flush=True)
                continue
            systems[name] = start_alertmanager
        elif name == "alertd":
            systems[name] = start_alertd
        else:
            sys.exit(f"unknown system {name!r}")
    scratch = Path(tempfile.mkdtemp(prefix="alertd-pipeline-"))
    status = 0
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    idles: dict[str, list[float]] = {}
    try:
        sink = Sink(scratch)
        for name in systems:
            print(f"# {version_of(name)}", flush=True)
        print(f"# aiohttp {aiohttp.__version__}; {os.cpu_count()} CPUs; scratch {scratch}")
        seq = 0
        for n in sizes:
            for run in range(a.runs):
                for name, start in systems.items():  # interleaved: drift hits both alike
                    seq += 1
                    r = storm(name, start, n, f"r{seq}", a, sink, scratch / f"{name}-{n}-{run}")
                    rows.setdefault((name, n), []).append(r)
                    print(
                        f"# {name} N={n} run {run + 1}/{a.runs}: {int(r['received'])}/{n} "
                        f"arrived, all in {r['total_s']:.2f}s (push {r['push_s']:.2f}s), "
                        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                        f"cpu {r['cpu_s']:.2f}s, peak {r['hwm_mib']:.0f} MiB, "
                        f"sink cpu {r['sink_cpu_s']:.2f}s",
                        flush=True,
                    )
                    if "lock_held_daemon_s" in r:
                        print(
                            f"#   the state's writer lock: held {r['lock_held_daemon_s']:.2f}s in "
                            f"{r.get('turns_daemon', 0):.0f} turns by the daemon (waited "
                            f"{r['lock_wait_daemon_s']:.2f}s), {r['lock_held_delivery_s']:.2f}s "
                            f"in {r.get('turns_delivery', 0):.0f} turns by the delivery worker "
                            f"(waited {r['lock_wait_delivery_s']:.2f}s); "
                            f"{r.get('held_posts', 0):.0f} POSTs held back by backpressure, "
                            f"{r.get('held_s', 0):.2f}s in all",
                            flush=True,
                        )
                    if not r["complete"]:
                        status = 1
        if a.single:
            for name, start in systems.items():
                idles[name] = idle(name, start, a.single, sink, scratch / f"{name}-idle")
        profile_text = ""
        if a.profile and "alertd" in systems:
            prof = a.profile_out or scratch / "alertd.prof"
            n = max(sizes)

            worker_prof = prof.with_suffix(".worker.prof")

            def profiled(work: Path, url: str) -> Server:
                return start_alertd(work, url, profile=prof)

            # the delivery worker process is profiled too (alertd/notify/worker_process.py)
            os.environ["ALERTD_PROFILE_WORKER"] = str(worker_prof)
            try:
                r = storm("alertd", profiled, n, "prof", a, sink, scratch / "alertd-profile")
            finally:
                del os.environ["ALERTD_PROFILE_WORKER"]
            print(
                f"# alertd under cProfile, N={n}: all in {r['total_s']:.2f}s "
                f"(push {r['push_s']:.2f}s), cpu {r['cpu_s']:.2f}s",
                flush=True,
            )
            profile_text = "# the daemon\n" + print_profile(str(prof), top=30)
            if worker_prof.exists():
                profile_text += "\n# the delivery worker\n" + print_profile(
                    str(worker_prof), top=30
                )
        sink.child.stop()
    finally:
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    print()
    summary: list[list[object]] = []
    for (name, n), runs in rows.items():
        med = medians(runs)
        result(
            "pipeline",
            system=name,
            n=n,
            runs=a.runs,
            received=med["received"],
            push_s=med["push_s"],
            total_s=med["total_s"],
            p50_ms=med["p50_ms"],
            p90_ms=med["p90_ms"],
            p99_ms=med["p99_ms"],
            max_ms=med["max_ms"],
            notif_per_s=med["notif_per_s"],
            cpu_s=med["cpu_s"],
            cpu_ms_per_alert=med["cpu_ms_per_alert"],
            cpu_main_s=med["cpu_main_s"],
            util=med["util"],
            hwm_mib=med["hwm_mib"],
            rss_idle_mib=med["rss_idle_mib"],
            duplicates=med["duplicates"],
            sink_cpu_s=med["sink_cpu_s"],
            sink_util=med["sink_util"],
            total_s_min=min(r["total_s"] for r in runs),
            total_s_max=max(r["total_s"] for r in runs),
            **{k: med[k] for k in sorted(med) if k.startswith("lock_")},
        )
        summary.append([name, n, *(med[f] for f in FIELDS), med["hwm_mib"], med["sink_cpu_s"]])
    for n in sizes:
        if ("alertmanager", n) in rows and ("alertd", n) in rows:
            am, ad = medians(rows[("alertmanager", n)]), medians(rows[("alertd", n)])
            result(
                "pipeline_ratio",
                n=n,
                total_alertd_over_am=ad["total_s"] / am["total_s"],
                p50_alertd_over_am=ad["p50_ms"] / am["p50_ms"],
                p99_alertd_over_am=ad["p99_ms"] / am["p99_ms"],
                cpu_alertd_over_am=ad["cpu_s"] / am["cpu_s"],
            )
    for name, lat in idles.items():
        if lat:
            result(
                "pipeline_idle",
                system=name,
                count=len(lat),
                p50_ms=pct(lat, 50) * 1e3,
                p90_ms=pct(lat, 90) * 1e3,
                p99_ms=pct(lat, 99) * 1e3,
                min_ms=min(lat) * 1e3,
                max_ms=max(lat) * 1e3,
            )
    print()
    headers = ["system", "N", "push s", "all s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    headers += ["notif/s", "cpu s", "peak MiB", "sink cpu s"]
    table(
        headers,
        summary,
    )
    if idles:
        table(
            ["idle pipeline", "count", "p50 ms", "p99 ms"],
            [[k, len(v), pct(v, 50) * 1e3, pct(v, 99) * 1e3] for k, v in idles.items() if v],
        )
    if profile_text:
        print(profile_text)
    return status


if __name__ == "__main__":
    sys.exit(main())
