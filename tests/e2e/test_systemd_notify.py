"""End to end: the daemon speaks sd_notify to a real AF_UNIX socket, as under systemd.

READY=1 (with a STATUS= line) once config is loaded and jobs are armed; RELOADING=1 then
READY=1 around a SIGHUP reload; WATCHDOG=1 pings when WATCHDOG_USEC asks for them;
STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import run_command, wait_for

pytestmark = pytest.mark.e2e


def test_ready_reloading_watchdog_and_stopping(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text("channels:\n  log: {type: log}\n")
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[str] = []

    def drain() -> None:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                return

    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    port = free_port()
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen(
            run_command(cfg, tmp_path / "state", port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:

            def seen(prefix: str) -> bool:
                drain()
                return any(m.startswith(prefix) for m in got)

            wait_for("READY=1", lambda: seen("READY=1"))
            ready = next(m for m in got if m.startswith("READY=1"))
            assert "STATUS=open incidents: P1=0 P2=0 P3=0 P4=0" in ready
            wait_for("a watchdog ping", lambda: seen("WATCHDOG=1"))
            proc.send_signal(signal.SIGHUP)
            wait_for("RELOADING=1", lambda: seen("RELOADING=1"))
            reloading = next(i for i, m in enumerate(got) if m.startswith("RELOADING=1"))
            assert "MONOTONIC_USEC=" in got[reloading]
            wait_for(
                "READY=1 after the reload",
                lambda: (
                    seen("READY=1") and any(m.startswith("READY=1") for m in got[reloading + 1 :])
                ),
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            time.sleep(0.1)
            drain()
            assert any(m.startswith("STOPPING=1") for m in got)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()
