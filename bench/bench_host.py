#!/usr/bin/env python3
"""Cost of one host collection: alertd's ``HostCollector.collect()`` vs a node_exporter scrape.

alertd: ``collect()`` timed ``--iters`` times per run (after a baseline call, so rates are
computed), ``--runs`` runs; wall (perf_counter) and CPU (process_time) per call, median and
p99, without process checks and with one (which walks every process's name and cmdline).
Shown next to the 15 s collection interval as a duty cycle.

node_exporter: Debian's ``/usr/bin/prometheus-node-exporter`` started on 127.0.0.1 with a
port free at run time, scraped ``--scrapes`` times per run over one keep-alive connection;
wall per scrape (median, p99), metric lines, bytes, and the exporter's own CPU per scrape
(from /proc/PID/stat). It is stopped by PID at the end. Skipped if the binary is missing.

Usage: .venv/bin/python bench/bench_host.py [--iters 200] [--runs 5] [--scrapes 100]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

import psutil
from benchlib import free_port, median, pct, proc_cpu_seconds, result, table

from alertd.clock import SystemClock
from alertd.collect.host import HostCollector
from alertd.model import make_labels

INTERVAL_S = 15.0
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def measure(fn: Callable[[], object], iters: int) -> tuple[list[float], list[float]]:
    """Return per-call wall and CPU times in µs."""
    walls, cpus = [], []
    for _ in range(iters):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t) * 1e6)
        cpus.append((time.process_time() - c) * 1e6)
    return walls, cpus


def bench_collector(name: str, collector: HostCollector, iters: int, runs: int) -> dict[str, float]:
    collector.collect()  # baseline for CPU / disk / network rates
    time.sleep(0.05)
    n_samples = len(collector.collect())
    p50s, p99s, cpu50s, cpu_mean = [], [], [], []
    for _ in range(runs):
        for _ in range(5):
            collector.collect()
        walls, cpus = measure(collector.collect, iters)
        p50s.append(median(walls))
        p99s.append(pct(walls, 99))
        cpu50s.append(median(cpus))
        cpu_mean.append(sum(cpus) / len(cpus))
    fields = {
        "p50_us": median(p50s),
        "p99_us": median(p99s),
        "cpu_p50_us": median(cpu50s),
        "cpu_mean_us": median(cpu_mean),
        "samples": float(n_samples),
        "duty_pct": median(p50s) / (INTERVAL_S * 1e6) * 100,
        "p50_spread_pct": (max(p50s) - min(p50s)) / median(p50s) * 100,
    }
    result(
        f"host_collect {name}",
        p50_us=fields["p50_us"],
        p99_us=fields["p99_us"],
        cpu_p50_us=fields["cpu_p50_us"],
        cpu_mean_us=fields["cpu_mean_us"],
        samples=n_samples,
        interval_s=INTERVAL_S,
        duty_pct=f"{fields['duty_pct']:.4f}",
        runs=runs,
        iters=iters,
        p50_spread_pct=fields["p50_spread_pct"],
    )
    errors = collector.errors_total
    if errors:
        print(f"!! {name}: {errors} section errors during the run", flush=True)
    return fields


def _call_section(fn: Callable[[float, float], object], clock: SystemClock) -> object:
    return fn(clock.now(), clock.monotonic())


def section_breakdown(collector: HostCollector, iters: int) -> list[tuple[str, float]]:
    """Median µs of each section (uses the collector's private section table, if present)."""
    sections = getattr(collector, "_sections", None)
    if not sections:
        return []
    clock = SystemClock()
    out = []
    for name, fn in sections:
        fn(clock.now(), clock.monotonic())
        walls, _ = measure(partial(_call_section, fn, clock), iters)
        out.append((name, median(walls)))
    return out


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return True
        time.sleep(0.05)
    return False


def bench_node_exporter(scrapes: int, runs: int, tmp: str) -> dict[str, float] | None:
    if not os.access(NODE_EXPORTER, os.X_OK):
        print("SKIP node_exporter: not installed (apt-get install prometheus-node-exporter)")
        return None
    version = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True)
    print(f"# {(version.stdout + version.stderr).strip().splitlines()[0]}", flush=True)
    port = free_port()
    log_path = os.path.join(tmp, "node_exporter.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_http(port, proc):
            with open(log_path, errors="replace") as f:
                tail = f.read()[-2000:]
            print(f"SKIP node_exporter: did not answer on 127.0.0.1:{port}\n{tail}", flush=True)
            return None
        p50s, p99s, cpus, lines, sizes = [], [], [], [], []
        for _ in range(runs):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                for _ in range(3):  # warm-up
                    conn.request("GET", "/metrics")
                    conn.getresponse().read()
                walls = []
                body = b""
                c0 = proc_cpu_seconds(proc.pid)
                for _ in range(scrapes):
                    t = time.perf_counter()
                    conn.request("GET", "/metrics")
                    body = conn.getresponse().read()
                    walls.append((time.perf_counter() - t) * 1e3)
                cpus.append((proc_cpu_seconds(proc.pid) - c0) / scrapes * 1e3)
            finally:
                conn.close()
            p50s.append(median(walls))
            p99s.append(pct(walls, 99))
            sizes.append(len(body))
            lines.append(sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#")))
        fields = {
            "p50_ms": median(p50s),
            "p99_ms": median(p99s),
            "exporter_cpu_ms": median(cpus),
            "metric_lines": float(median(lines)),
            "bytes": float(median(sizes)),
        }
        result(
            "node_exporter scrape",
            p50_ms=fields["p50_ms"],
            p99_ms=fields["p99_ms"],
            exporter_cpu_ms=fields["exporter_cpu_ms"],
            metric_lines=int(fields["metric_lines"]),
            bytes=int(fields["bytes"]),
            duty_pct=f"{fields['p50_ms'] / (INTERVAL_S * 1e3) * 100:.4f}",
            runs=runs,
            scrapes=scrapes,
        )
        return fields
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iters", type=int, default=200, help="collect() calls per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scrapes", type=int, default=100, help="node_exporter scrapes per run")
    a = ap.parse_args(argv)

    me = psutil.Process().name()
    parts = psutil.disk_partitions(all=False)
    print(
        f"# psutil {psutil.__version__}, {psutil.cpu_count()} cpus, {len(psutil.pids())} "
        f"processes, {len(parts)} partitions, {len(psutil.net_if_addrs())} nics; "
        f"process check looks for {me!r}",
        flush=True,
    )
    labels = make_labels({"instance": socket.gethostname(), "site": "bench", "role": "server"})
    clock = SystemClock()
    plain = HostCollector(labels=labels, clock=clock)
    checked = HostCollector(labels=labels, processes=[me], clock=clock)
    rows: list[tuple[object, ...]] = []
    for name, collector in (("no_process_checks", plain), ("one_process_check", checked)):
        f = bench_collector(name, collector, a.iters, a.runs)
        rows.append(
            (
                f"alertd collect, {name.replace('_', ' ')}",
                f["p50_us"] / 1e3,
                f["p99_us"] / 1e3,
                f["cpu_p50_us"] / 1e3,
                int(f["samples"]),
                f"{f['duty_pct']:.4f}",
            )
        )
    breakdown = section_breakdown(checked, max(20, a.iters // 4))
    if breakdown:
        print(
            "# per section median µs (one process check): "
            + ", ".join(f"{n} {v:.0f}" for n, v in breakdown),
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="alertd-bench-") as tmp:
        ne = bench_node_exporter(a.scrapes, a.runs, tmp)
    if ne is not None:
        rows.append(
            (
                "node_exporter scrape (exporter CPU)",
                ne["p50_ms"],
                ne["p99_ms"],
                ne["exporter_cpu_ms"],
                int(ne["metric_lines"]),
                f"{ne['p50_ms'] / (INTERVAL_S * 1e3) * 100:.4f}",
            )
        )
    print()
    table(["per 15 s round", "p50 ms", "p99 ms", "CPU ms", "series", "duty %"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
