"""A provider that accepts connections and never answers holds up only its own channel: pages
to another channel, committed after the stalled channel's backlog, are delivered while the
stalled sends still hang (real HTTP servers on 127.0.0.1, the real webhook channel)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import Incident, Notification, Transition
from alertd.notify import http_pool
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.outbox import OutboxStore
from alertd.notify.webhook.config import WebhookChannelConfig
from alertd.notify.webhook.notifier import WebhookNotifier
from tests.open_incidents import open_incidents

pytestmark = pytest.mark.integration

MAX_IN_FLIGHT = 3


class Receiver:
    """A webhook receiver: answers 200, or (``stall``) holds every request until released."""

    def __init__(self, stall: bool) -> None:
        self.stall = stall
        self.waiting = 0
        self.received: list[str] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.stall:
            self.waiting += 1
            await self.release.wait()
        self.received.append(body["incident"]["key"])
        return web.Response(status=200)


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    return await serve_handler(receiver.handle)


async def serve_handler(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, str, Receiver, str]]:
    stalled, answering = Receiver(stall=True), Receiver(stall=False)
    stalled_runner, stalled_url = await serve(stalled)
    answering_runner, answering_url = await serve(answering)
    yield stalled, stalled_url, answering, answering_url
    stalled.release.set()
    await stalled_runner.cleanup()
    await answering_runner.cleanup()


async def wait_for(condition: object, seconds: float = 5.0) -> None:
    assert callable(condition)
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_a_stalled_webhook_does_not_hold_up_another_channel(
    db: sqlite3.Connection, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    stalled, stalled_url, answering, answering_url = receivers
    clock = FakeClock()
    mail = WebhookNotifier(
        "mail-bridge", WebhookChannelConfig.model_validate({"type": "webhook", "url": stalled_url})
    )
    pager = WebhookNotifier(
        "pager", WebhookChannelConfig.model_validate({"type": "webhook", "url": answering_url})
    )
    delivery = Delivery(
        OutboxStore(db),
        {"mail-bridge": mail, "pager": pager},
        Metrics(CollectorRegistry()),
        clock,
        settings=DeliverySettings(max_in_flight=MAX_IN_FLIGHT, send_timeout=60.0),
    )
    opened = open_incidents(db, 8)

    def commit(channel: str, which: list[Incident]) -> None:
        notes = [
            Notification(i, Transition.OPENED, channel, key=f"{channel}.{i.id}") for i in which
        ]
        with delivery.store.transaction():
            delivery.store.enqueue(notes, clock.now())
        delivery.wake()

    task = asyncio.create_task(delivery.run())
    try:
        commit("mail-bridge", opened[:5])  # a backlog behind a receiver that never answers
        await wait_for(lambda: stalled.waiting == MAX_IN_FLIGHT)
        assert stalled.waiting == MAX_IN_FLIGHT  # every slot of its own is hung
        commit("pager", opened[5:])  # the pages come after that backlog
        await wait_for(lambda: len(answering.received) == 3)
        assert sorted(answering.received) == [f"pager.{i.id}" for i in opened[5:]]
        assert stalled.waiting == MAX_IN_FLIGHT  # mail's backlog still waits for its own room
        await wait_for(lambda: delivery.store.counts().get("delivered") == 3)
        assert delivery.store.counts() == {"sending": 3, "pending": 2, "delivered": 3}
        stalled.release.set()  # the provider recovers: its backlog follows
        await wait_for(lambda: delivery.store.counts() == {"delivered": 8})
        assert delivery.store.counts() == {"delivered": 8}
        assert len(stalled.received) == 5
    finally:
        await delivery.stop(drain_seconds=1.0)
        await task
        await mail.close()
        await pager.close()


async def test_sends_queued_for_a_connection_behind_slow_answers_are_not_sent_twice(
    db: sqlite3.Connection,
) -> None:
    # twice as many sends in flight as the pool has connections, each answer slower than
    # half the timeout: the second hundred waits for a connection, then gets its own timeout
    # for the exchange (it used to time out once sent, and its retry arrived twice)
    received: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.6)
        received.append(body["incident"]["key"])
        return web.Response(status=200)

    runner, url = await serve_handler(slow)
    hook = WebhookNotifier(
        "hook", WebhookChannelConfig.model_validate({"type": "webhook", "url": url, "timeout": 1.0})
    )
    clock = FakeClock()
    delivery = Delivery(
        OutboxStore(db),
        {"hook": hook},
        Metrics(CollectorRegistry()),
        clock,
        settings=DeliverySettings(max_in_flight=200, backoff=100.0),
    )
    opened = open_incidents(db, 200)
    notes = [Notification(i, Transition.OPENED, "hook", key=f"k{i.id}") for i in opened]
    with delivery.store.transaction():
        delivery.store.enqueue(notes, clock.now())
    task = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: delivery.store.counts() == {"delivered": 200}, seconds=10.0)
    finally:
        await delivery.stop(drain_seconds=2.0)
        await task
        await hook.close()
        await runner.cleanup()
    assert delivery.store.counts() == {"delivered": 200}
    outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM outbox_attempts GROUP BY 1"))
    assert outcomes == {"ok": 200}  # no ambiguous timeout, no retry
    assert sorted(received) == sorted(n.key for n in notes)  # each exactly once


async def test_stopping_tells_sends_written_from_sends_still_waiting_for_a_connection(
    db: sqlite3.Connection, receivers: tuple[Receiver, str, Receiver, str]
) -> None:
    # the pool opens at most LIMIT connections: with LIMIT + 3 sends in flight to a receiver
    # that never answers, 3 wait for a connection and are cut off by the stop unsent
    stalled, stalled_url, _, _ = receivers
    hook = WebhookNotifier(
        "hook", WebhookChannelConfig.model_validate({"type": "webhook", "url": stalled_url})
    )
    clock = FakeClock()
    total = http_pool.LIMIT + 3
    settings = DeliverySettings(max_in_flight=total, send_timeout=60.0)
    delivery = Delivery(
        OutboxStore(db), {"hook": hook}, Metrics(CollectorRegistry()), clock, settings=settings
    )
    opened = open_incidents(db, total)
    notes = [Notification(i, Transition.OPENED, "hook", key=f"k{i.id}") for i in opened]
    with delivery.store.transaction():
        delivery.store.enqueue(notes, clock.now())
    task = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: stalled.waiting == http_pool.LIMIT)
        assert stalled.waiting == http_pool.LIMIT
    finally:
        await delivery.stop(drain_seconds=0.2)
        await task
        await hook.close()
    assert delivery.store.counts() == {"sending": http_pool.LIMIT, "pending": 3}
    outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM outbox_attempts GROUP BY 1"))
    assert outcomes == {"retryable": 3}  # the written ones have no outcome: they may be in
    again = Delivery(OutboxStore(db), {}, Metrics(CollectorRegistry()), clock)
    assert again.recover() == http_pool.LIMIT  # only those are sent again as ambiguous
