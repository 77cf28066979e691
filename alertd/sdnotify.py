"""systemd service notifications (sd_notify(3)): readiness, reload, stop and watchdog pings.

Not a pipeline stage: ``app.py`` tells systemd where the daemon is in its lifecycle, which is
what makes ``Type=notify`` and ``WatchdogSec=`` in ``systemd/alertd.service`` work:

* ``ready()`` once config is loaded and polls are armed (systemd then reports the unit started);
* ``reloading()`` on SIGHUP, then ``ready_again()`` when the reload finished (or was refused);
* ``stopping()`` when shutdown begins;
* ``watchdog_loop()`` pings every half ``WatchdogSec=`` from the event loop itself, so a hung
  loop stops pinging and systemd kills and restarts the daemon.

The protocol, without a dependency: one ``KEY=VALUE`` line per field, sent as a single datagram
to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace). Without that variable (not under systemd, or ``Type=simple``) every call is a no-op.
Failures are never raised into the daemon: the first one is logged at debug (again only after a
send has worked in between). ``$NOTIFY_SOCKET`` is left in the environment: alertd starts no
child processes that could inherit it (sd_notify's ``unset_environment`` exists for those).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

# systemd reads notification datagrams into a buffer of a few KiB; a status line is for humans
# (``systemctl status``), so keep it well inside that and on one line.
MAX_STATUS_CHARS = 1000


def _monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _socket_address(value: str | None) -> str | bytes | None:
    """Map ``$NOTIFY_SOCKET`` to a ``sendto`` address: a path, or abstract (leading NUL)."""
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None  # e.g. systemd 253's "vsock:CID:PORT", which alertd does not speak


def _one_line(text: str) -> str:
    """Keep a status on one line: a newline would start a new field (``READY=1``...)."""
    flat = " ".join(text.split())
    if len(flat) > MAX_STATUS_CHARS:
        flat = flat[: MAX_STATUS_CHARS - 3] + "..."
    return flat


class SystemdNotifier:
    """Send sd_notify messages to the service manager named by ``$NOTIFY_SOCKET``.

    ``environ`` defaults to ``os.environ`` and is read once, here. Every method returns True
    when the datagram was handed to the socket and False otherwise (no socket configured, or
    the send failed); none of them raises.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        monotonic_ns: Callable[[], int] = _monotonic_ns,
    ) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        self._address = _socket_address(raw)
        if raw and self._address is None:
            log.debug("NOTIFY_SOCKET=%r is not a path or @abstract name; not notifying", raw)
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._monotonic_ns = monotonic_ns
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when a notification socket is configured (the daemon runs under systemd)."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` ("KEY=VALUE" each) as one datagram; False if not sent.

        The socket is non-blocking: if the service manager's queue is full the message is
        dropped rather than stalling the event loop that called us.
        """
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message, self._address)
        except (OSError, ValueError) as exc:
            if not self._failing:
                log.debug("sd_notify to %s failed: %s", self._address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str) -> bool:
        """Tell systemd start-up finished (``READY=1``) with a one-line status."""
        return self.notify("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """Set the free-form status line shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def reloading(self) -> bool:
        """Tell systemd a reload began: ``RELOADING=1`` with the CLOCK_MONOTONIC time in µs.

        systemd 253+ (``Type=notify-reload``) wants ``MONOTONIC_USEC=`` with ``RELOADING=1``
        to tell this reload from an earlier one; older versions ignore the extra field.
        """
        usec = self._monotonic_ns() // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def ready_again(self, status: str) -> bool:
        """Tell systemd a reload finished, whether the new config was taken or refused."""
        return self.ready(status)

    def stopping(self) -> bool:
        """Tell systemd shutdown began (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Send one keep-alive ping (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout (``WatchdogSec=``) in seconds, or None if it is off for us.

        Read from ``$WATCHDOG_USEC``; if ``$WATCHDOG_PID`` is set it must be this process's
        pid (as sd_watchdog_enabled(3) checks), else the watchdog is meant for another process.
        Ping at least every half of this.
        """
        if self._address is None or not self._watchdog_usec:
            return None
        pid = self._watchdog_pid
        if pid is not None and (not pid.isdigit() or int(pid) != os.getpid()):
            return None
        if not self._watchdog_usec.isdigit() or int(self._watchdog_usec) <= 0:
            return None
        return int(self._watchdog_usec) / 1_000_000

    async def watchdog_loop(
        self,
        alive: Callable[[], bool],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Ping the watchdog every half interval for as long as the task runs.

        Each round pings only if ``alive()`` says the daemon is healthy (an ``alive`` that
        raises counts as unhealthy): the loop keeps running, so pings resume if health comes
        back before systemd's timeout. Returns at once when the watchdog is off. ``sleep`` is
        a seam for tests.
        """
        interval = self.watchdog_interval()
        if interval is None:
            return
        healthy = True
        while True:
            try:
                now_healthy = alive()
            except Exception:
                if healthy:  # once per unhealthy spell, not every round
                    log.exception("watchdog health check raised; counted as unhealthy")
                now_healthy = False
            if now_healthy:
                self.watchdog()
            if now_healthy != healthy:
                if now_healthy:
                    log.info("watchdog: daemon healthy again, pinging resumed")
                else:
                    log.warning(
                        "watchdog: daemon unhealthy, not pinging; systemd restarts it "
                        "%.0fs after the last ping",
                        interval,
                    )
                healthy = now_healthy
            await sleep(interval / 2)


__all__ = ["MAX_STATUS_CHARS", "SystemdNotifier"]
