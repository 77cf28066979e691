"""The outbox driving the real email channel against a real SMTP server (aiosmtpd).

S5 of the reliability notes: 4xx then recovery is delivered exactly once; 550 is not retried
and fails over (recorded); a closed port then an open one is delivered once it is up; one of
two recipients refused goes to the failover channel for that person only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from alertd.clock import FakeClock
from alertd.config.channels import ChannelsFile
from alertd.incidents.routing import failover_for, notifications_for
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.email.notifier import EmailNotifier
from alertd.notify.log.config import LogChannelConfig
from alertd.notify.log.notifier import LogNotifier
from alertd.notify.outbox import OutboxStore
from alertd.state.incidents import IncidentStore
from tests.conftest import SmtpServer

pytestmark = pytest.mark.integration


def channels(port: int) -> ChannelsFile:
    return ChannelsFile.model_validate(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": port,
                    "starttls": False,
                    "from": "alertd@example.com",
                    "timeout": 2,
                },
                "log": {"type": "log"},
            },
            "teams": {
                "tier1": {
                    "members": [
                        {"name": "Wang", "email": "wang@example.com"},
                        {"name": "Li", "email": "li@example.com"},
                    ],
                    "channels": ["mail"],
                }
            },
            "failover": {"mail": "log"},
            "routes": [{"notify": ["tier1"]}],
        }
    )


def one_incident(conn: sqlite3.Connection) -> Incident:
    store = IncidentStore(conn)
    with store.transaction():
        return store.open(
            Incident(
                0,
                "f",
                "cpu",
                "cpu",
                make_labels({"instance": "web1"}),
                Level.CRITICAL,
                "P1",
                IncidentState.OPEN,
                "CPU 97% on web1",
                97.0,
                1000.0,
                1000.0,
            )
        )


class Harness:
    def __init__(self, conn: sqlite3.Connection, port: int) -> None:
        self.conn = conn
        self.clock = FakeClock()
        self.config = channels(port)
        mail = self.config.channels["mail"]
        assert mail.type == "email"
        self.mail = EmailNotifier("mail", mail)
        self.log = LogNotifier("log", LogChannelConfig(type="log"))
        self.delivery = Delivery(
            OutboxStore(conn),
            {"mail": self.mail, "log": self.log},
            Metrics(CollectorRegistry()),
            self.clock,
            settings=DeliverySettings(backoff=5.0, max_age=600.0),
            failover=lambda n, failed, why: failover_for(n, failed, why, self.config),
        )
        self.incident = one_incident(conn)

    def commit(self) -> Notification:
        (n,) = notifications_for(self.incident, Transition.OPENED, self.config, 0.0)
        with self.delivery.store.transaction():
            self.delivery.store.enqueue([n], self.clock.now())
        return n

    async def run_for(self, seconds: float, step: float = 5.0) -> None:
        for _ in range(int(seconds / step)):
            await self.delivery.settle()
            self.clock.advance(step)
        await self.delivery.settle()

    def outcomes(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT outcome FROM outbox_attempts ORDER BY id")]

    def timeline(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT detail FROM timeline ORDER BY id")]


@pytest.fixture
async def harness_for(
    db: sqlite3.Connection,
) -> Iterator[Callable[[int], Harness]]:  # type: ignore[misc]
    made: list[Harness] = []

    def make(port: int) -> Harness:
        made.append(Harness(db, port))
        return made[-1]

    yield make
    for h in made:
        await h.mail.close()


async def test_a_busy_server_then_recovery_delivers_exactly_once(
    smtp_server: SmtpServer, harness_for: Callable[[int], Harness]
) -> None:
    smtp_server.handler.script["MAIL"] = ["451 4.3.0 try again later", "421 4.3.2 shutting down"]
    h = harness_for(smtp_server.port)
    h.commit()
    await h.run_for(60)
    assert len(smtp_server.messages) == 1
    assert h.outcomes()[-1] == "ok"
    assert h.outcomes().count("ok") == 1
    assert "retryable" in h.outcomes()
    assert h.delivery.store.counts() == {"delivered": 1}


async def test_550_is_not_retried_and_fails_over(
    smtp_server: SmtpServer, harness_for: Callable[[int], Harness]
) -> None:
    smtp_server.handler.script["MAIL"] = ["550 5.7.1 sender rejected"]
    h = harness_for(smtp_server.port)
    h.commit()
    await h.run_for(30)
    assert smtp_server.messages == []
    assert h.outcomes() == ["permanent", "ok"]  # the mail, then the log channel
    assert any("failing over to log" in line for line in h.timeline())
    assert h.delivery.store.counts() == {"failed": 1, "delivered": 1}


async def test_a_closed_port_then_a_server_delivers_once(
    closed_port: int,
    start_smtp_server: Callable[[int], SmtpServer],
    harness_for: Callable[[int], Harness],
) -> None:
    h = harness_for(closed_port)
    h.commit()
    await h.run_for(10)
    assert h.outcomes()
    assert set(h.outcomes()) == {"retryable"}
    server = start_smtp_server(closed_port)
    await h.run_for(120)
    assert len(server.messages) == 1
    assert h.outcomes()[-1] == "ok"


async def test_one_refused_recipient_fails_over_alone(
    smtp_server: SmtpServer, harness_for: Callable[[int], Harness]
) -> None:
    smtp_server.handler.refuse.add("li@example.com")
    h = harness_for(smtp_server.port)
    h.commit()
    await h.run_for(10)
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ("wang@example.com",)
    assert any("failed for li@example.com: failing over to log" in x for x in h.timeline())
    assert h.delivery.store.counts() == {"delivered": 2}  # the mail, and Li's log fallback
