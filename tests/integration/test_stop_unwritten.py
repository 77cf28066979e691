"""A stop in the middle of sends, over real sockets on 127.0.0.1: a send cut off before it
wrote anything of its message goes out plainly on the next start (``retryable``, pending);
one cut off after may have reached the provider, stays ``sending`` and is re-sent as
ambiguous. Email: before DATA, or during it. SMS (the twilio library over our transport):
stuck in the TLS handshake, or waiting for Twilio's answer."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import Notification, Transition
from alertd.notify.delivery import Delivery
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from alertd.notify.notifier import Notifier
from alertd.notify.outbox import OutboxStore
from alertd.notify.sms.config import SmsChannelConfig
from alertd.notify.sms.notifier import SmsNotifier
from tests.open_incidents import open_incidents

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SENDS = 3


class Hanging:
    """A server whose handler stops answering at some point; ``reached`` is set once
    ``connections`` connections got there (``arrive``)."""

    def __init__(self, connections: int = 1) -> None:
        self.connections = connections
        self.arrived = 0
        self.reached = asyncio.Event()

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.connections:
            self.reached.set()


@asynccontextmanager
async def serve(handle: Handler) -> AsyncIterator[int]:
    listener = await asyncio.start_server(handle, "127.0.0.1", 0, family=socket.AF_INET)
    async with listener:
        yield listener.sockets[0].getsockname()[1]


async def stop_mid_send(
    db: sqlite3.Connection, channel: str, notifier: Notifier, reached: asyncio.Event
) -> Delivery:
    """Commit SENDS notifications for ``channel``, deliver until ``reached``, then stop."""
    clock = FakeClock()
    delivery = Delivery(OutboxStore(db), {channel: notifier}, Metrics(CollectorRegistry()), clock)
    notes = [
        Notification(i, Transition.OPENED, channel, recipients=recipients(channel), key=f"k{i.id}")
        for i in open_incidents(db, SENDS)
    ]
    with delivery.store.transaction():
        delivery.store.enqueue(notes, clock.now())
    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.wait_for(reached.wait(), timeout=10.0)
        await asyncio.sleep(0.05)  # the others reach their own waits (for the one session)
    finally:
        await delivery.stop(drain_seconds=0.2)
        await task
        await notifier.close()
    return delivery


def recipients(channel: str) -> tuple[str, ...]:
    return ("+15550100",) if channel == "sms" else ()


def outcomes(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT outcome, COUNT(*) FROM outbox_attempts GROUP BY 1"))


def sent_again(db: sqlite3.Connection) -> int:
    """How many intents the next start sends again as ambiguous."""
    return Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), FakeClock()).recover()


# -- email ----------------------------------------------------------------------------------
def email_channel(port: int) -> EmailNotifier:
    config = EmailChannelConfig.model_validate(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "starttls": False,
            "from": "alertd@example.com",
            "to": ["oncall@example.com"],
            "timeout": 60,
        }
    )
    return EmailNotifier("mail", config)  # one session: the other sends wait for it


def smtp_hanging_at(at: str, server: Hanging) -> Handler:
    """SMTP that hangs ``at="greeting"`` (never greets) or ``at="data"`` (takes MAIL, RCPT
    and the message, never answers its end)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if at == "greeting":
                server.arrive()
                await reader.read()  # until the client gives up
                return
            writer.write(b"220 hanging ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    server.arrive()
                    await reader.read()
                    return
                writer.write(b"250 hanging\r\n" if verb in (b"EHLO", b"HELO") else b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()

    return handle


# -- SMS ------------------------------------------------------------------------------------
def sms_channel(base_url: str) -> SmsNotifier:
    config = SmsChannelConfig.model_validate(
        {
            "type": "sms",
            "account_sid": "AC" + "0" * 32,
            "auth_token": "not-a-real-token",
            "from": "+15550199",
            "api_base_url": base_url,
            "timeout": 60,
        }
    )
    return SmsNotifier("sms", config)


def silent(server: Hanging) -> Handler:
    """Takes the connection, answers nothing (to TLS: no ServerHello)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.arrive()
        try:
            await reader.read()
        finally:
            writer.close()

    return handle


def answers_nothing(server: Hanging) -> Handler:
    """Reads a whole HTTP request (Twilio has it), never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            server.arrive()
            await reader.read()
        finally:
            writer.close()

    return handle


CASES = [
    # (channel, its factory, the server's handler, connections to wait for at the server,
    #  outbox after the stop, attempts recorded, sent again as ambiguous by the next start)
    pytest.param(
        "mail",
        email_channel,
        lambda server: smtp_hanging_at("greeting", server),
        1,
        {"pending": SENDS},  # one waited for the greeting, two for the one session
        {"retryable": SENDS},
        0,
        id="email-before-data",
    ),
    pytest.param(
        "mail",
        email_channel,
        lambda server: smtp_hanging_at("data", server),
        1,
        {"sending": 1, "pending": SENDS - 1},  # the first one's content went out
        {"retryable": SENDS - 1},
        1,
        id="email-during-data",
    ),
    pytest.param(
        "sms",
        lambda port: sms_channel(f"https://127.0.0.1:{port}"),
        silent,
        SENDS,  # a connection each, none past the TLS handshake
        {"pending": SENDS},
        {"retryable": SENDS},
        0,
        id="sms-in-tls-handshake",
    ),
    pytest.param(
        "sms",
        lambda port: sms_channel(f"http://127.0.0.1:{port}"),
        answers_nothing,
        SENDS,
        {"sending": SENDS},  # "Twilio" has each one: it may be out
        {},
        SENDS,
        id="sms-awaiting-twilio",
    ),
]


@pytest.mark.parametrize(
    ("channel", "make_channel", "handler", "connections", "counts", "recorded", "again"), CASES
)
async def test_a_stop_leaves_unwritten_sends_pending_and_written_ones_in_flight(
    db: sqlite3.Connection,
    channel: str,
    make_channel: Callable[[int], Notifier],
    handler: Callable[[Hanging], Handler],
    connections: int,
    counts: dict[str, int],
    recorded: dict[str, int],
    again: int,
) -> None:
    server = Hanging(connections)
    async with serve(handler(server)) as port:
        delivery = await stop_mid_send(db, channel, make_channel(port), server.reached)
    assert delivery.store.counts() == counts
    assert outcomes(db) == recorded
    assert sent_again(db) == again
