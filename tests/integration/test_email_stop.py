"""A stop in the middle of email sends (a real SMTP conversation on 127.0.0.1): a mail cut
off before DATA was never written and goes out plainly on the next start; one cut off during
DATA may have been taken by the server, stays ``sending`` and is re-sent as ambiguous."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import Notification, Transition
from alertd.notify.delivery import Delivery
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.email.notifier import EmailNotifier
from alertd.notify.outbox import OutboxStore
from alertd.state.db import connect
from tests.open_incidents import open_incidents

pytestmark = pytest.mark.integration


class HangingSmtp:
    """An SMTP server that greets and takes MAIL and RCPT, then hangs: ``at="greeting"``
    never greets, ``at="data"`` never answers the end of the message."""

    def __init__(self, at: str) -> None:
        self.at = at
        self.sessions = 0
        self.data_started = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        try:
            if self.at == "greeting":
                await reader.read()  # until the client gives up
                return
            writer.write(b"220 hanging ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250 hanging\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    self.data_started.set()
                    await reader.read()  # takes the message, never answers it
                    return
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path)
    yield conn
    conn.close()


@asynccontextmanager
async def serve(server: HangingSmtp) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, family=socket.AF_INET)
    async with listener:
        yield listener.sockets[0].getsockname()[1]


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
    return EmailNotifier("mail", config)


async def stop_mid_send(
    db: sqlite3.Connection, server: HangingSmtp, ready: asyncio.Event
) -> Delivery:
    """Commit three mails for the channel's one session, run delivery until ``ready``, stop."""
    clock = FakeClock()
    async with serve(server) as port:
        mail = email_channel(port)
        delivery = Delivery(OutboxStore(db), {"mail": mail}, Metrics(CollectorRegistry()), clock)
        notes = [
            Notification(i, Transition.OPENED, "mail", key=f"k{i.id}")
            for i in open_incidents(db, 3)
        ]
        with delivery.store.transaction():
            delivery.store.enqueue(notes, clock.now())
        task = asyncio.create_task(delivery.run())
        try:
            await asyncio.wait_for(ready.wait(), timeout=10.0)
        finally:
            await delivery.stop(drain_seconds=0.2)
            await task
            await mail.close()
    return delivery


def outcomes(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT outcome, COUNT(*) FROM outbox_attempts GROUP BY 1"))


async def test_mails_stopped_before_data_were_not_sent_and_are_not_ambiguous(
    db: sqlite3.Connection,
) -> None:
    server = HangingSmtp(at="greeting")
    connected = asyncio.Event()
    original = server.handle

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await original(reader, writer)

    server.handle = handle  # type: ignore[method-assign]
    delivery = await stop_mid_send(db, server, connected)
    # one mail waited for the greeting, two for the channel's one session: none was written
    assert delivery.store.counts() == {"pending": 3}
    assert outcomes(db) == {"retryable": 3}
    again = Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), FakeClock())
    assert again.recover() == 0  # nothing to send again as "maybe delivered"


async def test_a_mail_stopped_during_data_may_have_arrived_and_stays_in_flight(
    db: sqlite3.Connection,
) -> None:
    server = HangingSmtp(at="data")
    delivery = await stop_mid_send(db, server, server.data_started)
    # the first mail's content went out: the server may have queued it
    assert delivery.store.counts() == {"sending": 1, "pending": 2}
    assert outcomes(db) == {"retryable": 2}
    again = Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), FakeClock())
    assert again.recover() == 1  # that one is sent again, marked ambiguous
