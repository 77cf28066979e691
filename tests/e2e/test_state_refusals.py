"""End to end: the daemon when what it stands on refuses it: the state database, its port.

* Another program holds the database locked past the busy timeout while a threshold is
  crossed: the evaluation's write fails, and the incident must still open once the lock is
  gone (the evaluator reports a change once; the daemon keeps it for the next try).
* A database this process may not write: the daemon refuses to start, saying so, instead of
  starting healthy and answering every alert with a 503.
* Its listening port taken: one line saying so, exit 1, no traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alertd.state.db import connect
from tests.conftest import free_port
from tests.e2e.conftest import Daemon, run_command, wait_for, write_memory_config

pytestmark = pytest.mark.e2e

LOG_ONLY = "channels:\n  log: {type: log}\nroutes:\n  - notify: [log]\n"


def write_config(cfg: Path, major: float) -> None:
    write_memory_config(cfg, major, "locked-host", LOG_ONLY)


def test_a_threshold_crossed_while_the_database_is_locked_opens_its_incident_afterwards(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, major=1000)  # no machine crosses it
    d = daemon_factory(cfg)
    wait_for("an evaluation", lambda: (d.metric("alertd_rule_evaluations_total") or 0) >= 2)

    locker = sqlite3.connect(d.state / "alertd.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # as `sqlite3` at a shell prompt would
    try:
        write_config(cfg, major=0)  # every machine crosses it
        d.proc.send_signal(signal.SIGHUP)
        # the cycle's write waits out the busy timeout (2 s), then fails
        wait_for("a refused write", lambda: "evaluation cycle failed" in d.log(), timeout=40)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    wait_for("the incident", lambda: "memory" in d.cli("list"), timeout=30)
    listed = [line for line in d.cli("list").splitlines() if "memory" in line]
    assert len(listed) == 1, listed
    assert "could not store" in d.log()
    assert "evaluation cycle failed: the state database refused: database is locked" in d.log()
    assert "Traceback" not in d.log()  # a refusal is one line, not a stack
    assert (d.metric('alertd_errors_total{where="evaluation"}') or 0) >= 1
    assert d.metric('alertd_errors_total{where="ingest"}') == 0
    assert "kept from failed tries applied" in d.log()


def test_a_database_the_daemon_may_not_write_stops_it_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, major=1000)
    state = tmp_path / "state"
    connect(state).close()  # create and migrate the database, as a first start would
    (state / "alertd.sqlite3").chmod(0o444)
    command = run_command(cfg, state, free_port())
    if os.geteuid() == 0:  # root writes any file: drop the capability that lets it
        command = [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            *command,
        ]
    started = time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot write" in out.stderr, out.stderr
    assert "check their owner and mode" in out.stderr
    assert str(state / "alertd.sqlite3") in out.stderr
    assert time.monotonic() - started < 30  # at once, not after taking alerts for a while


def test_a_taken_port_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, major=1000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            run_command(cfg, tmp_path / "state", port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
    assert "delivery worker started" not in out.stderr  # nothing half started


def test_a_second_daemon_on_the_same_state_directory_is_refused_naming_the_first(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    # two would each evaluate, escalate and page: duplicates, the one thing alertd must not do
    cfg = tmp_path / "cfg"
    write_config(cfg, major=1000)
    first = daemon_factory(cfg)
    out = subprocess.run(
        run_command(cfg, first.state, free_port()), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1, out.stderr
    assert f"another alertd (pid {first.proc.pid}) runs on the state directory" in out.stderr
    assert "delivery worker started" not in out.stderr
    assert first.get("/-/ready")[0] == 200  # the first goes on as it was
    first.stop()
    daemon_factory(cfg)  # once the first is gone, so is its lock: this one starts
