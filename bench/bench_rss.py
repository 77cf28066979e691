#!/usr/bin/env python3
"""Memory and CPU of the running daemon over time.

Starts ``.venv/bin/python -m alertd run --config-dir <dir> --state-dir <tmp>
--listen 127.0.0.1:<free port>`` as a subprocess, waits for ``/-/ready``, samples its RSS
(VmRSS from /proc/PID/status) every ``--every`` seconds for ``--minutes``, then sends SIGTERM
and checks it exits 0 within 20 s. Prints start RSS, RSS at 1 min, final and peak RSS, the
daemon's own CPU seconds over the run (utime + stime from /proc/PID/stat) and a few of its
own metrics (evaluations, series, samples) scraped from ``/metrics`` just before stopping.

The email channel is left unconfigured (ALERTD_SMTP_HOST is removed from the daemon's
environment) so a notification during the run goes to the log channel, never to a real server.

Usage: .venv/bin/python bench/bench_rss.py [--minutes 10] [--config-dir REPO_ROOT]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import alertd_run_args, free_port, proc_cpu_seconds, proc_rss_kib, result, table

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0
WATCHED = (
    "alertd_rule_evaluations_total",
    "alertd_series",
    "alertd_samples_collected_total",
    "alertd_collection_errors_total",
    "alertd_rule_evaluation_duration_seconds_sum",
)


def python_bin() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> float | None:
    """Return seconds until ``/-/ready`` answered 200, or None if it died or timed out."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if proc.poll() is not None:
            return None
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(port, "/-/ready", timeout=2)
            if status == 200:
                return time.monotonic() - start
        time.sleep(0.1)
    return None


def own_metrics(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with contextlib.suppress(OSError, http.client.HTTPException):
        status, body = http_get(port, "/metrics")
        if status != 200:
            return out
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in WATCHED:
                with contextlib.suppress(ValueError):
                    out[base] = out.get(base, 0.0) + float(value)
    return out


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM the daemon; return (exit code or None if it had to be killed, seconds taken)."""
    t = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        code = None
    return code, time.monotonic() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument(
        "--config-dir", type=Path, default=REPO, help=f"config directory (default: {REPO})"
    )
    a = ap.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if k != "ALERTD_SMTP_HOST"}
    port = free_port()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="alertd-bench-rss-") as tmp:
        state_dir = Path(tmp) / "state"
        log_path = Path(tmp) / "daemon.log"
        run = alertd_run_args(a.config_dir.resolve(), state_dir, port)
        cmd = [python_bin(), "-m", "alertd", *run]
        print(f"# {' '.join(cmd)}", flush=True)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        code: int | None = None
        stop_s = 0.0
        samples: list[tuple[float, int]] = []  # (seconds since start, RSS KiB)
        cpu_s = cpu_ready = 0.0
        metrics: dict[str, float] = {}
        try:
            ready_s = wait_ready(port, proc)
            if ready_s is None:
                print(f"FAIL daemon did not become ready; log tail:\n{tail(log_path)}")
                return 1
            cpu_ready = proc_cpu_seconds(proc.pid)
            print(
                f"# ready after {ready_s:.2f} s (pid {proc.pid}, {cpu_ready:.2f} CPU s to start)",
                flush=True,
            )
            duration = a.minutes * 60
            t0 = time.monotonic()
            while True:
                rss = proc_rss_kib(proc.pid)
                if rss is None or proc.poll() is not None:
                    failures.append("daemon exited during the run")
                    break
                cpu_s = proc_cpu_seconds(proc.pid)
                elapsed = time.monotonic() - t0
                samples.append((elapsed, rss))
                if elapsed >= duration:
                    break
                time.sleep(min(a.every, max(0.0, duration - elapsed)))
            metrics = own_metrics(port)
        finally:
            code, stop_s = stop(proc)
        if failures:
            print(f"log tail:\n{tail(log_path)}")
        if code != 0:
            what = "was killed after" if code is None else f"exited {code} after"
            failures.append(f"SIGTERM: daemon {what} {stop_s:.1f} s")
            print(f"log tail:\n{tail(log_path)}")
        errors = sum(
            1 for ln in log_path.read_text(errors="replace").splitlines() if " ERROR " in ln
        )

    if not samples:
        print("FAIL no RSS samples")
        return 1
    start_kib = samples[0][1]
    at_1min = next((rss for t, rss in samples if t >= 60), samples[-1][1])
    final_kib = samples[-1][1]
    peak_kib = max(rss for _, rss in samples)
    elapsed = samples[-1][0]
    print()
    table(
        ["t s", "RSS MiB"],
        [(f"{t:.0f}", rss / 1024) for t, rss in samples],
    )
    table(
        ["daemon", "value"],
        [
            ("start RSS MiB", start_kib / 1024),
            ("RSS at 1 min MiB", at_1min / 1024),
            ("final RSS MiB", final_kib / 1024),
            ("peak RSS MiB", peak_kib / 1024),
            ("CPU s to start (until ready)", cpu_ready),
            ("CPU s over the run (after ready)", cpu_s - cpu_ready),
            (
                "CPU % of one core over the run",
                (cpu_s - cpu_ready) / elapsed * 100 if elapsed else 0.0,
            ),
            ("wall s observed", elapsed),
            ("SIGTERM exit", "killed" if code is None else code),
            ("SIGTERM took s", stop_s),
            *((k.removeprefix("alertd_"), v) for k, v in sorted(metrics.items())),
        ],
    )
    result(
        "daemon_rss",
        minutes=elapsed / 60,
        start_mib=start_kib / 1024,
        at_1min_mib=at_1min / 1024,
        final_mib=final_kib / 1024,
        peak_mib=peak_kib / 1024,
        growth_after_1min_mib=(final_kib - at_1min) / 1024,
        samples=len(samples),
    )
    result(
        "daemon_cpu",
        run_cpu_s=cpu_s - cpu_ready,
        startup_cpu_s=cpu_ready,
        cpu_pct=(cpu_s - cpu_ready) / elapsed * 100 if elapsed else 0.0,
        evaluations=int(metrics.get("alertd_rule_evaluations_total", 0)),
        series=int(metrics.get("alertd_series", 0)),
        samples_collected=int(metrics.get("alertd_samples_collected_total", 0)),
        log_errors=errors,
    )
    result(
        "daemon_sigterm",
        exit_code="killed" if code is None else code,
        seconds=stop_s,
        ok="yes" if code == 0 else "no",
    )
    for failure in failures:
        print(f"!! {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
