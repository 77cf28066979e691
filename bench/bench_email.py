#!/usr/bin/env python3
"""Email throughput: one reused SMTP session (``EmailNotifier``) vs a connection per message.

The peer: an aiosmtpd server on 127.0.0.1 (a port free at run time) in a child process
(this script with ``--serve``), so its CPU is not this process's; its handler accepts every
message and counts messages and sessions, which the parent reads after each run to check that
every send arrived and to count the connections it took. It is stopped by PID at the end.

Per run (``--runs``, medians reported), in this order so drift hits every row alike:

  reuse         ``EmailNotifier`` with ``connections: 1``: ``send()`` one after the other,
                every message over the same SMTP session (what alertd does now).
  per_message   the previous behaviour: the same rendered message sent with
                ``aiosmtplib.send`` (connect, EHLO, MAIL, RCPT, DATA, QUIT) per message.
  reuse_pool4   ``EmailNotifier`` with ``connections: 4`` and 4 sends in flight.
  per_message_c4  ``aiosmtplib.send`` with 4 in flight.

Each run sends ``--messages`` (500) notifications or stops at ``--max-seconds`` (15),
whichever comes first. Reported: messages/s, per-send latency (p50, p99), client CPU per
message (``time.process_time``, including aiosmtplib's ``socket.getfqdn`` thread per new
connection), server CPU per message (/proc/PID/stat), and connections opened.

Usage: .venv/bin/python bench/bench_email.py [--messages 500] [--runs 3] [--max-seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from benchlib import StdioPeer, median, pct, proc_cpu_seconds, result, table

from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify import render
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier

HOST = "127.0.0.1"
SENDER = "alertd@example.com"
RECIPIENT = "oncall@example.com"


# -- the peer (child process) ---------------------------------------------------------------


def serve(port: int) -> None:
    """Run the counting SMTP server until stdin says ``quit``; answer ``stats`` lines."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Counting:
        def __init__(self) -> None:
            self.messages = 0
            self.sessions: list[Session] = []
            self.lock = threading.Lock()

        async def handle_MAIL(
            self,
            server: SMTP,
            session: Session,
            envelope: Envelope,
            address: str,
            options: list[str],
        ) -> str:
            with self.lock:
                if not any(s is session for s in self.sessions):
                    self.sessions.append(session)
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 2.1.0 OK"

        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            with self.lock:
                self.messages += 1
            return "250 2.0.0 queued"

    handler = Counting()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stats":
                with handler.lock:
                    print(handler.messages, len(handler.sessions), flush=True)
            elif line.strip() == "quit":
                break
    finally:
        controller.stop()


# -- the client ----------------------------------------------------------------------------


def notifications(count: int) -> list[Notification]:
    incident = Incident(
        id=12,
        fingerprint="0123456789abcdef",
        rule="mem",
        metric="mem.used_percent",
        labels=make_labels({"instance": "web1", "site": "site-a", "role": "db"}),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.OPEN,
        summary="Memory used 87.5% on web1",
        value=87.5,
        opened_at=1714564800.0,
        updated_at=1714564800.0,
    )
    return [
        Notification(incident, Transition.REPEAT, "ops-mail", (RECIPIENT,), key=f"bench.{i}")
        for i in range(count)
    ]


def config(port: int, connections: int) -> EmailChannelConfig:
    return EmailChannelConfig.model_validate(
        {
            "type": "email",
            "host": HOST,
            "port": port,
            "starttls": False,
            "from": f"Alertd <{SENDER}>",
            "connections": connections,
        }
    )


def old_message(n: Notification) -> EmailMessage:
    """The message as the notifier built it before sessions were reused."""
    msg = EmailMessage()
    msg["From"] = f"Alertd <{SENDER}>"
    msg["To"] = ", ".join(n.recipients)
    msg["Subject"] = render.subject(n)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<alertd.{n.incident.id}.{n.key}@example.com>"
    msg.set_content(render.text_body(n))
    msg.add_alternative(render.html_body(n), subtype="html")
    return msg


@dataclass
class Run:
    sent: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_s: float
    server_cpu_s: float
    delivered: int
    connections: int


async def drive(
    send: Callable[[Notification], Awaitable[object]],
    ns: list[Notification],
    in_flight: int,
    max_seconds: float,
) -> tuple[int, float, list[float]]:
    """Send ``ns`` with ``in_flight`` workers until done or ``max_seconds``; return
    (sent, seconds, per-send latencies in ms)."""
    queue = list(reversed(ns))
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + max_seconds

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            n = queue.pop()
            t = time.perf_counter()
            await send(n)
            latencies.append((time.perf_counter() - t) * 1e3)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(latencies), time.perf_counter() - start, latencies


async def one_run(peer: StdioPeer, mode: str, ns: list[Notification], max_seconds: float) -> Run:
    in_flight = 4 if mode.endswith("4") else 1
    before_msgs, before_sessions = peer.stats()
    server_cpu = proc_cpu_seconds(peer.proc.pid)
    cpu = time.process_time()
    if mode.startswith("reuse"):
        notifier = EmailNotifier("bench", config(peer.port, in_flight))
        try:
            sent, seconds, lat = await drive(notifier.send, ns, in_flight, max_seconds)
        finally:
            await notifier.close()
    else:

        async def send(n: Notification) -> object:
            return await aiosmtplib.send(
                old_message(n),
                sender=SENDER,
                recipients=list(n.recipients),
                hostname=HOST,
                port=peer.port,
                start_tls=False,
                timeout=10.0,
            )

        sent, seconds, lat = await drive(send, ns, in_flight, max_seconds)
    client_cpu = time.process_time() - cpu
    after_msgs, after_sessions = peer.stats()
    return Run(
        sent=sent,
        seconds=seconds,
        latencies_ms=lat,
        client_cpu_s=client_cpu,
        server_cpu_s=proc_cpu_seconds(peer.proc.pid) - server_cpu,
        delivered=after_msgs - before_msgs,
        connections=after_sessions - before_sessions,
    )


MODES = ["reuse", "per_message", "reuse_pool4", "per_message_c4"]


async def main_async(args: argparse.Namespace) -> int:
    ns = notifications(args.messages)
    peer = StdioPeer.start(__file__, "SMTP server")
    runs: dict[str, list[Run]] = {m: [] for m in MODES}
    try:
        # warm-up: imports, template caches, the server's first session
        await one_run(peer, "reuse", ns[:20], args.max_seconds)
        await one_run(peer, "per_message", ns[:20], args.max_seconds)
        for _ in range(args.runs):
            for mode in MODES:
                runs[mode].append(await one_run(peer, mode, ns, args.max_seconds))
    finally:
        peer.stop()

    rows = []
    failed = 0
    rates: dict[str, float] = {}
    for mode in MODES:
        rs = runs[mode]
        rate = median([r.sent / r.seconds for r in rs])
        rates[mode] = rate
        lat = [x for r in rs for x in r.latencies_ms]
        sent = sum(r.sent for r in rs)
        lost = sum(r.sent - r.delivered for r in rs)
        failed += lost != 0
        fields = {
            "msgs": sent // len(rs),
            "msgs_per_s": rate,
            "ms_p50": median(lat),
            "ms_p99": pct(lat, 99),
            "client_cpu_us_per_msg": median([r.client_cpu_s / r.sent * 1e6 for r in rs]),
            "server_cpu_us_per_msg": median([r.server_cpu_s / r.sent * 1e6 for r in rs]),
            "connections": median([float(r.connections) for r in rs]),
            "lost": lost,
        }
        result(f"email_{mode}", **fields)
        rows.append([mode, *fields.values()])
    result(
        "email_reuse_speedup",
        sequential=rates["reuse"] / rates["per_message"],
        in_flight_4=rates["reuse_pool4"] / rates["per_message_c4"],
    )
    print()
    table(
        [
            "mode",
            "msgs/run",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "client µs/msg",
            "server µs/msg",
            "connections",
            "lost",
        ],
        rows,
    )
    if failed:
        print("!! some sends were not received by the server", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
