"""The lean HTTP client against a raw asyncio server on 127.0.0.1 (ephemeral port).

The server reads each request whole (headers and ``Content-Length`` bytes), records it, and
plays the next scripted action: write raw answer bytes (then keep the connection or close
it), close without a word, reset (RST), or stall until teardown. It counts the connections
it accepted, so keep-alive reuse is checked from the server's side. TLS uses certificates
made here with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from alertd.errors import FailureReason, NotifyError
from alertd.notify import http_pool
from alertd.notify import http_wire as wire
from alertd.notify.http import MAX_BODY, HttpClient
from tests.certs import Cert, self_signed

pytestmark = [pytest.mark.integration, pytest.mark.both_loops]

TOKEN = "tok3n-0123456789abcdef"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
TIMEOUT = 0.3  # seconds; a stalled server never answers within it

Action = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def send(raw: bytes, *, close: bool = False) -> Action:
    """Write ``raw``; then keep reading requests, or close if ``close``."""

    async def action(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return not close

    return action


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Close (FIN) without answering."""
    return False


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Drop the connection with a RST (SO_LINGER 0), without answering."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return False


@dataclass
class RawServer:
    """A scripted HTTP/1.1 peer: ``script`` is played in order, then ``default``."""

    port: int = 0
    script: list[Action] = field(default_factory=list)
    default: Action = field(default_factory=lambda: send(OK))
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = f"/hook/{TOKEN}", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def stall(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await self.release.wait()  # until teardown: far past the client's timeout
        return False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                self.requests.append(head + await reader.readexactly(length))
                action = self.script.pop(0) if self.script else self.default
                if not await action(reader, writer):
                    return
        finally:
            writer.close()


async def start(fake: RawServer, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, ssl=tls)
    fake.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture
async def peer() -> AsyncIterator[RawServer]:
    fake = RawServer()
    server = await start(fake)
    try:
        yield fake
    finally:
        fake.release.set()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def pool() -> AsyncIterator[http_pool.Pool]:
    made = http_pool.Pool(max_body=MAX_BODY)
    yield made
    made.close()
    await asyncio.sleep(0)


@pytest.fixture
async def clients() -> AsyncIterator[list[HttpClient]]:
    made: list[HttpClient] = []
    yield made
    for client in made:
        await client.close()


async def post(
    pool: http_pool.Pool, url: str, body: bytes = b"{}", seconds: float = TIMEOUT
) -> wire.Answer:
    target = wire.Target.parse(url)
    request = wire.encode_request(target, {"Content-Type": "application/json"}, body)
    return await pool.request(target, request, seconds)


async def failed(clients: list[HttpClient], url: str) -> NotifyError:
    client = HttpClient(url, timeout=TIMEOUT, keep_path=1)
    clients.append(client)
    with pytest.raises(NotifyError) as info:
        await client.post("webhook ops incident #1", b"{}", {})
    assert TOKEN not in str(info.value)
    return info.value


async def until(check: Callable[[], bool]) -> None:
    """Let the loop run until ``check()`` holds (bounded: a hang fails, not a slow box)."""
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


# -- keep-alive and framing ----------------------------------------------------------------
async def test_sequential_posts_share_one_connection(peer: RawServer, pool: http_pool.Pool) -> None:
    for i in range(20):
        answer = await post(pool, peer.url(), f'{{"n":{i}}}'.encode())
        assert (answer.status, answer.reason, answer.body) == (200, "OK", b"ok")
    assert peer.connections == 1
    assert len(peer.requests) == 20
    first = peer.requests[0].decode()
    assert first.startswith(f"POST /hook/{TOKEN} HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{peer.port}\r\n" in first
    assert "\r\nUser-Agent: alertd\r\n" in first
    assert first.endswith('\r\nContent-Length: 7\r\n\r\n{"n":0}')


async def test_the_signed_query_reaches_the_server_unchanged(
    peer: RawServer, clients: list[HttpClient]
) -> None:
    client = HttpClient(peer.url("/robot/send?access_token=x"), timeout=TIMEOUT)
    clients.append(client)
    signed = peer.url("/robot/send?access_token=x&timestamp=1&sign=a%2Bb%2F%3D")
    resp = await client.post("dingtalk", b"{}", {}, signed)
    assert resp.ok
    assert peer.requests[0].startswith(
        b"POST /robot/send?access_token=x&timestamp=1&sign=a%2Bb%2F%3D HTTP/1.1\r\n"
    )


async def test_chunked_answer(peer: RawServer, pool: http_pool.Pool) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    peer.script = [send(head + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")]
    assert (await post(pool, peer.url())).body == b"hello world"
    assert (await post(pool, peer.url())).body == b"ok"
    assert peer.connections == 1  # a chunked answer is read whole: the connection is reused


async def test_answer_read_until_the_server_closes(peer: RawServer, pool: http_pool.Pool) -> None:
    peer.script = [
        send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", close=True)
    ]
    answer = await post(pool, peer.url())
    assert (answer.status, answer.body) == (200, b"until close")
    assert answer.headers["content-type"] == "text/plain"
    assert (await post(pool, peer.url())).body == b"ok"
    assert peer.connections == 2


async def test_interim_answers_are_skipped(peer: RawServer, pool: http_pool.Pool) -> None:
    peer.script = [
        send(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone"
        )
    ]
    answer = await post(pool, peer.url())
    assert (answer.status, answer.reason, answer.body) == (201, "Created", b"done")
    assert answer.headers.get("x-final") == "yes"
    assert "Link" not in answer.headers
    await post(pool, peer.url())
    assert peer.connections == 1


async def test_connection_close_is_not_reused(peer: RawServer, pool: http_pool.Pool) -> None:
    # the server says close but keeps the socket open: the client must not reuse it anyway
    peer.script = [send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")]
    await post(pool, peer.url())
    await post(pool, peer.url())
    assert peer.connections == 2


async def test_an_answer_over_max_body_is_cut_and_its_connection_dropped(
    peer: RawServer, pool: http_pool.Pool
) -> None:
    big = b"x" * (MAX_BODY * 3)
    peer.script = [send(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))]
    answer = await post(pool, peer.url())
    assert (answer.status, len(answer.body)) == (500, MAX_BODY)
    assert (await post(pool, peer.url())).body == b"ok"
    assert peer.connections == 2


async def test_retry_after_is_found_whatever_its_case(
    peer: RawServer, clients: list[HttpClient]
) -> None:
    peer.default = send(b"HTTP/1.1 429 Too Many\r\nRETRY-AFTER: 7\r\nContent-Length: 0\r\n\r\n")
    client = HttpClient(peer.url(), timeout=TIMEOUT)
    clients.append(client)
    resp = await client.post("w", b"{}", {})
    err = client.status_error("w", resp)
    assert (err.reason, err.retry_after) == (FailureReason.RATE_LIMITED, 7.0)


async def test_a_pooled_connection_the_server_closed_is_not_reused(
    peer: RawServer, pool: http_pool.Pool
) -> None:
    peer.script = [send(OK, close=True)]  # keep-alive by its headers, then closed while idle
    await post(pool, peer.url())
    await until(lambda: pool.connections == 0)  # the client saw the EOF
    answer = await post(pool, peer.url())
    assert answer.body == b"ok"
    assert peer.connections == 2


async def test_a_storm_reuses_at_most_limit_connections(
    peer: RawServer, pool: http_pool.Pool
) -> None:
    for _ in range(2):  # the delivery's 256 sends at once, twice
        answers = await asyncio.gather(*(post(pool, peer.url()) for _ in range(256)))
        assert {a.status for a in answers} == {200}
    assert len(peer.requests) == 512
    assert peer.connections == http_pool.LIMIT  # opened once, then kept and handed over
    assert pool.connections == http_pool.LIMIT


async def test_a_request_waits_for_a_connection_another_hands_over(peer: RawServer) -> None:
    pool = http_pool.Pool(max_body=MAX_BODY, limit=2)
    try:
        answers = await asyncio.gather(*(post(pool, peer.url()) for _ in range(7)))
        assert [a.body for a in answers] == [b"ok"] * 7
        assert peer.connections == 2
    finally:
        pool.close()
        await asyncio.sleep(0)


async def test_waiting_past_the_deadline_for_a_connection_sent_nothing(peer: RawServer) -> None:
    peer.default = peer.stall
    pool = http_pool.Pool(max_body=MAX_BODY, limit=1)
    try:
        first, second = await asyncio.gather(  # the second gives up while the first waits
            post(pool, peer.url(), seconds=2 * TIMEOUT),
            post(pool, peer.url(), seconds=TIMEOUT),
            return_exceptions=True,
        )
        assert isinstance(first, wire.AnswerTimeout)
        assert isinstance(second, wire.ConnectTimeout)
        assert len(peer.requests) == 1
    finally:
        pool.close()
        await asyncio.sleep(0)


async def test_each_waiting_request_gives_up_at_its_own_deadline(peer: RawServer) -> None:
    # one timer serves every waiting request: a later one with a shorter timeout is not
    # held to the earlier one's deadline
    peer.default = peer.stall
    pool = http_pool.Pool(max_body=MAX_BODY, limit=1)
    done: list[str] = []

    async def tagged(name: str, seconds: float) -> None:
        try:
            await post(pool, peer.url(), seconds=seconds)
        except wire.WireError as exc:
            done.append(f"{name}: {type(exc).__name__}")

    try:
        holder = asyncio.create_task(tagged("holder", 3 * TIMEOUT))
        await asyncio.sleep(0.05)  # it has the one connection, and stalls
        slow = asyncio.create_task(tagged("slow", 6 * TIMEOUT))
        await asyncio.sleep(0.05)
        await tagged("quick", TIMEOUT)
        assert done == ["quick: ConnectTimeout"]  # before the holder's answer timed out
        await asyncio.gather(holder, slow)
        assert done[1] == "holder: AnswerTimeout"
        assert len(peer.requests) == 2  # the slow one got the freed slot, nothing more
    finally:
        pool.close()
        await asyncio.sleep(0)


async def test_idle_connections_expire(peer: RawServer) -> None:
    pool = http_pool.Pool(max_body=MAX_BODY, keepalive=0.01)
    try:
        await post(pool, peer.url())
        await until(lambda: pool.connections == 0)  # closed by the pool, not the server
        assert (await post(pool, peer.url())).body == b"ok"
        assert peer.connections == 2
    finally:
        pool.close()
        await asyncio.sleep(0)


async def test_close_drops_idle_connections_and_refuses_new_posts(
    peer: RawServer, pool: http_pool.Pool
) -> None:
    await post(pool, peer.url())
    assert pool.connections == 1
    pool.close()
    await until(lambda: pool.connections == 0)
    with pytest.raises(wire.PoolClosed):
        await post(pool, peer.url())
    assert len(peer.requests) == 1


# -- failures ------------------------------------------------------------------------------
async def test_malformed_status_line(peer: RawServer, clients: list[HttpClient]) -> None:
    peer.default = send(b"HTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    err = await failed(clients, peer.url())
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.SERVER_ERROR)
    assert "malformed HTTP answer" in str(err)


async def test_connect_refused_is_not_ambiguous(
    closed_port: int, clients: list[HttpClient]
) -> None:
    err = await failed(clients, f"http://127.0.0.1:{closed_port}/hook/{TOKEN}")
    assert (err.retryable, err.ambiguous, err.reason) == (True, False, FailureReason.CONNECT)
    assert f"cannot connect to 127.0.0.1:{closed_port}" in str(err)


async def test_a_stall_past_the_timeout_is_ambiguous(
    peer: RawServer, clients: list[HttpClient]
) -> None:
    peer.default = peer.stall
    err = await failed(clients, peer.url())
    assert len(peer.requests) == 1  # the server had the request
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.TIMEOUT)
    assert "no answer within 0.3s" in str(err)


@pytest.mark.parametrize(
    ("action", "says"),
    [
        (reset, "connection failed mid-request"),
        (hang_up, "server closed the connection before answering"),
        (send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True), "cut short"),
    ],
)
async def test_a_connection_lost_after_the_request_is_ambiguous(
    action: Action, says: str, peer: RawServer, clients: list[HttpClient]
) -> None:
    peer.default = action
    err = await failed(clients, peer.url())
    assert len(peer.requests) == 1
    assert (err.retryable, err.ambiguous, err.reason) == (True, True, FailureReason.CONNECT)
    assert says in str(err)


async def test_a_cancelled_post_drops_its_connection(peer: RawServer, pool: http_pool.Pool) -> None:
    peer.script = [peer.stall]
    task = asyncio.create_task(post(pool, peer.url()))
    await until(lambda: len(peer.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: pool.connections == 0)  # half an exchange: never reused
    assert (await post(pool, peer.url())).body == b"ok"
    assert peer.connections == 2


# -- TLS and IPv6 --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "local": self_signed(directory, "127.0.0.1", "localhost"),
        "elsewhere": self_signed(directory, "elsewhere.invalid"),
    }


@pytest.fixture
async def tls_peer(certs: dict[str, Cert]) -> AsyncIterator[RawServer]:
    fake = RawServer()
    server = await start(fake, certs["local"].server())
    try:
        yield fake
    finally:
        fake.release.set()
        server.close()
        await server.wait_closed()


async def test_https_with_a_self_signed_certificate_is_rejected(
    tls_peer: RawServer, clients: list[HttpClient]
) -> None:
    err = await failed(clients, tls_peer.url(scheme="https"))
    assert (err.retryable, err.ambiguous, err.reason) == (False, False, FailureReason.CONNECT)
    assert "TLS certificate rejected" in str(err)
    assert tls_peer.requests == []


async def test_https_to_a_trusted_server_verifies_the_host(
    tls_peer: RawServer, certs: dict[str, Cert]
) -> None:
    pool = http_pool.Pool(max_body=MAX_BODY, tls=certs["local"].trusted())
    try:
        for _ in range(3):
            assert (await post(pool, tls_peer.url(scheme="https"))).body == b"ok"
        assert tls_peer.connections == 1
    finally:
        pool.close()
        await asyncio.sleep(0)
    wrong = http_pool.Pool(max_body=MAX_BODY, tls=certs["elsewhere"].trusted())
    try:
        with pytest.raises(wire.CertificateError):  # trusted, but not for 127.0.0.1
            await post(wrong, tls_peer.url(scheme="https"))
    finally:
        wrong.close()
        await asyncio.sleep(0)


async def test_a_tls_handshake_that_never_ends_is_a_connect_timeout(
    peer: RawServer, clients: list[HttpClient]
) -> None:
    # a plain HTTP server never answers the ClientHello: nothing of the POST was sent
    err = await failed(clients, peer.url(scheme="https"))
    assert (err.retryable, err.ambiguous, err.reason) == (True, False, FailureReason.TIMEOUT)
    assert "(nothing sent)" in str(err)
    assert peer.requests == []


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback here")
async def test_an_ipv6_literal_host(pool: http_pool.Pool) -> None:
    fake = RawServer()
    server = await asyncio.start_server(fake.handle, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await post(pool, f"http://[::1]:{port}/x")).body == b"ok"
        assert f"\r\nHost: [::1]:{port}\r\n".encode() in fake.requests[0]
    finally:
        server.close()
        await server.wait_closed()
