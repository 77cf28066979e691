"""Rate limits: a storm through a limited channel goes out as what the limit allows plus one
digest of the rest; nothing is dropped, and every held incident learns how it went out."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify import render
from alertd.notify.dispatch import Dispatcher
from alertd.notify.ratelimit import Bucket, Limiter


class Recording:
    name = "robot"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, n: Notification) -> None:
        self.sent.append(n)

    async def close(self) -> None:
        return None


def notification(i: int, channel: str = "robot", to: tuple[str, ...] = ()) -> Notification:
    incident = Incident(
        i,
        f"f{i}",
        "cpu",
        "cpu",
        make_labels({"instance": f"h{i}"}),
        Level.MAJOR,
        "P2",
        IncidentState.OPEN,
        f"cpu high on h{i}",
        99.0,
        0.0,
        0.0,
    )
    return Notification(incident, Transition.OPENED, channel, to, key=f"{i}")


def test_bucket_refills_at_its_rate() -> None:
    b = Bucket(rate=1.0, burst=2.0)
    assert b.take(0.0)
    assert b.take(0.0)
    assert not b.take(0.5)
    assert b.take(1.5)


async def test_storm_is_the_limit_plus_one_digest_never_a_drop() -> None:
    clock = FakeClock()
    robot = Recording()
    recorded: list[tuple[int, str]] = []
    metrics = Metrics(CollectorRegistry())
    dispatcher = Dispatcher(
        {"robot": robot},
        metrics,
        lambda n, outcome: recorded.append((n.incident.id, outcome)),
        limiter=Limiter({"robot": 20.0}, {}),  # a DingTalk/WeCom robot: 20 a minute
        monotonic=clock.monotonic,
    )
    await dispatcher.deliver([notification(i) for i in range(57)])
    assert len(robot.sent) == 20
    assert (
        metrics.registry.get_sample_value("alertd_notifications_held_total", {"channel": "robot"})
        == 37
    )
    await dispatcher.flush_digests()
    assert len(robot.sent) == 20  # no token yet: the digest waits
    clock.advance(3.0)  # one token back (20 a minute)
    await dispatcher.flush_digests()
    assert len(robot.sent) == 21
    digest = robot.sent[-1]
    assert len(digest.digest) == 37
    assert render.subject(digest).startswith("[digest of 37]")
    body = render.text_body(digest)
    assert "Held back by the rate limit (37" in body
    assert "#20 [P2] opened major: cpu high on h20" in body  # the oldest held one is listed
    delivered = {i for i, outcome in recorded if outcome.startswith("in a digest of 37: sent")}
    assert delivered == set(range(20, 57))  # every held incident's timeline says so
    await dispatcher.flush_digests()
    assert len(robot.sent) == 21  # nothing held: no empty digest


async def test_per_recipient_limit_holds_only_the_busy_person() -> None:
    clock = FakeClock()
    mail = Recording()
    dispatcher = Dispatcher(
        {"mail": mail},
        Metrics(CollectorRegistry()),
        lambda n, outcome: None,
        limiter=Limiter({}, {"mail": 2.0}),
        monotonic=clock.monotonic,
    )
    await dispatcher.deliver([notification(i, "mail", ("wang@example.com",)) for i in range(5)])
    assert len(mail.sent) == 2
    clock.advance(30.0)
    await dispatcher.flush_digests()
    assert len(mail.sent) == 3
    assert mail.sent[-1].recipients == ("wang@example.com",)
    assert len(mail.sent[-1].digest) == 3
