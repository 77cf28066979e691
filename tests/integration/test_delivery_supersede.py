"""The reported case, over a real socket: a webhook receiver down (HTTP 500) while an
incident opens and resolves gets "resolved" once it is back, not the stale "opened" after it
(the real webhook channel, an aiohttp receiver on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import IncidentState, Notification, Transition
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.outbox import OutboxStore
from alertd.notify.webhook.config import WebhookChannelConfig
from alertd.notify.webhook.notifier import WebhookNotifier
from tests.integration.test_delivery_stalled_channel import serve_handler
from tests.open_incidents import open_incidents

pytestmark = pytest.mark.integration


async def test_a_receiver_back_after_an_outage_gets_resolved_not_a_stale_opened(
    db: sqlite3.Connection,
) -> None:
    up = False
    received: list[tuple[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if not up:
            return web.Response(status=500)
        received.append((body["status"], body["incident"]["transition"]))
        return web.Response(status=200)

    runner, url = await serve_handler(handle)
    hook = WebhookNotifier(
        "hook", WebhookChannelConfig.model_validate({"type": "webhook", "url": url})
    )
    clock = FakeClock()
    delivery = Delivery(
        OutboxStore(db),
        {"hook": hook},
        Metrics(CollectorRegistry()),
        clock,
        settings=DeliverySettings(backoff=10.0),
    )
    (incident,) = open_incidents(db, 1)
    resolved = dataclasses.replace(incident, state=IncidentState.RESOLVED, resolved_at=clock.now())
    try:
        for n in (
            Notification(incident, Transition.OPENED, "hook", key="opened"),
            Notification(resolved, Transition.RESOLVED, "hook", key="resolved"),
        ):
            with delivery.store.transaction():  # as the daemon commits an incident change
                delivery.store.enqueue([n], clock.now(), supersede=True)
            await delivery.settle()  # the receiver is down: 500, retried later
            clock.advance(1.0)
        up = True
        clock.advance(60.0)  # past every retry
        await delivery.settle()
    finally:
        await hook.close()
        await runner.cleanup()
    assert received == [("resolved", "resolved")]
    assert delivery.store.counts() == {"superseded": 1, "delivered": 1}
