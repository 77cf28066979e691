"""What the daemon does when the outside world talks back to it.

Alerts pushed by Prometheus, a provider's delivery status, an on-call engineer's "ACK 42"
reply or click on an acknowledge link: each becomes an incident or outbox change committed in
one transaction, with the notifications it causes committed beside it (the outbox), so a
crash right after never loses them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from alertd.api.ops import Action, Outcome
from alertd.config.load import Config
from alertd.incidents.actions import acknowledge_within, add_comment, resolve_within
from alertd.incidents.escalation import resolved_by_hand_news
from alertd.incidents.manager import IncidentManager
from alertd.ingest import external
from alertd.ingest.alertmanager import PostedAlert
from alertd.model import AlertEvent
from alertd.notify.outbox import Intent, OutboxStore
from alertd.notify.sms.hooks import status_advances
from alertd.state.maintenance import WindowMatchers, add_window, remove_window

log = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({"failed", "undelivered"})


class DeliveryControl(Protocol):
    """What inbound actions ask of delivery: ``Delivery`` in-process, or the daemon's
    ``DeliveryWorker``."""

    def wake(self) -> None: ...

    def fail_over(
        self, intent: Intent, recipients: tuple[str, ...], why: str, now: float
    ) -> int: ...


@dataclass(slots=True)
class Inbound:
    """The inbound actions, bound to the running daemon's parts."""

    manager: IncidentManager
    outbox: OutboxStore
    delivery: DeliveryControl
    config: Callable[[], Config]
    now: Callable[[], float]
    applied: Callable[[Sequence[AlertEvent]], None]  # counts events, refreshes gauges
    reloader: Callable[[], Awaitable[bool]]
    reload_problems: Callable[[], Sequence[str]] = lambda: ()

    # -- Prometheus ------------------------------------------------------------------------
    def receive_alerts(self, alerts: list[PostedAlert]) -> None:
        """Alerts from ``POST /api/v2/alerts``: incident changes and their notifications in
        one transaction (raises on a database error, and the sender gets a 503)."""
        now = self.now()
        store = self.manager.store
        with store.transaction():
            events = external.receive(store.conn, alerts, now)
            notifications = external.with_sources(
                self.manager.apply(events, now), {a.fingerprint: a for a in alerts}
            )
            notifications = external.member_sources(store.conn, notifications)
            self.outbox.enqueue(notifications, now, supersede=True)
        self.applied(events)
        if notifications:
            self.delivery.wake()

    # -- responders (alertd.api.ops.Operations) ---------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        return self.manager.store.conn

    def current_config(self) -> Config:
        return self.config()

    def wall_now(self) -> float:
        return self.now()

    def respond(
        self, action: Action, incident_id: int, who: str, how: str, comment: str | None = None
    ) -> Outcome:
        """Acknowledge or resolve an incident for a person.

        A resolve by hand notifies like any resolve does (the notification commits with it)."""
        store = self.manager.store
        incident = store.get(incident_id)
        if incident is None:
            return Outcome("not_found", f"no incident #{incident_id}")
        now = self.now()
        if action == "ack":  # decided under the write lock: a moment's race is a conflict too
            with store.transaction():
                text, done = acknowledge_within(store, incident, who, comment, now, how)
            return Outcome("ok" if done else "conflict", text)
        with store.transaction():  # the resolve and its notifications commit together
            text, resolved = resolve_within(store, incident, who, comment, now, how)
            if resolved is None:  # resolved already (read under the write lock)
                return Outcome("conflict", text)
            notes = resolved_by_hand_news(store.conn, resolved, self.config().channels, now)
            self.outbox.enqueue(notes, now, supersede=True)
        if notes:
            self.delivery.wake()
        return Outcome("ok", text)

    def comment(self, incident_id: int, who: str, text: str) -> Outcome:
        store = self.manager.store
        incident = store.get(incident_id)
        if incident is None:
            return Outcome("not_found", f"no incident #{incident_id}")
        return Outcome("ok", add_comment(store, incident, who, text, self.now()))

    def add_window(
        self,
        kind: Literal["maintenance", "silence"],
        matchers: WindowMatchers,
        start: float,
        end: float,
        reason: str,
        owner: str,
    ) -> int:
        with self.manager.store.transaction():
            return add_window(
                self.conn,
                kind=kind,
                matchers=matchers,
                start=start,
                end=end,
                reason=reason,
                owner=owner,
                now=self.now(),
            )

    def remove_window(self, kind: Literal["maintenance", "silence"], window_id: int) -> bool:
        with self.manager.store.transaction():
            return remove_window(self.conn, window_id, kind, self.now())

    async def reload(self) -> bool:
        return await self.reloader()

    def reload_rejected_for(self) -> Sequence[str]:
        return self.reload_problems()

    def member_by_phone(self, phone: str) -> str | None:
        """Return the name of the team member with this phone number, if any."""
        for team in self.config().channels.teams.values():
            for member in team.members:
                if member.phone and member.phone == phone:
                    return member.name
        return None

    def sms_reply(self, phone: str, action: str, incident_id: int) -> str:
        """An SMS "ACK 42" / "RESOLVE 42": act for the phone's owner, if they are on a team."""
        name = self.member_by_phone(phone)
        if name is None:
            log.warning("SMS %s #%d from %s: not a team member's phone", action, incident_id, phone)
            return "This number is not on an alertd team; nothing was changed."
        return self.respond(
            "ack" if action == "ack" else "resolve", incident_id, name, "sms"
        ).message

    # -- provider status --------------------------------------------------------------------
    def provider_status(self, provider_id: str, status: str, error_code: str) -> bool:
        """A delivery status callback: store it if it moves forward; a message that failed
        after the provider took it fails over. Return whether the message is known."""
        now = self.now()
        with self.outbox.transaction():
            intent = self.outbox.by_provider_id(provider_id)
            if intent is None:
                log.info("status %s for unknown message %s", status, provider_id)
                return False
            if not status_advances(intent.provider_status, status):
                return True  # late or repeated: never let "sent" override "delivered"
            self.outbox.set_provider_status(intent.id, status, now)
            n = intent.notification
            detail = f"{n.transition.value} via {n.channel}: provider says {status}"
            if error_code:
                detail += f" (error {error_code})"
            failed = status in FAILED_STATUSES
            if failed and self.outbox.has_newer_news(intent):
                detail += "; not failed over: newer news of the incident is out"
                failed = False
            self.manager.store.add_timeline(n.incident.id, now, "notification", detail, n.channel)
            if failed:  # the same failover as a failed send
                why = f"provider says {status} {error_code}".strip()
                self.delivery.fail_over(intent, n.recipients, why, now)
        if failed:
            self.delivery.wake()
        return True

    def seen_hook(self, token: str) -> bool:
        with self.outbox.transaction():
            return self.outbox.seen_hook(token, self.now())

    def forget_hook(self, token: str) -> None:
        with self.outbox.transaction():
            self.outbox.conn.execute("DELETE FROM hook_replays WHERE token = ?", (token,))
