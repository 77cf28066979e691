"""S8: a storm through a DingTalk robot never exceeds the robot's 20 a minute, and nothing is
lost: the outbox, the provider's default limit and digests, against a real HTTP server that
enforces the limit the way DingTalk does (errcode 130101 past 20 in a minute)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.delivery import Delivery
from alertd.notify.im.config import DingtalkChannelConfig
from alertd.notify.im.limits import DEFAULT_RATE_LIMITS
from alertd.notify.im.notifiers import im_notifier
from alertd.notify.outbox import OutboxStore
from alertd.notify.ratelimit import Limiter
from alertd.state.incidents import IncidentStore

pytestmark = pytest.mark.integration


class Robot:
    """A DingTalk robot: 20 messages in any minute (of the shared fake clock), then 130101."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.accepted: list[tuple[float, str]] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock.monotonic()
        recent = [t for t, _ in self.accepted if t > now - 60.0]
        body = await request.json()
        if len(recent) >= 20:
            self.refused += 1
            return web.json_response({"errcode": 130101, "errmsg": "send too fast"})
        self.accepted.append((now, body["text"]["content"]))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def robot() -> AsyncIterator[tuple[Robot, str, FakeClock]]:
    clock = FakeClock()
    fake = Robot(clock)
    app = web.Application()
    app.router.add_post("/robot/send", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}/robot/send?access_token=t0ken", clock
    await runner.cleanup()


async def test_a_storm_stays_under_the_robot_limit_and_loses_nothing(
    db: sqlite3.Connection, robot: tuple[Robot, str, FakeClock]
) -> None:
    fake, url, clock = robot
    store = IncidentStore(db)
    with store.transaction():
        incidents = [
            store.open(
                Incident(
                    0,
                    f"f{i}",
                    "link",
                    "ifOperStatus",
                    make_labels({"ifIndex": str(i)}),
                    Level.MAJOR,
                    "P2",
                    IncidentState.OPEN,
                    f"port {i} down",
                    2.0,
                    0.0,
                    0.0,
                )
            )
            for i in range(100)
        ]
    notifier = im_notifier(
        "robot", DingtalkChannelConfig.model_validate({"type": "dingtalk", "url": url})
    )
    delivery = Delivery(
        OutboxStore(db),
        {"robot": notifier},
        Metrics(CollectorRegistry()),
        clock,
        limiter=Limiter({"robot": DEFAULT_RATE_LIMITS["dingtalk"]}),
    )
    notes = [Notification(i, Transition.OPENED, "robot", key=f"k{i.id}") for i in incidents]
    try:
        with delivery.store.transaction():
            delivery.store.enqueue(notes[:60], clock.now())
        await delivery.settle()
        clock.advance(30.0)
        with delivery.store.transaction():  # more arrive while the first are held
            delivery.store.enqueue(notes[60:], clock.now())
        for _ in range(10):
            await delivery.settle()
            clock.advance(30.0)
    finally:
        await notifier.close()
    assert fake.refused == 0  # never over the limit
    times = [t for t, _ in fake.accepted]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 60.0) <= 20
    digests = [text for _, text in fake.accepted if "[digest of" in text]
    assert len(fake.accepted) == 20 + len(digests)
    assert digests  # the rest went out folded, not dropped
    assert delivery.store.counts() == {"delivered": 20 + len(digests), "digested": 80}
    told = {
        r[0]
        for r in db.execute(
            "SELECT incident_id FROM timeline "
            "WHERE detail LIKE '%: sent' OR detail LIKE '%in a digest of%: sent'"
        )
    }
    assert told == {i.id for i in incidents}  # every incident's timeline says how it went out
