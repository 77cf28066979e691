"""Small helpers shared by the bench scripts: percentiles, RESULT lines, tables, ports,
/proc readings and child servers stopped by PID."""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def pct(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (nearest rank) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def result(name: str, **fields: object) -> None:
    """Print one machine-readable ``RESULT name key=value ...`` line."""
    parts = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    print(f"RESULT {name} {parts}", flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain aligned table."""
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(flush=True)


def alertd_run_args(config: Path, state: Path, port: int, *extra: str) -> list[str]:
    """``run`` and its options (after ``python -m alertd``) for a daemon on ``config`` and
    ``state`` listening on 127.0.0.1:``port``: one spelling for every benchmark."""
    where = ["--config-dir", str(config), "--state-dir", str(state)]
    return ["run", *where, "--listen", f"127.0.0.1:{port}", *extra]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """Return utime + stime of ``pid`` in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (alertd's delivery worker is a child)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds of ``pid`` and its live descendants."""
    total = 0.0
    for each in proc_tree(pid):
        try:
            total += proc_cpu_seconds(each)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def proc_rss_kib(pid: int) -> int | None:
    """Return VmRSS of ``pid`` in KiB from /proc/PID/status (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def proc_hwm_kib(pid: int) -> int | None:
    """Return VmHWM (peak RSS) of ``pid`` in KiB from /proc/PID/status (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def http_status(port: int, path: str, timeout: float = 2.0) -> int:
    """Return the status of ``GET http://127.0.0.1:port/path`` (0 if nothing answered)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return int(resp.status)
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


class Child:
    """A server started by a benchmark: its own session, output to a log file, stopped by
    its PID (SIGTERM, then SIGKILL after ``timeout``), never by name."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pid = self.proc.pid

    def wait_http(self, port: int, path: str, timeout: float = 60.0) -> float:
        """Wait until ``GET path`` answers 200; return the seconds it took. Raise
        ``RuntimeError`` (with the log's tail) if the child exits or the time runs out."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            if http_status(port, path) == 200:
                return time.monotonic() - start
            time.sleep(0.02)
        raise RuntimeError(f"{self.argv[0]}: {path} not 200 within {timeout:g}s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU seconds of the server, its child processes included (while they live)."""
        return tree_cpu_seconds(self.pid)

    def hwm_kib(self) -> int | None:
        """Peak RSS: the sum of each of the server's processes' own peaks."""
        peaks = [proc_hwm_kib(each) for each in proc_tree(self.pid)]
        known = [p for p in peaks if p is not None]
        return sum(known) if known else None

    def rss_kib(self) -> int | None:
        return proc_rss_kib(self.pid)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the child and wait; SIGKILL it after ``timeout``. Return its exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


@dataclass
class StdioPeer:
    """A bench's server run as ``python SCRIPT --serve PORT`` in its own process (so its CPU is
    not the bench's), driven over its stdin: ``stats`` answers one line of two counts,
    ``quit`` stops it. It prints ``ready`` once it listens."""

    proc: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls, script: str, what: str) -> StdioPeer:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, script, "--serve", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise SystemExit(f"{Path(script).stem}: the {what} did not start")
        return cls(proc, port)

    def stats(self) -> tuple[int, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        first, second = self.proc.stdout.readline().split()
        return int(first), int(second)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
