"""The HTTP/1.1 mechanics under ``HttpClient``: a keep-alive connection pool and the protocol.

Every HTTP notification is one small POST and one small answer, so this is a lean client
(an ``asyncio.Protocol`` and llhttp through ``httptools``) rather than aiohttp's
``ClientSession``, which costs about twice the CPU per request. ``http.py`` keeps the
vocabulary (redaction, classification); this module only moves bytes and says, with a
``WireError``, what went wrong and whether the request may have reached the server.

* One ``Pool`` per channel, with at most ``limit`` connections per origin (as aiohttp had):
  a storm reuses them all instead of opening and closing hundreds. A request finding none
  free waits for one that another request hands over. Idle connections are kept alive for
  ``keepalive`` seconds and reused newest first.
* An attempt has its timeout to get a connection (waiting for a free one, connecting: TCP and
  TLS), then as long again for the exchange. A timeout or failure before the request is
  written is known unsent (``sent`` is false); so is a request cancelled meanwhile
  (``notifier.known_unsent``: a delivery stopping does not count it ambiguous).
* Answers: ``Content-Length``, chunked, or read until the server closes (HTTP/1.0, no
  length); 1xx interim answers are skipped; at most ``max_body`` bytes of body are kept, and
  a connection whose answer was not read whole, or that says ``Connection: close``, is closed.
* A kept-alive connection the server has closed (EOF seen) is never reused. If the server
  closes it just as a request is written, that request fails as ``Disconnected``, which is
  ambiguous: the server may have read it. aiohttp does the same for a POST (it retries only
  idempotent methods on a fresh connection), and a retry is the delivery's call, not ours.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections import deque
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from alertd.notify.http_wire import (
    Answer,
    AnswerTimeout,
    CertificateError,
    ConnectError,
    ConnectionFailed,
    ConnectTimeout,
    CutShort,
    Disconnected,
    MalformedAnswer,
    PoolClosed,
    ResolveError,
    Target,
    WireError,
)
from alertd.notify.notifier import nothing_written_yet

LIMIT = 100  # connections per origin, as aiohttp's default (more sends wait for a free one)
KEEPALIVE = 15.0  # seconds a connection may idle (aiohttp's); servers drop theirs after 60 s
MAX_HEAD = 64 * 1024  # bytes of status lines and headers, interim answers included


@functools.cache
def default_tls() -> ssl.SSLContext:
    """Return the process's TLS context: system CAs, hostnames checked (built once: ~ms)."""
    return ssl.create_default_context()


class _Origin:
    """The connections to one scheme://host:port: idle ones, how many, who waits for one."""

    __slots__ = ("count", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: deque[Connection] = deque()  # newest on the right
        self.count = 0  # open or opening, idle or busy
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()


class Pool:
    """One channel's kept-alive HTTP/1.1 connections."""

    def __init__(
        self,
        *,
        max_body: int,
        limit: int = LIMIT,
        keepalive: float = KEEPALIVE,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Keep ``max_body`` bytes of each answer; open at most ``limit`` connections per
        origin, each kept ``keepalive`` seconds once idle; ``tls`` replaces the system CAs."""
        self._max_body = max_body
        self._limit = limit
        self._keepalive = keepalive
        self._tls = tls
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._open: set[Connection] = set()  # from connection_made to connection_lost
        self._prune_at: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def connections(self) -> int:
        """How many connections are open (idle or busy)."""
        return len(self._open)

    async def request(self, target: Target, request: bytes, seconds: float) -> Answer:
        """Send ``request`` (see ``encode_request``) and return the answer, whatever its status.

        Raises a ``WireError`` when no answer came in time: waiting for a free connection and
        connecting must end within ``seconds`` (``ConnectTimeout``: nothing was sent); the
        exchange then has ``seconds`` of its own. A request that queued for one
        of the ``limit`` connections behind slow answers is not timed out, once sent, for
        the queueing: the provider would have it, and a retry would send it twice.
        """
        if self._closed:
            raise PoolClosed("closed")
        origin = self._origins.get(target.origin)
        if origin is None:
            origin = self._origins[target.origin] = _Origin()
        loop = asyncio.get_running_loop()
        nothing_written_yet(True)  # cut off while waiting for a connection: known unsent
        conn = await self._acquire(origin, target, loop.time() + seconds)
        nothing_written_yet(False)  # (no await between here and the write)
        deadline = loop.time() + seconds
        try:
            return await conn.exchange(request, deadline, self._max_body)
        finally:
            self._release(origin, conn)

    def close(self) -> None:
        """Close every connection; requests still waiting fail, later ones raise ``PoolClosed``."""
        self._closed = True
        if self._prune_at is not None:
            self._prune_at.cancel()
        for origin in self._origins.values():
            for waiter in origin.waiters:
                if not waiter.done():
                    waiter.set_exception(PoolClosed("closed"))
        self._origins.clear()
        for conn in list(self._open):
            conn.abort(ConnectionFailed("closed by alertd (channel closed)"))

    async def _acquire(self, origin: _Origin, target: Target, deadline: float) -> Connection:
        while True:
            loop = asyncio.get_running_loop()
            conn = self._take(origin, loop.time())
            if conn is not None:
                return conn
            if origin.count < self._limit:
                origin.count += 1
                try:
                    return await self._connect(target, deadline)
                except BaseException:
                    self._freed(origin)
                    raise
            conn = await self._wait(origin, deadline)
            if conn is not None:
                return conn  # handed over by a request that finished; else a slot is free

    async def _wait(self, origin: _Origin, deadline: float) -> Connection | None:
        """Wait for a connection another request hands over, or for a free slot (``None``)."""
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        origin.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                given = waiter.result()  # handed to us as we gave up: pass it on
                if given is not None:
                    self._release(origin, given)
                else:
                    self._wake(origin)
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout("no connection free in time") from None
            raise  # the cancelled waiter stays queued: _release and _wake skip it

    def _take(self, origin: _Origin, now: float) -> Connection | None:
        while origin.idle:
            conn = origin.idle.pop()  # the newest: the least likely to be timed out by the server
            if conn.usable and now - conn.idle_since < self._keepalive:
                return conn
            conn.abort(None)
            origin.count -= 1
        return None

    def _release(self, origin: _Origin, conn: Connection) -> None:
        """Hand ``conn`` to a waiting request, keep it idle, or close it if it is spent."""
        if not conn.usable or self._closed:
            conn.close()
            self._freed(origin)
            return
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        origin.idle.append(conn)
        if self._prune_at is None:
            self._prune_at = loop.call_at(conn.idle_since + self._keepalive, self._prune)

    def _freed(self, origin: _Origin) -> None:
        origin.count -= 1
        self._wake(origin)

    def _wake(self, origin: _Origin) -> None:
        """Tell the first waiting request that it may open a connection."""
        while origin.waiters:
            waiter = origin.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _prune(self) -> None:
        """Close the connections idle for ``keepalive``; come back for the next to expire."""
        self._prune_at = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        oldest: float | None = None
        for origin in self._origins.values():
            while origin.idle and now - origin.idle[0].idle_since >= self._keepalive:
                origin.idle.popleft().close()
                origin.count -= 1
            if origin.idle:
                since = origin.idle[0].idle_since
                oldest = since if oldest is None else min(oldest, since)
        if oldest is not None:
            self._prune_at = loop.call_at(oldest + self._keepalive, self._prune)

    async def _connect(self, target: Target, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls = (self._tls or default_tls()) if target.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    functools.partial(Connection, self._open),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:  # ours, or the kernel's ETIMEDOUT: the request is unsent either way
            raise ConnectTimeout("connect timeout") from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(exc.verify_message or exc.reason or "unverified") from None
        except socket.gaierror as exc:
            raise ResolveError(f"cannot resolve {target.host}: {_why(exc)}") from None
        except OSError as exc:  # refused, unreachable, a failed TLS handshake
            host = f"[{target.host}]" if ":" in target.host else target.host
            raise ConnectError(f"cannot connect to {host}:{target.port}: {_why(exc)}") from None
        if self._closed:
            conn.close()
            raise PoolClosed("closed")
        return conn


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses the answer, knows if it is reusable.

    The parser's callbacks (``on_*``) fill the current answer; the asyncio callbacks settle
    the exchange's future. Nothing here raises into the event loop.
    """

    # the answer being read, reset by _start for each exchange
    _parser: httptools.HttpResponseParser
    _max_body: int
    _received: int  # bytes of this answer so far
    _status: int  # of the final answer, once its headers are in
    _reason: bytes
    _headers: list[tuple[str, str]]
    _body: list[bytes]
    _size: int
    _truncated: bool  # more body than max_body: the rest is not read
    _complete: bool
    _reusable: bool  # the answer was read whole and the server keeps the connection open

    def __init__(self, registry: set[Connection]) -> None:
        """``registry`` holds the connection from ``connection_made`` to ``connection_lost``."""
        self.idle_since = 0.0
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._ended = False  # EOF or connection lost: never reused
        self._waiter: asyncio.Future[Answer] | None = None
        # one parser per connection: a connection is only reused after an answer was read
        # whole, and llhttp is then back at the start of the next message
        self._parser = httptools.HttpResponseParser(self)
        self._start(0)

    @property
    def usable(self) -> bool:
        """Whether a new request may be written here (idle, and the server has not closed)."""
        t = self._transport
        return self._reusable and not self._ended and t is not None and not t.is_closing()

    async def exchange(self, request: bytes, deadline: float, max_body: int) -> Answer:
        """Write ``request`` and return the final answer; the timer aborts at ``deadline``."""
        transport = self._transport
        assert transport is not None  # create_connection returns after connection_made
        if self._ended or transport.is_closing():  # closed as it opened: nothing was sent
            raise ConnectError("the server closed the connection before the request was sent")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._start(max_body)
        timer = loop.call_at(deadline, self._expire)
        transport.write(request)
        try:
            return await waiter
        except BaseException:  # a failure, or the caller cancelled: the exchange is half done
            self.abort(None)
            raise
        finally:
            timer.cancel()
            self._waiter = None

    def close(self) -> None:
        """Close the connection politely (it is idle)."""
        self._reusable = False
        if self._transport is not None:
            self._transport.close()

    def _expire(self) -> None:
        self.abort(AnswerTimeout("no answer in time"))

    def abort(self, exc: WireError | None) -> None:
        """Drop the connection at once; a pending exchange fails with ``exc``."""
        self._reusable = False
        if exc is not None:
            self._settle(exc)
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's does not subclass asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort(None)  # bytes nobody asked for: the stream is out of step
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.abort(MalformedAnswer("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self.abort(MalformedAnswer(str(exc) or type(exc).__name__))
        else:
            if self._truncated:
                self._answer()  # the rest is not read: this connection cannot be reused
                self.abort(None)
            elif self._status == 0 and self._received > MAX_HEAD:
                self.abort(MalformedAnswer(f"headers longer than {MAX_HEAD} bytes"))

    def eof_received(self) -> bool:
        self._ended = True
        self._end(None)
        return False  # close: a half-closed HTTP/1.1 connection is no use

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._end(exc)
        self._registry.discard(self)

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: out of step, do not reuse
            self._reusable = False

    def on_status(self, status: bytes) -> None:
        self._reason += status  # may come in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # interim (100 Continue, 103 Early Hints): the final answer follows
            self._headers.clear()
            self._reason = b""
        else:
            self._status = status

    def on_body(self, body: bytes) -> None:
        room = self._max_body - self._size
        if len(body) > room:
            body = body[:room]
            self._truncated = True
        if body:
            self._body.append(body)
            self._size += len(body)

    def on_message_complete(self) -> None:
        if self._status and not self._complete:
            self._complete = True
            self._reusable = self._parser.should_keep_alive() and not self._truncated
            self._answer()

    # -- the current exchange --------------------------------------------------------------
    def _start(self, max_body: int) -> None:
        self._max_body = max_body
        self._received = 0
        self._status = 0
        self._reason = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._truncated = False
        self._complete = False
        self._reusable = False

    def _answer(self) -> None:
        headers = CIMultiDictProxy(CIMultiDict(self._headers))
        reason = self._reason.decode("latin-1")
        self._settle(Answer(self._status, reason, headers, b"".join(self._body)))

    def _settle(self, outcome: Answer | WireError) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, WireError):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    def _end(self, exc: Exception | None) -> None:
        """The stream ended (``exc``: how, if not a clean EOF): settle a pending exchange."""
        self._reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._status and exc is None and not self._framed():
            self._answer()  # the body ran until the close, as the server said it would
        elif self._received:
            self._settle(CutShort("answer cut short"))
        elif exc is not None:
            why = exc.strerror if isinstance(exc, OSError) else None
            self._settle(ConnectionFailed(why or type(exc).__name__))
        else:
            self._settle(Disconnected("server closed the connection before answering"))

    def _framed(self) -> bool:
        """Whether the answer said where its body ends (so a close before then cuts it)."""
        headers = CIMultiDict(self._headers)
        coding = headers.get("Transfer-Encoding", "").lower()
        return "Content-Length" in headers or coding.rstrip().endswith("chunked")
