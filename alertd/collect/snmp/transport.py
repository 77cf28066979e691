"""One UDP socket for every SNMP request the daemon sends, replies matched by request id.

Requests in flight are bounded by a semaphore, so a thousand devices polled at once queue here
instead of flooding the network or the agents. A reply that doesn't decode, or whose request
id or source matches no pending request, is counted by reason and dropped — never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from alertd.collect.snmp.ber import Response, SnmpDecodeError, decode_response, peek_request_id
from alertd.errors import CollectError, CollectTimeoutError

log = logging.getLogger(__name__)

Address = tuple[str, int]


class SnmpRequestError(CollectError):
    """The agent answered with an error status, or its answer was unusable."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("snmp socket error: %s", exc)  # ICMP unreachable: the request times out


class SnmpTransport:
    """Sends encoded requests and returns decoded responses."""

    def __init__(
        self, max_in_flight: int = 100, on_drop: Callable[[str], None] | None = None
    ) -> None:
        self.max_in_flight = max_in_flight
        self.on_drop = on_drop
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: dict[int, tuple[Address, asyncio.Future[bytes]]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self.dropped: Counter[str] = Counter()  # reason -> replies dropped
        self.in_flight = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._received), local_addr=("0.0.0.0", 0)
        )
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def new_request_id(self) -> int:
        while True:
            rid = random.randrange(1, 2**31 - 1)
            if rid not in self._pending:
                return rid

    def _received(self, data: bytes, addr: Address) -> None:
        rid = peek_request_id(data)
        if rid is None:
            self.note_drop("undecodable")
            return
        pending = self._pending.get(rid)
        if pending is None:
            self.note_drop("unknown_request_id")  # late reply to a timed-out request, or junk
            return
        expected, future = pending
        if addr != expected:  # callers resolve names first, so both sides are IP literals
            self.note_drop("wrong_source")
            return
        if future.done():
            self.note_drop("duplicate")  # a second copy while the first is being handled
        else:
            future.set_result(data)

    def note_drop(self, reason: str) -> None:
        """Count a reply (or part of one) thrown away, by reason; warn the first time."""
        if self.dropped[reason] == 0:
            log.warning("snmp: dropping a reply (%s); counted from now on", reason)
        self.dropped[reason] += 1
        if self.on_drop is not None:
            self.on_drop(reason)

    async def request(
        self,
        addr: Address,
        encode: Callable[[int], bytes],
        *,
        timeout: float,  # noqa: ASYNC109 - a per-try timeout, retried; not the caller's deadline
        retries: int,
    ) -> Response:
        """Send ``encode(request_id)`` to ``addr``; return the decoded response.

        The same request id is kept across retries so that a late reply to an earlier try
        still counts. Raises ``CollectTimeoutError`` when no try is answered.
        """
        if self._transport is None:
            raise CollectError("snmp transport is not started")
        rid = self.new_request_id()
        payload = encode(rid)
        async with self._slots:
            self.in_flight += 1
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._pending[rid] = (addr, future)
            try:
                for _ in range(retries + 1):
                    self._transport.sendto(payload, addr)
                    try:
                        data = await asyncio.wait_for(asyncio.shield(future), timeout)
                    except TimeoutError:
                        continue
                    try:
                        response = decode_response(data)
                    except SnmpDecodeError as exc:
                        self.note_drop(exc.reason)
                        raise SnmpRequestError(
                            f"snmp {addr[0]}:{addr[1]}: malformed reply ({exc.reason})",
                            exc.reason,
                        ) from exc
                    if response.request_id != rid:  # peek and full decode disagree
                        self.note_drop("wrong_request_id")
                        raise SnmpRequestError(
                            f"snmp {addr[0]}:{addr[1]}: reply for another request",
                            "wrong_request_id",
                        )
                    return response
                raise CollectTimeoutError(
                    f"snmp {addr[0]}:{addr[1]}: timeout after {timeout:g}s ({retries} retries)"
                )
            finally:
                self.in_flight -= 1
                self._pending.pop(rid, None)
                if not future.done():
                    future.cancel()
