"""The daemon as a subprocess, for end-to-end tests: start, query, signal, stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

WAIT = 30.0  # seconds: generous, this machine is shared and noisy


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def write_memory_config(
    cfg: Path, major: float, host: str, channels: str, summary: str | None = None
) -> None:
    """A config in ``cfg`` that polls this machine as ``host`` (criticality high) every
    second, with one memory rule whose ``major`` threshold decides whether it fires (0: on
    any machine), and ``channels`` as channels.yaml."""
    (cfg / "collectors").mkdir(parents=True, exist_ok=True)
    rule = (
        "evaluation_interval: 1s\nrules:\n  - metric: host_memory_used_percent\n"
        f"    name: memory\n    above: {{major: {major}}}\n"
    )
    if summary is not None:
        rule += f"    summary: {summary}\n"
    (cfg / "thresholds.yaml").write_text(rule)
    (cfg / "collectors" / "local.yaml").write_text(
        f"hosts:\n  - instance: {host}\n    interval: 1s\n"
        "    labels: {site: lab, criticality: high}\n"
    )
    (cfg / "channels.yaml").write_text(channels)


def run_command(cfg: Path, state: Path, port: int, python_flags: tuple[str, ...] = ()) -> list[str]:
    """``alertd run`` on ``cfg`` and ``state``, listening on 127.0.0.1:``port``."""
    return [
        sys.executable,
        *python_flags,
        "-m",
        "alertd",
        "run",
        "--config-dir",
        str(cfg),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{port}",
    ]


class Daemon:
    def __init__(
        self,
        cfg: Path,
        state: Path,
        log_path: Path,
        port: int | None = None,
        *,
        cwd: Path | None = None,
        python_flags: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port() if port is None else port
        self.state = state
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            run_command(cfg, state, self.port, python_flags),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def post(self, path: str) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def metric(self, line_prefix: str) -> float | None:
        _, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.split()[-1])
        return None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "alertd", "incidents", "--state-dir", str(self.state), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(cfg: Path) -> Daemon:
        d = Daemon(cfg, tmp_path / "state", tmp_path / f"daemon{len(started)}.log")
        started.append(d)
        wait_for(
            "the daemon to be ready",
            lambda: d.get("/-/ready")[0] == 200 or d.proc.poll() is not None,
        )
        assert d.proc.poll() is None, d.log()
        return d

    yield start
    for d in started:
        d.stop()
