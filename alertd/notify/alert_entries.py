"""The alerts a notification is about, one ``AlertEntry`` each, as Alertmanager's webhook
lists them in ``alerts[]``: a plain incident is one alert; a grouped incident carries its
members, and a digest every incident it stands for (``Notification.entries``)."""

from __future__ import annotations

from collections.abc import Iterable

from alertd.model import CARRIED_MAX, AlertEntry, Notification
from alertd.notify.render import format_value


def of_incident(n: Notification) -> AlertEntry:
    """The one alert a plain incident's notification is about."""
    inc = n.incident
    resolved = n.about_resolved
    labels = dict(inc.labels)
    labels.setdefault("alertname", inc.rule)
    labels.setdefault("severity", inc.level.label)
    return AlertEntry(
        status="resolved" if resolved else "firing",
        labels=tuple(labels.items()),
        starts_at=inc.opened_at,
        ends_at=(inc.resolved_at or inc.updated_at) if resolved else None,
        fingerprint=inc.fingerprint,
        annotations=(("summary", inc.summary), ("value", format_value(inc.value))),
    )


def entries_of(n: Notification) -> tuple[AlertEntry, ...]:
    """Every alert ``n`` is about (at least one)."""
    return n.entries or (of_incident(n),)


def gathered(notes: Iterable[Notification]) -> tuple[tuple[AlertEntry, ...], int]:
    """The alerts of ``notes`` together (a digest): at most ``CARRIED_MAX`` entries, and how
    many more there are."""
    entries: list[AlertEntry] = []
    more = 0
    for n in notes:
        more += n.more_alerts
        for e in entries_of(n):
            if len(entries) < CARRIED_MAX:
                entries.append(e)
            else:
                more += 1
    return tuple(entries), more
