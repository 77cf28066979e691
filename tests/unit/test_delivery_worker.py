"""The delivery worker's plumbing: counter reports folded into the daemon's metrics, the
writers' turn-taking lock on the state database, and one worker per state directory."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alertd.config.channels import ChannelsFile
from alertd.config.server import ServerFile
from alertd.metrics import Metrics
from alertd.notify import worker
from alertd.notify.configure import WorkerConfig
from alertd.notify.worker import counter_snapshot, hold_lock
from alertd.notify.worker_process import DeliveryWorker
from alertd.state import db
from alertd.state.db import WRITER_LOCK_NAME, connect, write_transaction, writers_turn_async


class FakeProc:
    """What ``_read_reports`` reads: a finished worker's stdout."""

    def __init__(self, lines: list[bytes]) -> None:
        self.stdout = asyncio.StreamReader()
        for line in lines:
            self.stdout.feed_data(line)
        self.stdout.feed_eof()


def report(metrics: Metrics) -> bytes:
    return (json.dumps({"counters": counter_snapshot(metrics)}) + "\n").encode()


def sent(metrics: Metrics, channel: str) -> float:
    value = metrics.registry.get_sample_value(
        "alertd_notifications_sent_total", {"channel": channel}
    )
    return value or 0.0


def test_reports_add_up_across_workers_and_skip_garbage(tmp_path: Path) -> None:
    daemon = Metrics(CollectorRegistry())
    config = WorkerConfig(ChannelsFile(), ServerFile())
    handle = DeliveryWorker(config, tmp_path, None, daemon, lambda n, r, w: [])  # type: ignore[arg-type]
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.notifications_sent.labels("mail").inc(2)
    early = report(first)
    first.notifications_sent.labels("mail").inc(3)
    first.notification_attempts.labels("mail", "ambiguous").inc()
    late = report(first)
    second.notifications_sent.labels("mail").inc(1)  # a new worker counts from 0 again

    async def fold() -> None:
        await handle._read_reports(FakeProc([early, b"not json\n", late, late]))  # type: ignore[arg-type]
        await handle._read_reports(FakeProc([report(second)]))  # type: ignore[arg-type]

    asyncio.run(fold())
    assert sent(daemon, "mail") == 6.0  # 5 from the first worker (not 2 + 5 + 5), 1 more
    attempts = daemon.registry.get_sample_value(
        "alertd_notification_attempts_total", {"channel": "mail", "outcome": "ambiguous"}
    )
    assert attempts == 1.0


def test_a_report_names_only_delivery_counters() -> None:
    m = Metrics(CollectorRegistry())
    m.notifications_sent.labels("sms").inc()
    m.rule_evaluations.inc()
    names = {attr for attr, _, _ in counter_snapshot(m)}
    assert names == {"notifications_sent"}
    assert ("notifications_sent", {"channel": "sms"}, 1.0) in counter_snapshot(m)


def test_writers_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    other = os.open(tmp_path / WRITER_LOCK_NAME, os.O_RDWR)
    try:
        # another writer would wait here
        with write_transaction(conn), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once committed
        fcntl.flock(other, fcntl.LOCK_UN)
        with pytest.raises(RuntimeError), write_transaction(conn):
            raise RuntimeError("rolled back")
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and once rolled back
    finally:
        os.close(other)
        conn.close()


def turns_of(metrics: Metrics, process: str) -> tuple[float, float, float]:
    """(seconds waited, seconds held, turns) as exported for ``process``."""
    labels = {"process": process}
    get = metrics.registry.get_sample_value
    return (
        get("alertd_state_write_lock_wait_seconds_total", labels) or 0.0,
        get("alertd_state_write_lock_held_seconds_total", labels) or 0.0,
        get("alertd_state_write_turns_total", labels) or 0.0,
    )


def daemon_writing(tmp_path: Path) -> tuple[Metrics, sqlite3.Connection]:
    """The daemon's connection, its turns counted, with a table to write to."""
    metrics = Metrics(CollectorRegistry())
    conn = connect(tmp_path)
    db.observe_write_turns(conn, metrics.write_turns_of("daemon"))
    conn.execute("CREATE TABLE scratch (x INTEGER)")
    return metrics, conn


def test_each_turn_with_the_writer_lock_is_counted_with_its_wait_and_hold(
    tmp_path: Path,
) -> None:
    metrics, conn = daemon_writing(tmp_path)
    other = os.open(tmp_path / WRITER_LOCK_NAME, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # another process is writing
    released_at: list[float] = []

    def other_commits() -> None:
        time.sleep(0.1)
        released_at.append(time.monotonic())
        fcntl.flock(other, fcntl.LOCK_UN)

    try:
        threading.Thread(target=other_commits).start()
        start = time.monotonic()
        with db.writers_turn(conn):  # one turn, two transactions
            for _ in range(2):
                with write_transaction(conn):
                    conn.execute("INSERT INTO scratch VALUES (1)")
            time.sleep(0.05)
        waited, held, turns = turns_of(metrics, "daemon")
        assert turns == 1
        assert waited >= released_at[0] - start  # it could not write before the other let go
        assert held >= 0.05
        with write_transaction(conn):  # the lock is free now: a turn of its own, no wait
            conn.execute("INSERT INTO scratch VALUES (2)")
        assert turns_of(metrics, "daemon")[2] == 2
        assert turns_of(metrics, "delivery") == (0.0, 0.0, 0.0)
    finally:
        os.close(other)
        conn.close()


def test_a_lock_held_by_a_program_outside_alertd_counts_as_waiting_not_holding(
    tmp_path: Path,
) -> None:
    # `sqlite3` at a prompt holding BEGIN EXCLUSIVE takes no turn: the write waits in
    # SQLite's busy handler, and that used to be counted as the daemon holding the lock
    metrics, conn = daemon_writing(tmp_path)
    outsider = sqlite3.connect(tmp_path / db.DB_NAME, isolation_level=None, check_same_thread=False)
    outsider.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(0.3, lambda: outsider.execute("ROLLBACK"))
    try:
        timer.start()
        with write_transaction(conn):
            conn.execute("INSERT INTO scratch VALUES (1)")
        waited, held, turns = turns_of(metrics, "daemon")
        assert turns == 1
        assert waited >= 0.25
        assert held < 0.2  # one INSERT and a COMMIT
    finally:
        timer.join()
        outsider.close()
        conn.close()


def test_the_workers_turns_reach_the_daemons_metrics(tmp_path: Path) -> None:
    daemon = Metrics(CollectorRegistry())
    config = WorkerConfig(ChannelsFile(), ServerFile())
    handle = DeliveryWorker(config, tmp_path, None, daemon, lambda n, r, w: [])  # type: ignore[arg-type]
    worker_metrics = Metrics(CollectorRegistry())
    worker_metrics.write_turns_of("delivery")(0.25, 0.5)

    async def fold() -> None:
        await handle._read_reports(FakeProc([report(worker_metrics)]))  # type: ignore[arg-type]

    asyncio.run(fold())
    assert turns_of(daemon, "delivery") == (0.25, 0.5, 1.0)


def test_waits_for_the_lock_reuse_their_thread(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    other = os.open(tmp_path / WRITER_LOCK_NAME, os.O_RDWR)
    seen: list[threading.Thread] = []  # the waiting threads (kept, so none is a new object)

    def look_then_release() -> None:
        seen.extend(t for t in threading.enumerate() if t.name == "alertd-writer-lock")
        fcntl.flock(other, fcntl.LOCK_UN)

    kept = sum(t.name == "alertd-writer-lock" for t in threading.enumerate())
    try:
        for i in range(5):  # each time the other writer holds the lock, so this one waits
            fcntl.flock(other, fcntl.LOCK_EX)
            released = threading.Timer(0.05, look_then_release)
            released.start()
            with write_transaction(conn):
                conn.execute("INSERT INTO hook_replays (token, ts) VALUES (?, 0)", (str(i),))
            released.join()
        assert conn.execute("SELECT COUNT(*) FROM hook_replays").fetchone()[0] == 5
        assert len(seen) >= 5  # a thread waited each time ...
        assert len(set(seen)) <= kept + 1  # ... one kept from before, or one new for all
    finally:
        os.close(other)
        conn.close()


def test_one_worker_per_state_directory(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(worker, "LOCK_WAIT", 0.2)

    async def both() -> tuple[bool, bool]:
        first = await hold_lock(tmp_path)
        second = await hold_lock(tmp_path)  # waits, then gives up: the first holds it
        assert first is not None
        first.close()
        third = await hold_lock(tmp_path)
        ok = third is not None
        if third is not None:
            third.close()
        return second is None, ok

    assert asyncio.run(both()) == (True, True)


def test_an_async_turn_waits_off_the_loop_and_holds_across_transactions(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    conn.execute("CREATE TABLE scratch (x INTEGER)")
    other = os.open(tmp_path / WRITER_LOCK_NAME, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # another process is writing

    def other_can_lock() -> bool:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True

    async def scenario() -> tuple[int, list[bool]]:
        ticks = 0
        seen: list[bool] = []

        async def turn() -> None:
            async with writers_turn_async(conn):
                for _ in range(2):  # two transactions in one turn
                    with write_transaction(conn):
                        conn.execute("INSERT INTO scratch VALUES (1)")
                    seen.append(other_can_lock())  # still ours between them

        task = asyncio.create_task(turn())
        for _ in range(20):  # the loop runs while the turn waits for the other writer
            await asyncio.sleep(0.005)
            ticks += 1
        assert not task.done()
        fcntl.flock(other, fcntl.LOCK_UN)
        await asyncio.wait_for(task, 5)
        return ticks, seen

    try:
        ticks, seen = asyncio.run(scenario())
        assert ticks == 20
        assert seen == [False, False]
        assert other_can_lock()  # and let go after the turn
        assert conn.execute("SELECT COUNT(*) FROM scratch").fetchone()[0] == 2
    finally:
        os.close(other)
        conn.close()


def test_a_writer_waits_for_its_turn_at_most_lock_wait(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(db, "LOCK_WAIT", 0.2)
    conn = connect(tmp_path)
    conn.execute("CREATE TABLE scratch (x INTEGER)")
    other = os.open(tmp_path / WRITER_LOCK_NAME, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # a frozen process holding its turn
    try:
        with write_transaction(conn):  # goes on without the turn (SQLite's lock is free)
            conn.execute("INSERT INTO scratch VALUES (1)")
        assert conn.execute("SELECT COUNT(*) FROM scratch").fetchone()[0] == 1
        fcntl.flock(other, fcntl.LOCK_UN)
        # the wait given up on gets the lock late, and gives it back at once
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.01)
        else:
            raise AssertionError("the late lock was never given back")
    finally:
        os.close(other)
        conn.close()


def test_the_config_line_round_trips_what_the_daemon_accepted() -> None:
    from alertd.config.load import load_config

    config = load_config(Path(__file__).resolve().parents[2])  # the repository's own
    line = WorkerConfig.to_line(config)
    assert line.count(b"\n") == 1  # one line on the pipe
    assert line.endswith(b"\n")
    back = WorkerConfig.from_message(json.loads(line))
    assert back.channels == config.channels
    assert back.server == config.server


RICH_CHANNELS = """\
channels:
  mail: {type: email, host: smtp.example.com, port: 587, starttls: true, username: alertd,
         password: "p@ss word", from: alertd@example.com, connections: 2}
  sms: {type: sms, account_sid: AC0123456789abcdef0123456789abcdef, auth_token: tok-secret,
        from: "+15017122661", max_segments: 2, api_base_url: "http://127.0.0.1:9"}
  wecom: {type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-123456",
          format: markdown}
  ding: {type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=t-123456",
         secret: SECsecret123}
  feishu: {type: feishu, url: "https://open.feishu.cn/open-apis/bot/v2/hook/h-123456",
           secret: fs-secret-1}
  slack: {type: slack, url: "https://hooks.slack.com/services/T0/B0/XXXXXXXX"}
  teams: {type: teams, url: "https://example.com/workflows/abc"}
  hook:
    type: webhook
    url: "https://user:pw@example.com/hook"
    secret: hmac-secret-1
    headers: {X-Env: prod}
    template: {short: "[{{ priority }}] {{ summary }} (#{{ id }})"}
  log: {type: log, level: warning}
teams:
  oncall:
    members: [{name: Wang, email: wang@example.com, phone: "+8613800000000"}]
    channels: [mail, sms]
routes:
  - match: {severity: critical}
    notify: [oncall]
    continue: true
  - notify: [hook]
failover: {sms: mail}
delivery: {max_age: 30m, max_in_flight: 64}
rate_limits:
  mail: {per_minute: 60, per_recipient_per_minute: 10}
"""


def test_every_channel_and_secret_reach_the_worker_as_accepted(tmp_path: Path) -> None:
    from alertd.config.load import load_config

    (tmp_path / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (tmp_path / "channels.yaml").write_text(RICH_CHANNELS)
    (tmp_path / "links.key").write_text("link-secret-0123456789\n")
    (tmp_path / "server.yaml").write_text(
        "public_url: https://alertd.example.com\nlink_secret_file: links.key\n"
        "tokens:\n  p: {sha256: " + "ab" * 32 + ", scopes: [ingest]}\n"
        "ingest: {resolve_timeout: 5m, max_alerts: 100}\n"
    )
    config = load_config(tmp_path)
    back = WorkerConfig.from_message(json.loads(WorkerConfig.to_line(config)))
    assert back.channels == config.channels  # secrets included: SecretStr compares values
    assert back.server == config.server
    mail = back.channels.channels["mail"]
    assert mail.password is not None  # type: ignore[union-attr]
    assert mail.password.get_secret_value() == "p@ss word"  # type: ignore[union-attr]
    assert back.server.read_link_secret() == config.server.read_link_secret()


def quiet_handle(tmp_path: Path) -> DeliveryWorker:
    config = WorkerConfig(ChannelsFile(), ServerFile())
    metrics = Metrics(CollectorRegistry())
    return DeliveryWorker(config, tmp_path, None, metrics, lambda n, r, w: [])  # type: ignore[arg-type]


class SilentProc:
    """A worker that said it runs, then nothing more, without exiting (stuck)."""

    def __init__(self, lines: list[bytes]) -> None:
        self.pid = 4242
        self.killed = False
        self.stdout = asyncio.StreamReader()
        for line in lines:
            self.stdout.feed_data(line)

    def kill(self) -> None:
        self.killed = True
        self.stdout.feed_eof()


def test_a_running_worker_that_says_nothing_is_killed_as_stuck(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("alertd.notify.worker_process.HUNG_AFTER", 0.2)
    handle = quiet_handle(tmp_path)

    async def read() -> float:
        proc.append(SilentProc([b'{"ready": true}\n']))
        started = time.monotonic()
        await asyncio.wait_for(handle._read_reports(proc[0]), 10.0)  # type: ignore[arg-type]
        return time.monotonic() - started

    proc: list[SilentProc] = []
    assert asyncio.run(read()) >= 0.2
    assert proc[0].killed
    assert handle._killed == "stuck"  # its exit is not reported as unexpected
    assert "has said nothing for 0.2s: it is stuck" in caplog.text


def test_heartbeats_keep_a_quiet_worker_alive_and_a_starting_one_is_given_time(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr("alertd.notify.worker_process.HUNG_AFTER", 0.2)
    handle = quiet_handle(tmp_path)

    async def talk() -> SilentProc:
        proc = SilentProc([])
        reading = asyncio.create_task(handle._read_reports(proc))  # type: ignore[arg-type]
        await asyncio.sleep(0.4)  # not ready yet: silence is not a hang (a lock wait, say)
        proc.stdout.feed_data(b'{"ready": true}\n')
        for _ in range(6):  # 0.6 s past ready, heard every 0.1 s
            await asyncio.sleep(0.1)
            proc.stdout.feed_data(b'{"alive": true}\n')
        proc.stdout.feed_eof()
        await asyncio.wait_for(reading, 5.0)
        return proc

    assert not asyncio.run(talk()).killed


def test_a_worker_with_nothing_to_report_still_says_it_runs(
    tmp_path: Path, monkeypatch: Any
) -> None:
    told: list[dict[str, object]] = []
    monkeypatch.setattr(worker, "tell", told.append)
    monkeypatch.setattr(worker, "REPORT_EVERY", 0.01)
    monkeypatch.setattr(worker, "HEARTBEAT_EVERY", 0.1)

    async def run() -> None:
        config = WorkerConfig(ChannelsFile(), ServerFile())
        w = worker.Worker(tmp_path, config, asyncio.StreamReader())
        w._report(force=True)
        told.clear()
        reporting = asyncio.create_task(w._report_loop())
        await asyncio.sleep(0.35)
        w.metrics.notifications_sent.labels("mail").inc()
        await asyncio.sleep(0.05)
        reporting.cancel()
        await asyncio.gather(reporting, return_exceptions=True)
        w.conn.close()

    asyncio.run(run())
    kinds = [next(iter(m)) for m in told]
    assert kinds.count("alive") in (2, 3, 4), kinds  # every 0.1 s with nothing moving
    assert kinds[-1] == "counters"  # a count that moved goes at once, no heartbeat needed
