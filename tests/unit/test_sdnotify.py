"""sd_notify client: the exact datagrams on a real AF_UNIX socket, watchdog settings, no-ops.

The receiving end is a datagram socket the test binds itself (a path in tmp_path, or an
abstract name). ``sendto`` on AF_UNIX queues the datagram in the receiver before it returns,
so each test reads it back without waiting.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd import sdnotify
from alertd.sdnotify import MAX_STATUS_CHARS, SystemdNotifier


class Receiver:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket  # the $NOTIFY_SOCKET value that reaches it

    def datagrams(self) -> list[bytes]:
        """Everything queued so far, one entry per datagram."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536))
            except BlockingIOError:
                return out


def _receiver(address: str | bytes, notify_socket: str) -> Iterator[Receiver]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.setblocking(False)
        yield Receiver(sock, notify_socket)


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = str(tmp_path / "notify.sock")
    yield from _receiver(path, path)


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"alertd-test-{secrets.token_hex(8)}"
    yield from _receiver(b"\0" + name.encode(), "@" + name)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Receiver:
    fixture = "path_receiver" if request.param == "path" else "abstract_receiver"
    value: Receiver = request.getfixturevalue(fixture)
    return value


def time_monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def notifier_for(receiver: Receiver, **env: str) -> SystemdNotifier:
    return SystemdNotifier({"NOTIFY_SOCKET": receiver.notify_socket, **env})


# -- the messages ------------------------------------------------------------------------------


def test_ready_sends_ready_and_status(receiver: Receiver) -> None:
    notifier = notifier_for(receiver)
    assert notifier.enabled
    assert notifier.ready("3 rules, 2 targets") is True
    assert receiver.datagrams() == [b"READY=1\nSTATUS=3 rules, 2 targets"]


def test_status(receiver: Receiver) -> None:
    assert notifier_for(receiver).status("polling 2 targets") is True
    assert receiver.datagrams() == [b"STATUS=polling 2 targets"]


def test_reloading_carries_clock_monotonic_microseconds(receiver: Receiver) -> None:
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": receiver.notify_socket}, monotonic_ns=lambda: 12_345_678_999
    )
    assert notifier.reloading() is True
    assert receiver.datagrams() == [b"RELOADING=1\nMONOTONIC_USEC=12345678"]


def test_reloading_default_clock_is_clock_monotonic(receiver: Receiver) -> None:
    before = time_monotonic_usec()
    notifier_for(receiver).reloading()
    after = time_monotonic_usec()
    [datagram] = receiver.datagrams()
    first, second = datagram.decode().split("\n")
    key, _, value = second.partition("=")
    assert (first, key) == ("RELOADING=1", "MONOTONIC_USEC")
    assert before <= int(value) <= after


def test_reload_cycle_in_order(receiver: Receiver) -> None:
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": receiver.notify_socket}, monotonic_ns=lambda: 5_000_000
    )
    notifier.ready("started")
    notifier.reloading()
    notifier.ready_again("reload refused: thresholds.yaml:14:7: bad")
    notifier.stopping()
    assert receiver.datagrams() == [
        b"READY=1\nSTATUS=started",
        b"RELOADING=1\nMONOTONIC_USEC=5000",
        b"READY=1\nSTATUS=reload refused: thresholds.yaml:14:7: bad",
        b"STOPPING=1",
    ]


def test_stopping_and_watchdog(receiver: Receiver) -> None:
    notifier = notifier_for(receiver)
    assert notifier.stopping() is True
    assert notifier.watchdog() is True
    assert receiver.datagrams() == [b"STOPPING=1", b"WATCHDOG=1"]


def test_status_with_newlines_cannot_inject_fields(receiver: Receiver) -> None:
    # a config error quoted into the status must not become READY=1 or STOPPING=1
    notifier_for(receiver).status("reload failed:\nSTOPPING=1\r\n  next")
    assert receiver.datagrams() == [b"STATUS=reload failed: STOPPING=1 next"]


def test_long_status_is_cut(receiver: Receiver) -> None:
    notifier_for(receiver).status("x" * 5000)
    [datagram] = receiver.datagrams()
    status = datagram.decode().removeprefix("STATUS=")
    assert len(status) == MAX_STATUS_CHARS
    assert status.endswith("...")


# -- watchdog settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "main"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(
    path_receiver: Receiver, env: dict[str, str], expected: float | None
) -> None:
    assert notifier_for(path_receiver, **env).watchdog_interval() == expected


def test_watchdog_interval_needs_a_socket() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


class StopLoop(Exception):
    pass


async def test_watchdog_loop_pings_every_half_interval_while_alive(
    path_receiver: Receiver,
) -> None:
    notifier = notifier_for(path_receiver, WATCHDOG_USEC="30000000")
    health = iter([True, True, False, True])
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 4:
            raise StopLoop

    with pytest.raises(StopLoop):
        await notifier.watchdog_loop(lambda: next(health), sleep=fake_sleep)
    assert slept == [15.0, 15.0, 15.0, 15.0]
    # round 3 was unhealthy: no ping, but the loop went on and pinged again in round 4
    assert path_receiver.datagrams() == [b"WATCHDOG=1"] * 3


async def test_watchdog_loop_treats_a_raising_check_as_unhealthy(
    path_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = notifier_for(path_receiver, WATCHDOG_USEC="2000000")
    rounds = 0

    def alive() -> bool:
        raise RuntimeError("loop check broke")

    async def fake_sleep(seconds: float) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            raise StopLoop

    with caplog.at_level(logging.WARNING, logger=sdnotify.__name__), pytest.raises(StopLoop):
        await notifier.watchdog_loop(alive, sleep=fake_sleep)
    assert path_receiver.datagrams() == []
    raised = [r for r in caplog.records if r.exc_info is not None]
    assert len(raised) == 1  # logged once for the spell, not every round


async def test_watchdog_loop_returns_when_watchdog_is_off(path_receiver: Receiver) -> None:
    async def fail_sleep(seconds: float) -> None:
        raise AssertionError("slept although the watchdog is off")

    await notifier_for(path_receiver).watchdog_loop(lambda: True, sleep=fail_sleep)
    assert path_receiver.datagrams() == []


# -- not under systemd, or a broken socket: never raise --------------------------------------


def test_no_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("opened a socket without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_socket)
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    results = [
        notifier.ready("up"),
        notifier.status("x"),
        notifier.reloading(),
        notifier.ready_again("up"),
        notifier.stopping(),
        notifier.watchdog(),
    ]
    assert results == [False] * 6
    assert notifier.watchdog_interval() is None


def test_default_environment_is_os_environ(
    monkeypatch: pytest.MonkeyPatch, path_receiver: Receiver
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_receiver.notify_socket)
    assert SystemdNotifier().ready("up") is True
    assert path_receiver.datagrams() == [b"READY=1\nSTATUS=up"]


@pytest.mark.parametrize("value", ["relative/notify.sock", "@", "vsock:2:1234"])
def test_unusable_notify_socket_value_is_a_no_op(value: str) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert notifier.ready("up") is False


def test_missing_socket_path_does_not_raise_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    with caplog.at_level(logging.DEBUG, logger=sdnotify.__name__):
        assert notifier.ready("up") is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    failures = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG


def test_failure_logged_again_after_a_success(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "later.sock"
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    with caplog.at_level(logging.DEBUG, logger=sdnotify.__name__):
        assert notifier.watchdog() is False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert notifier.watchdog() is True
            assert sock.recv(100) == b"WATCHDOG=1"
        path.unlink()
        assert notifier.watchdog() is False
    assert sum("sd_notify" in r.getMessage() for r in caplog.records) == 2


def test_overlong_socket_path_does_not_raise() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/" + "x" * 200})
    assert notifier.status("up") is False
