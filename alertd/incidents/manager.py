"""Alert events -> incidents: dedup by fingerprint, priority, state, timeline, notifications.

One call handles one evaluation's events in one transaction, so an incident change and its
timeline entries are never half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from alertd.config.channels import ChannelsFile
from alertd.config.types import format_duration
from alertd.incidents.escalation import Escalator
from alertd.incidents.maintenance import Window, covering
from alertd.incidents.priority import priority_of
from alertd.incidents.routing import notifications_for
from alertd.model import (
    TARGET_UP_METRIC,
    AlertEvent,
    EventKind,
    Incident,
    IncidentState,
    Level,
    Notification,
    Transition,
)
from alertd.state.incidents import EscalationStore, IncidentStore

log = logging.getLogger(__name__)


def _why_quiet(suppressed_by: str) -> str:
    if suppressed_by.startswith("parent "):
        return f"{suppressed_by} is down: no page"
    return f"in {suppressed_by}: recorded, no page"


def _value(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


class IncidentManager:
    """Applies alert events to the incident store and says who must hear about it."""

    def __init__(self, store: IncidentStore, channels: ChannelsFile) -> None:
        self.store = store
        self.escalator = Escalator(store, EscalationStore(store.conn), channels)
        self.channels = channels
        # maintenance windows and silences in force: set by the daemon (config + database)
        self.windows: Callable[[float], Sequence[Window]] = lambda now: ()
        self._down: set[str] | None = None
        self._windows_now: list[Window] | None = None

    @property
    def channels(self) -> ChannelsFile:
        return self._channels

    @channels.setter
    def channels(self, channels: ChannelsFile) -> None:  # a reload swaps routes for both
        self._channels = channels
        self.escalator.channels = channels

    def escalate(self, now: float) -> list[Notification]:
        """Page incidents whose maintenance window or silence ended while they still fail,
        let lapsed acknowledgements go, then fire the escalations due at ``now``; call inside
        ``store.transaction()``."""
        out: list[Notification] = []
        expiry = self.channels.incidents.ack_expires_after
        if expiry is not None:
            for incident in self.store.expired_acks(now - expiry):
                incident = self.store.unacknowledge(incident, now)
                self.store.add_timeline(
                    incident.id,
                    now,
                    "ack_expired",
                    f"acknowledged by {incident.acknowledged_by} more than "
                    f"{format_duration(expiry)} ago and not resolved: escalation resumes",
                )
                self.escalator.arm_new(incident, now, since=now)
        windows = self.windows(now)
        for incident in self.store.suppressed_by_window():
            if covering(windows, incident.label_map, now) is not None:
                continue
            incident = self.store.set_suppressed(incident, None)
            self.store.add_timeline(
                incident.id, now, "unsuppressed", "the window is over and this still fails"
            )
            self.escalator.arm_new(incident, now, since=now)
            out.extend(notifications_for(incident, Transition.OPENED, self.channels, now))
        return out + self.escalator.run(now)

    def apply(self, events: Sequence[AlertEvent], now: float) -> list[Notification]:
        """Apply ``events``; return the notifications the changes call for.

        Call inside ``store.transaction()`` together with the rule-state write, so the two
        never disagree after a crash.
        """
        self._down = None  # looked up at most once per batch (a storm is one batch)
        self._windows_now = None
        out: list[Notification] = []
        changes: list[tuple[Incident, Transition, Level | None]] = []
        released: list[str] = []
        for event in events:
            change = self._apply_one(event, now)
            if change is None:
                continue
            changes.append(change)
            if event.metric == TARGET_UP_METRIC and change[1] is Transition.RESOLVED:
                released.append(dict(event.labels).get("instance", ""))
        # a parent that went down in this same batch suppresses children whatever the order
        down = self.store.down_targets(TARGET_UP_METRIC) if changes else set()
        for incident, transition, previous in changes:
            parent = dict(incident.labels).get("parent")
            if (
                transition is Transition.OPENED
                and incident.suppressed_by is None
                and parent in down
            ):
                self._suppress(incident, f"parent {parent}", now)
                continue
            if incident.suppressed_by is None:
                out.extend(notifications_for(incident, transition, self.channels, now, previous))
        for parent in released:
            out.extend(self._release_children(parent, now))
        return out

    def _suppress(self, incident: Incident, why: str, now: float) -> None:
        self.store.set_suppressed(incident, why)
        self._no_escalation(incident)
        self.store.add_timeline(incident.id, now, "suppressed", _why_quiet(why))

    def _no_escalation(self, incident: Incident) -> None:
        self.escalator.escalations.arm(incident.id, 0, None, None)

    def _release_children(self, parent: str, now: float) -> list[Notification]:
        """The parent is back: children still failing page now, as if just opened."""
        out: list[Notification] = []
        for child in self.store.suppressed_children(parent):
            child = self.store.set_suppressed(child, None)
            self.store.add_timeline(
                child.id, now, "unsuppressed", f"parent {parent} is back and this still fails"
            )
            self.escalator.arm_new(child, now, since=now)
            out.extend(notifications_for(child, Transition.OPENED, self.channels, now))
        return out

    def _open(self, event: AlertEvent, level: Level, now: float) -> Incident:
        """Open an incident for ``event``: quiet if its parent is down or a window covers it."""
        store = self.store
        priority = priority_of(event.labels, level, self.channels.priorities)
        labels = dict(event.labels)
        parent = labels.get("parent")
        suppressed = f"parent {parent}" if parent and parent in self._down_targets() else None
        if suppressed is None and self._windows_now is None:
            self._windows_now = list(self.windows(now))
        window = None if suppressed else covering(self._windows_now or (), labels, now)
        if window is not None:
            suppressed = window.label()
        draft = Incident(
            id=0,
            fingerprint=event.fingerprint,
            rule=event.rule,
            metric=event.metric,
            labels=event.labels,
            level=level,
            priority=priority,
            state=IncidentState.OPEN,
            summary=event.summary,
            value=event.value,
            opened_at=now,
            updated_at=now,
            suppressed_by=suppressed,
        )
        opened = store.open(draft)
        if event.metric == TARGET_UP_METRIC and self._down is not None:
            self._down.add(labels.get("instance", ""))
        if suppressed is None:
            self.escalator.arm_new(opened, now)
        store.add_timeline(
            opened.id,
            now,
            "opened",
            f"{level.label} {priority}: {event.summary} (value {_value(event.value)})",
        )
        log.info(
            "incident #%d opened %s %s: %s%s",
            opened.id,
            priority,
            level.label,
            event.summary,
            f" (quiet: {suppressed})" if suppressed else "",
        )
        if suppressed:
            store.add_timeline(opened.id, now, "suppressed", _why_quiet(suppressed))
        return opened

    def _down_targets(self) -> set[str]:
        if self._down is None:
            self._down = self.store.down_targets(TARGET_UP_METRIC)
        return self._down

    def _apply_one(
        self, event: AlertEvent, now: float
    ) -> tuple[Incident, Transition, Level | None] | None:
        """Apply one event; return the changed incident, why, and its previous level."""
        store = self.store
        if event.flapping or event.kind in (EventKind.FLAPPING_START, EventKind.FLAPPING_STOP):
            return self._flapping(event, now)
        current = store.active(event.fingerprint)
        if event.kind is EventKind.RESOLVED:
            if current is None:
                return None  # resolved by hand earlier; nothing left to do
            resolved = store.resolve(current, now, event.value)
            store.add_timeline(
                current.id, now, "resolved", f"{event.summary} (value {_value(event.value)})"
            )
            log.info("incident #%d resolved: %s", current.id, event.summary)
            return resolved, Transition.RESOLVED, None
        assert event.level is not None
        priority = priority_of(event.labels, event.level, self.channels.priorities)
        if current is None:
            reopen_within = self.channels.incidents.reopen_within
            recent = (
                store.recently_resolved(event.fingerprint, now - reopen_within)
                if reopen_within
                else None
            )
            if recent is None:
                return self._open(event, event.level, now), Transition.OPENED, None
            reopened = store.reopen(recent, now)
            if reopened.level != event.level:
                reopened = store.update_level(
                    reopened, event.level, priority, event.summary, event.value, now
                )
            store.add_timeline(
                reopened.id, now, "reopened", f"fires again: {event.summary} ({event.level.label})"
            )
            self.escalator.arm_new(reopened, now, since=now)
            log.info("incident #%d reopened: %s", reopened.id, event.summary)
            return reopened, Transition.REOPENED, None
        if current.level == event.level:
            return None  # a repeat FIRING (e.g. after restart) for an incident already open
        changed = store.update_level(
            current, event.level, priority, event.summary, event.value, now
        )
        store.add_timeline(
            current.id,
            now,
            "level_changed",
            f"{current.level.label} -> {event.level.label}, {current.priority} -> {priority}: "
            f"{event.summary}",
        )
        log.info(
            "incident #%d level %s -> %s (%s)",
            current.id,
            current.level.label,
            event.level.label,
            priority,
        )
        return changed, Transition.LEVEL_CHANGED, current.level

    def _flapping(
        self, event: AlertEvent, now: float
    ) -> tuple[Incident, Transition, Level | None] | None:
        """Flapping: say so when it starts and stops; record the transitions in between."""
        store = self.store
        current = store.active(event.fingerprint)
        level = event.level or event.previous_level or Level.MINOR
        if event.kind is EventKind.FLAPPING_START:
            if current is None:
                current = self._open(event, level, now)
            store.add_timeline(
                current.id, now, "flapping", "started: changing state too often to page each time"
            )
            log.info("incident #%d flapping", current.id)
            return current, Transition.FLAPPING_START, None
        if event.kind is EventKind.FLAPPING_STOP:
            if current is None:
                return None
            if event.level is None:
                current = store.resolve(current, now, event.value)
                store.add_timeline(current.id, now, "flapping", "stopped: recovered")
                store.add_timeline(current.id, now, "resolved", event.summary)
            else:
                store.add_timeline(current.id, now, "flapping", f"stopped: {level.label}")
            return current, Transition.FLAPPING_STOP, None
        # a transition while flapping: on the timeline, not on anyone's phone
        if current is None:
            if event.kind is not EventKind.RESOLVED:
                opened = self._open(event, level, now)
                store.add_timeline(opened.id, now, "transition", "opened while flapping")
            return None
        shown = event.level.label if event.level else "ok"
        store.add_timeline(current.id, now, "transition", f"{shown} (flapping: not paged)")
        return None

    def record_delivery(self, notification: Notification, outcome: str, now: float) -> None:
        """Put one delivery outcome on the incident's timeline."""
        who = ", ".join(notification.recipients) or "-"
        with self.store.transaction():
            self.store.add_timeline(
                notification.incident.id,
                now,
                "notification",
                f"{notification.transition.value} via {notification.channel} to {who}: {outcome}",
                actor=notification.channel,
            )
