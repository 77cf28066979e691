"""End to end: the delivery worker process beside the daemon.

The daemon (``alertd run``) commits intents; its child ``alertd.notify.worker`` sends them.
A worker that dies is started again and delivers what waited; a SIGKILLed daemon's worker
sees its stdin close and exits (no sender is left behind); a reload reaches the worker; the
worker's counters show on the daemon's /metrics.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.crash_harness import Receiver, descendants, write_config
from tests.e2e.conftest import Daemon, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(seed=1, max_delay=0.0)
    r.start()
    yield r
    r.stop()


def worker_pid(d: Daemon) -> int:
    """The daemon's one child process: the delivery worker."""
    found: list[int] = []

    def started() -> bool:  # forked and exec'ed
        found[:] = [p for p in descendants(d.proc.pid) if b"alertd.notify.worker" in cmdline(p)]
        return len(found) == 1

    wait_for("the delivery worker", started)
    return found[0]


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def post_alert(d: Daemon, instance: str) -> None:
    body = json.dumps([{"labels": {"alertname": "WorkerTest", "instance": instance}}]).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{d.port}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def sends(d: Daemon) -> float:
    return d.metric('alertd_notifications_sent_total{channel="hook"}') or 0.0


def arrived(r: Receiver, instance: str) -> Callable[[], bool]:
    return lambda: instance in r.instances


def test_a_dead_worker_is_replaced_and_delivers_what_waited(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    write_config(tmp_path / "cfg", receiver.url)
    d = daemon_factory(tmp_path / "cfg")
    first = worker_pid(d)
    post_alert(d, "before")
    wait_for("the first alert's webhook", arrived(receiver, "before"))
    wait_for("the worker's report of it", lambda: sends(d) == 1)

    assert d.metric("alertd_delivery_worker_up") == 1
    os.kill(first, signal.SIGKILL)
    wait_for("the daemon to notice", lambda: "exited unexpectedly" in d.log())
    post_alert(d, "while-down")  # committed while no worker runs, or just as one starts
    second = worker_pid(d)
    assert second != first
    wait_for("the waiting alert's webhook", arrived(receiver, "while-down"))
    assert d.proc.poll() is None
    # the daemon's own metrics add up what each worker reported
    wait_for("both sends counted", lambda: sends(d) == 2)
    assert d.metric("alertd_delivery_worker_restarts_total") == 1
    assert d.metric("alertd_delivery_worker_up") == 1
    # both processes wrote the state, each in its turns with the writer lock (claims and
    # outcomes: at least two turns of the workers together)
    assert (d.metric('alertd_state_write_turns_total{process="daemon"}') or 0) >= 2
    assert (d.metric('alertd_state_write_turns_total{process="delivery"}') or 0) >= 2
    assert (d.metric('alertd_state_write_lock_held_seconds_total{process="delivery"}') or 0) > 0


def test_a_stuck_worker_shows_on_metrics_as_an_unsent_backlog_that_ages(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    # a hung worker is alive to the daemon: what an operator can alert on is the page
    # that reaches nobody, read from the outbox at each scrape
    write_config(tmp_path / "cfg", receiver.url)
    d = daemon_factory(tmp_path / "cfg")
    assert d.metric("alertd_outbox_backlog") == 0
    assert d.metric("alertd_outbox_oldest_unsent_seconds") == 0
    worker = worker_pid(d)
    os.kill(worker, signal.SIGSTOP)
    try:
        post_alert(d, "stuck")
        wait_for("a backlog", lambda: d.metric("alertd_outbox_backlog") == 1)
        wait_for(
            "an ageing page", lambda: (d.metric("alertd_outbox_oldest_unsent_seconds") or 0) > 1
        )
        assert not receiver.instances
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_for("the page", arrived(receiver, "stuck"))
    wait_for("the backlog to clear", lambda: d.metric("alertd_outbox_backlog") == 0)
    assert d.metric("alertd_outbox_oldest_unsent_seconds") == 0


def test_the_worker_runs_the_daemons_alertd_not_one_in_its_working_directory(
    tmp_path: Path, receiver: Receiver
) -> None:
    # user-test finding: "python -m" put the working directory first on the worker's path,
    # so an old alertd checkout there ran as the worker (and crash-looped on a newer schema)
    elsewhere = tmp_path / "old-checkout"
    (elsewhere / "alertd").mkdir(parents=True)
    (elsewhere / "alertd" / "__init__.py").write_text("raise SystemExit('the wrong alertd')\n")
    write_config(tmp_path / "cfg", receiver.url)
    # -P: the daemon itself is started as its console script would be, without the cwd
    d = Daemon(
        tmp_path / "cfg",
        tmp_path / "state",
        tmp_path / "daemon.log",
        cwd=elsewhere,
        python_flags=("-P",),
    )
    try:
        wait_for("the daemon to be ready", lambda: d.get("/-/ready")[0] == 200)
        post_alert(d, "from-elsewhere")
        wait_for("its webhook", arrived(receiver, "from-elsewhere"))
        assert "the wrong alertd" not in d.log()
        assert d.metric("alertd_delivery_worker_restarts_total") == 0
    finally:
        d.stop()


def test_a_killed_daemons_worker_exits_too(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    write_config(tmp_path / "cfg", receiver.url)
    d = daemon_factory(tmp_path / "cfg")
    worker = worker_pid(d)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    wait_for("the orphaned worker to exit", lambda: not alive(worker), timeout=20)


def test_a_stopped_daemon_stops_its_worker_cleanly(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    write_config(tmp_path / "cfg", receiver.url)
    d = daemon_factory(tmp_path / "cfg")
    worker = worker_pid(d)
    assert d.stop() == 0
    assert not alive(worker)
    assert "delivery worker stopped (exit 0)" in d.log()


def test_a_reload_reaches_the_worker(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    other = Receiver(seed=2, max_delay=0.0)
    other.start()
    try:
        write_config(tmp_path / "cfg", receiver.url)
        d = daemon_factory(tmp_path / "cfg")
        worker = worker_pid(d)
        write_config(tmp_path / "cfg", other.url)
        assert d.post("/-/reload") == 200
        wait_for("the worker to reload", lambda: "delivery worker: config reloaded" in d.log())
        post_alert(d, "after-reload")
        wait_for("the webhook at the new url", arrived(other, "after-reload"))
        assert "after-reload" not in receiver.instances
        assert worker_pid(d) == worker  # reloaded in place, not restarted
    finally:
        other.stop()


def test_a_signal_to_the_whole_group_is_a_clean_stop_not_a_crash(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    write_config(tmp_path / "cfg", receiver.url)
    d = daemon_factory(tmp_path / "cfg")
    worker = worker_pid(d)
    for pid in (worker, d.proc.pid):  # as systemd and Ctrl-C do: everyone at once
        os.kill(pid, signal.SIGTERM)
    assert d.proc.wait(30) == 0
    assert not alive(worker)
    assert "unexpectedly" not in d.log()
    assert "delivery worker stopped" in d.log()


def test_a_restarted_worker_uses_the_accepted_config_not_a_rejected_file(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, receiver.url)
    d = daemon_factory(cfg)
    first = worker_pid(d)
    (cfg / "channels.yaml").write_text("channels:\n  hook: {type: webhook, url: nope}\n")
    assert d.post("/-/reload") != 200  # rejected: the daemon keeps the last good config
    os.kill(first, signal.SIGKILL)
    wait_for("the daemon to notice", lambda: "exited unexpectedly" in d.log())
    second = worker_pid(d)  # (right after the kill, the dying one may still be listed)
    assert second != first
    post_alert(d, "after-restart")
    wait_for("the webhook from the restarted worker", arrived(receiver, "after-restart"))
    assert d.metric("alertd_delivery_worker_up") == 1


def team_config(config_dir: Path, channel: str, url: str) -> None:
    """One webhook channel, the only channel of team ``ops``, which every incident pages."""
    (config_dir / "channels.yaml").write_text(
        f"channels:\n  {channel}:\n    type: webhook\n    url: {url}\n"
        f"teams:\n  ops:\n    channels: [{channel}]\n"
        "routes:\n  - notify: [ops]\n"
        "delivery:\n  backoff: 1s\n"
    )


def test_a_page_waiting_on_a_channel_that_a_reload_replaces_goes_out_on_the_new_one(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, receiver.url)
    team_config(cfg, "hook-old", f"http://127.0.0.1:{closed_port()}/hook")
    d = daemon_factory(cfg)
    post_alert(d, "renamed")
    wait_for("the old channel to fail once", lambda: "via hook-old failed" in d.log())
    team_config(cfg, "hook-new", receiver.url)  # the team's webhook, renamed and fixed
    assert d.post("/-/reload") == 200
    wait_for("the page on the new channel", arrived(receiver, "renamed"))

    def timeline() -> list[str]:
        _, body = d.get("/api/v1/incidents/1")
        return [t["detail"] for t in json.loads(body)["timeline"]]

    # the outcome is recorded a moment after the receiver has the page
    wait_for(
        "the send on the timeline",
        lambda: any(
            line.startswith("opened via hook-new") and "sent" in line for line in timeline()
        ),
    )
    lines = timeline()
    assert any("channel hook-old is no longer configured" in line for line in lines), lines
    assert any("failing over to hook-new" in line for line in lines), lines


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
