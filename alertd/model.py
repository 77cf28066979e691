"""The shapes that flow through the pipeline, one per concept.

collect -> ``Sample`` -> evaluate -> ``AlertEvent`` -> incidents -> ``Incident`` +
``Notification`` -> notify.  Nothing here imports from the rest of alertd.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

# Every poll reports this per target: 1 collected, 0 down (after its soft failures).
TARGET_UP_METRIC = "alertd_target_up"

# Labels are a sorted tuple of (name, value) pairs: hashable, cheap to compare, stable order.
Labels = tuple[tuple[str, str], ...]


def make_labels(mapping: Mapping[str, str]) -> Labels:
    """Return the canonical (sorted, hashable) form of a label mapping."""
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def merge_labels(base: Labels, extra: Mapping[str, str]) -> Labels:
    """Return ``base`` with ``extra`` added; ``extra`` wins on a name clash."""
    merged = dict(base)
    merged.update(extra)
    return make_labels(merged)


class Level(enum.IntEnum):
    """How bad a breach is; higher is worse."""

    MINOR = 1
    MAJOR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return _LEVEL_LABELS[self]  # not name.lower(): every message renders it, often twice

    @classmethod
    def parse(cls, text: str) -> Level:
        return cls[text.upper()]


_LEVEL_LABELS = {level: level.name.lower() for level in Level}


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of one series.

    ``value`` is ``None`` when the collection failed (UNKNOWN): the evaluator holds the
    series' state instead of treating the gap as a recovery.
    """

    metric: str
    labels: Labels
    value: float | None
    ts: float

    @property
    def unknown(self) -> bool:
        return self.value is None


class EventKind(enum.Enum):
    """What happened to one rule on one series."""

    FIRING = "firing"
    LEVEL_CHANGED = "level_changed"
    RESOLVED = "resolved"
    FLAPPING_START = "flapping_start"  # the series changes state too often to page each time
    FLAPPING_STOP = "flapping_stop"  # it settled; ``level`` is where (None: recovered)


def fingerprint(rule: str, labels: Labels) -> str:
    """Return the stable identity of one rule on one series (dedup key)."""
    text = rule + "\x00" + "\x00".join(f"{k}={v}" for k, v in labels)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rule's state change for one series."""

    kind: EventKind
    rule: str
    metric: str
    labels: Labels
    level: Level | None  # None only for RESOLVED
    previous_level: Level | None
    value: float | None
    summary: str
    ts: float
    fingerprint: str
    flapping: bool = False  # a transition while flapping: record it, don't page it


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One rule's state on one series, as persisted between evaluations and restarts."""

    fingerprint: str
    rule: str
    metric: str
    labels: Labels
    firing: Level | None
    firing_since: float | None
    since: tuple[float | None, float | None, float | None]  # minor, major, critical

    @property
    def pending(self) -> bool:
        return self.firing is None and any(s is not None for s in self.since)


class IncidentState(enum.Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Transition(enum.Enum):
    """Why a notification is sent."""

    OPENED = "opened"
    REOPENED = "reopened"  # the same problem again soon after it resolved
    LEVEL_CHANGED = "level_changed"
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # the next tier is paged: unacknowledged, or not resolved in time
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"
    REPEAT = "repeat"  # the current tier is paged again: still unacknowledged
    GROUP_CHANGED = "group_changed"  # alerts joined or left a group (its group_interval)
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Incident:
    """The unit a human handles: one deduplicated problem with a priority and a history."""

    id: int
    fingerprint: str
    rule: str
    metric: str
    labels: Labels
    level: Level
    priority: str  # "P1".."P4"
    state: IncidentState
    summary: str
    value: float | None
    opened_at: float
    updated_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    suppressed_by: str | None = None  # e.g. "parent core-sw1": recorded, but does not page
    reopened_at: float | None = None  # when it last fired again soon after resolving
    resolved_by: str | None = None  # who resolved it by hand (None: its source recovered)

    @property
    def targets_from(self) -> float:
        """When its response and resolve targets started counting: its reopening, if any."""
        return self.opened_at if self.reopened_at is None else self.reopened_at

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert a notification is about, as Alertmanager's webhook lists it in ``alerts[]``:
    a member of a grouped incident, or each incident of a digest."""

    status: str  # "firing" or "resolved"
    labels: Labels
    starts_at: float
    ends_at: float | None = None  # when it resolved
    fingerprint: str = ""
    annotations: Labels = ()
    generator_url: str = ""  # a pushed alert's source (Prometheus' graph of its expression)


# member alerts (lines and entries) one notification carries: each intent stores them, so a
# group of 10,000 would store them in every page of every channel; the rest are counted
# (``Notification.more_alerts``), as the webhook's ``truncatedAlerts`` counts past its cap
CARRIED_MAX = 1000


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one incident transition to one channel (and its recipients)."""

    incident: Incident
    transition: Transition
    channel: str
    recipients: tuple[str, ...] = ()
    key: str = field(default="")  # idempotency key: incident, transition, channel, time
    previous_level: Level | None = None  # for LEVEL_CHANGED
    # a digest: the notifications a rate limit held back, one line each; ``incident`` is the
    # latest of them
    digest: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()  # a grouped incident's member alerts, one line each
    # the alerts of a grouped incident or a digest, one entry each (webhook ``alerts[]``)
    entries: tuple[AlertEntry, ...] = ()
    # alerts past those carried in ``alerts`` and ``entries`` (a group or digest larger than
    # ``CARRIED_MAX``): counted, not stored in every intent
    more_alerts: int = 0
    team: str = ""  # the team whose members are the recipients ("" : routed to the channel)
    url: str = ""  # the incident's page, when the HTTP listener has a public URL configured
    ack_url: str = ""  # a signed, expiring link that acknowledges the incident (email)

    @property
    def about_resolved(self) -> bool:
        """Whether this is news of a resolved incident (its alerts' status: resolved)."""
        return (
            self.transition is Transition.RESOLVED or self.incident.state is IncidentState.RESOLVED
        )

    @property
    def alert_count(self) -> int:
        """How many member alerts a grouped incident has (``alerts`` is capped)."""
        return len(self.alerts) + self.more_alerts if self.alerts else 0

    def with_entries(self, entries: tuple[AlertEntry, ...]) -> Notification:
        """This notification about ``entries`` (not ``dataclasses.replace``: its field
        introspection costs a storm of pushed alerts a tenth of its intake)."""
        return Notification(
            incident=self.incident,
            transition=self.transition,
            channel=self.channel,
            recipients=self.recipients,
            key=self.key,
            previous_level=self.previous_level,
            digest=self.digest,
            alerts=self.alerts,
            entries=entries,
            more_alerts=self.more_alerts,
            team=self.team,
            url=self.url,
            ack_url=self.ack_url,
        )
