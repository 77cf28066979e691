#!/usr/bin/env python3
"""HTTP client CPU per POST: alertd's lean client (``HttpClient``) vs aiohttp's ``ClientSession``.

The peer: a minimal asyncio HTTP/1.1 server on 127.0.0.1 (a port free at run time) in a child
process (this script with ``--serve``), so its CPU is not this process's. It answers every
POST with a fixed 200 and a small JSON body (a robot's ``{"errcode":0}``), keeps connections
alive, and counts requests and connections, which the parent reads after each run to check
that every POST arrived. It is stopped by PID at the end.

Per run (``--runs``, medians reported), in this order so drift hits every row alike:

  lean          ``HttpClient.post`` (``alertd/notify/http_pool.py``): what alertd does now.
  aiohttp       the previous ``HttpClient.post``: one ``ClientSession``, ``session.post`` with
                the same headers, the body read up to ``MAX_BODY``, a ``Response`` built.
  lean_c64      the same with 64 POSTs in flight (the delivery runs up to 256).
  aiohttp_c64

Each run sends ``--requests`` (5000) POSTs of a ~1 KB webhook body. Reported: client CPU per
POST in µs (``getrusage``: user, i.e. Python and C code, and sys, the kernel's loopback TCP and
epoll, which the client pays for whatever its code), requests/s, and connections opened.

Usage: .venv/bin/python bench/bench_http_client.py [--requests 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from benchlib import StdioPeer, median, result, table

from alertd.notify.http import JSON_HEADERS, MAX_BODY, HttpClient, Response

HOST = "127.0.0.1"
ANSWER = b'{"errcode":0,"errmsg":"ok"}'
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)
MODES = ("lean", "aiohttp", "lean_c64", "aiohttp_c64")


# -- the peer (child process) ---------------------------------------------------------------
class Counter:
    requests = 0
    connections = 0


class Answering(asyncio.Protocol):
    """Answers each complete request (headers + Content-Length bytes) with ``REPLY``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        Counter.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            Counter.requests += 1
            self.transport.write(REPLY)


async def serve_async(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answering, HOST, port, backlog=1024)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"stats":
            print(Counter.requests, Counter.connections, flush=True)
        elif line == b"quit":
            break
    server.close()


# -- the clients ---------------------------------------------------------------------------
Post = Callable[[bytes, dict[str, str]], Awaitable[Response]]


class OldClient:
    """The previous ``HttpClient.post``: aiohttp's ``ClientSession``, as it was configured."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": "alertd"},
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=timeout),
            raise_for_status=False,
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> Response:
        async with self.session.post(
            self.url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            chunks: list[bytes] = []
            size = 0
            while size < MAX_BODY:
                chunk = await resp.content.read(MAX_BODY - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return Response(resp.status, resp.reason or "", resp.headers, b"".join(chunks))

    async def close(self) -> None:
        await self.session.close()


def webhook_body() -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "cpu_high", "instance": "sw-core-01", "severity": "critical"},
        "annotations": {"summary": "CPU 92% on sw-core-01"},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": "c6eadffa33fcdf37",
    }
    payload = {"receiver": "ops-hook", "status": "firing", "alerts": [alert] * 4}
    return json.dumps(payload).encode()


@dataclass
class Run:
    sent: int
    seconds: float
    user_s: float  # CPU in Python and C code
    sys_s: float  # CPU in the kernel: loopback TCP, epoll
    arrived: int
    connections: int


async def drive(post: Post, body: bytes, count: int, in_flight: int) -> int:
    left = count

    async def worker() -> int:
        nonlocal left
        ok = 0
        while left > 0:
            left -= 1
            resp = await post(body, {**JSON_HEADERS, "Idempotency-Key": f"k{left}"})
            ok += resp.status == 200
        return ok

    return sum(await asyncio.gather(*(worker() for _ in range(in_flight))))


async def one_run(peer: StdioPeer, mode: str, count: int) -> Run:
    url = f"http://{HOST}:{peer.port}/hook/0123456789abcdef"
    in_flight = 64 if mode.endswith("c64") else 1
    body = webhook_body()
    before_requests, before_conns = peer.stats()
    if mode.startswith("lean"):
        lean = HttpClient(url, timeout=10.0, keep_path=1)

        async def post(body: bytes, headers: dict[str, str]) -> Response:
            return await lean.post("bench", body, headers)

        close: Callable[[], Awaitable[None]] = lean.close
    else:
        old = OldClient(url, timeout=10.0)
        post, close = old.post, old.close
    await post(body, dict(JSON_HEADERS))  # warm up: imports, first connection
    cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    sent = await drive(post, body, count, in_flight)
    wall = time.perf_counter() - wall
    end = resource.getrusage(resource.RUSAGE_SELF)
    user, system = end.ru_utime - cpu.ru_utime, end.ru_stime - cpu.ru_stime
    await close()
    after_requests, after_conns = peer.stats()
    arrived = after_requests - before_requests - 1  # the warm-up POST is not counted
    return Run(sent, wall, user, system, arrived, after_conns - before_conns)


async def main_async(args: argparse.Namespace) -> int:
    peer = StdioPeer.start(__file__, "HTTP server")
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    try:
        for _ in range(args.runs):
            for mode in MODES:
                runs[mode].append(await one_run(peer, mode, args.requests))
    finally:
        peer.stop()
    rows = []
    failed = False
    for mode in MODES:
        each = runs[mode]
        us = median([(r.user_s + r.sys_s) / r.sent * 1e6 for r in each if r.sent])
        user = median([r.user_s / r.sent * 1e6 for r in each if r.sent])
        system = median([r.sys_s / r.sent * 1e6 for r in each if r.sent])
        rate = median([r.sent / r.seconds for r in each])
        conns = max(r.connections for r in each)
        lost = sum(args.requests - r.sent for r in each) + sum(r.sent - r.arrived for r in each)
        failed = failed or lost != 0
        result(
            f"http_client.{mode}",
            cpu_us_per_post=us,
            user_us=user,
            sys_us=system,
            posts_per_s=rate,
            connections=conns,
            lost=lost,
        )
        rows.append((mode, us, user, system, rate, conns, lost))
    print()
    table(["mode", "CPU µs/POST", "user µs", "sys µs", "POST/s", "connections", "lost"], rows)
    lean, old = rows[0][1], rows[1][1]
    print(f"lean client: {lean:.1f} µs vs aiohttp {old:.1f} µs of CPU per POST ({old / lean:.2f}x)")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_async(args.serve))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
