"""``alertd notify test CHANNEL``: send one test message through the real delivery path.

The message goes through the same outbox, notifier, error classification and retries as a
real page (in a throwaway state database, so a running daemon never sees it), and every
attempt's outcome is printed. Failover is off: the point is to test this one channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from alertd.clock import SystemClock
from alertd.config.load import Config
from alertd.incidents.routing import member_addresses, one_each
from alertd.metrics import Metrics
from alertd.model import Incident, IncidentState, Level, Notification, Transition, make_labels
from alertd.notify.delivery import Delivery, DeliverySettings
from alertd.notify.outbox import OutboxStore
from alertd.notify.registry import LogInstead, build_notifiers
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore


def default_recipients(config: Config, channel: str) -> tuple[str, ...]:
    """The members of every team that uses ``channel``, addressed for its type."""
    kind = config.channels.channels[channel].type
    found: list[str] = []
    for team in config.channels.teams.values():
        if channel in team.channels:
            found += [a for a in member_addresses(team.members, kind) if a not in found]
    return tuple(found)


async def send_test(
    config: Config, channel: str, to: Sequence[str], within: float
) -> tuple[str, list[str]]:
    """Send a test message via ``channel``; return ("delivered", "not configured" or
    "failed", report lines)."""
    notifiers = build_notifiers(config.channels)
    notifier = notifiers[channel]
    lines: list[str] = []
    if isinstance(notifier, LogInstead):
        lines.append(f"channel {channel} {notifier.why}: the message goes to the log instead")
    recipients = tuple(to) or default_recipients(config, channel)
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="alertd-notify-test-") as tmp:
        conn = connect(Path(tmp))
        try:
            incidents = IncidentStore(conn)
            now = clock.now()
            with incidents.transaction():
                incident = incidents.open(
                    Incident(
                        0,
                        "alertd-test",
                        "alertd_test",
                        "alertd_test",
                        make_labels({"instance": socket.gethostname()}),
                        Level.MINOR,
                        "P4",
                        IncidentState.OPEN,
                        f"Test message from alertd via {channel}: if you read this, it works",
                        None,
                        now,
                        now,
                    )
                )
                # incident #0, which no real incident is: a receiver that files messages by
                # incident id (a ticket system) does not take the test for incident #1
                conn.execute("UPDATE incidents SET id = 0 WHERE id = ?", (incident.id,))
                incident = dataclasses.replace(incident, id=0)
            key = f"test.{channel}.{now:.3f}"
            n = Notification(incident, Transition.TEST, channel, recipients, key=key)
            kind = config.channels.channels[channel].type
            notes = one_each(n, kind, lambda r: f"{key}.{r}")  # as a page: an SMS a phone
            store = OutboxStore(conn)
            delivery = Delivery(
                store,
                {channel: notifier},
                Metrics(CollectorRegistry()),
                clock,
                settings=DeliverySettings(
                    max_age=within, backoff=1.0, max_backoff=10.0, send_timeout=within
                ),
            )
            lost: list[str] = []  # recipients it failed for good for (a refusal, a failure)

            def failed_for(
                _n: Notification, failed: tuple[str, ...], _why: str
            ) -> list[Notification]:
                lost.extend(failed or (f"{channel}'s own destination",))
                return []

            delivery.failover = failed_for
            with store.transaction():
                store.enqueue(notes, now)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while loop.time() < deadline:
                await delivery.settle(within=max(0.1, deadline - loop.time()))
                if not ({"pending", "sending"} & set(store.counts())):
                    break
                due = store.next_due_at() or clock.now()
                await asyncio.sleep(min(max(0.05, due - clock.now()), deadline - loop.time()))
            await delivery.stop(drain_seconds=1.0)
            to_text = ", ".join(recipients) or "the channel's own destination"
            lines.insert(0, f"test message via {channel} to {to_text}")
            for outcome, detail, to_one in conn.execute(
                "SELECT a.outcome, a.detail, o.recipients FROM outbox_attempts a "
                "JOIN outbox o ON o.id = a.outbox_id ORDER BY a.id"
            ):
                whom = f"{', '.join(json.loads(to_one))}: " if len(notes) > 1 else ""
                lines.append(f"  {whom}{outcome}: {detail}")
            state = store.counts()
            # every intent (a recipient retried alone is one more) delivered, nobody refused
            delivered = set(state) == {"delivered"} and not lost
            if not delivered:
                gave_up = f" (no more retries: --timeout {within:g}s is up)"
                who = f" to {', '.join(dict.fromkeys(lost))}" if lost else ""
                lines.append(f"not delivered{who}" + (gave_up if "pending" in state else ""))
        finally:
            conn.close()
            for each in notifiers.values():
                await each.close()
    if isinstance(notifier, LogInstead):
        return "not configured", lines
    return ("delivered" if delivered else "failed"), lines
