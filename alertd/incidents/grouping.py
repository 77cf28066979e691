"""Grouping: alerts alike in a route's ``group_by`` labels join one incident.

A FIRING alert whose first matching route has ``group_by`` does not open an incident of its
own: it joins the group's (fingerprint ``group:<route index>`` over the ``group_by`` labels),
so 500 interfaces down on one switch are one incident and one page. The group incident keeps
the labels its members share that routing and priority look at (``group_by``, the route's
match keys, ``criticality``, ``parent``), so it routes like its members.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertd.config.channels import ChannelsFile, Route
from alertd.evaluate.thresholds import matches
from alertd.incidents.priority import priority_of
from alertd.incidents.routing import route_fields
from alertd.model import AlertEntry, AlertEvent, Labels, Level, fingerprint, make_labels
from alertd.state.incidents import GroupMember

# kept on a group incident when its first member has them: priority and dependencies use them
_KEPT = ("criticality", "parent")


@dataclass(frozen=True, slots=True)
class Group:
    """The group one alert belongs to."""

    index: int  # the route's position in channels.yaml
    route: Route
    fingerprint: str
    labels: Labels


def any_grouping(config: ChannelsFile) -> bool:
    return any(route.group_by for route in config.routes)


def group_for(event: AlertEvent, level: Level, config: ChannelsFile) -> Group | None:
    """Return the group ``event`` joins: its first matching route's, if that route groups."""
    labels = dict(event.labels)
    priority = priority_of(event.labels, level, config.priorities)
    fields = route_fields(labels, priority, level, event.rule)
    for index, route in enumerate(config.routes):
        if not matches(route.match, fields):
            continue
        if not route.group_by:
            return None
        key = make_labels({name: labels.get(name, "") for name in route.group_by})
        kept = {*route.group_by, *route.match, *_KEPT}
        group_labels = make_labels({k: v for k, v in labels.items() if k in kept})
        return Group(index, route, fingerprint(f"group:{index}", key), group_labels)
    return None


def label_text(labels: Labels) -> str:
    return ",".join(f"{k}={v}" for k, v in labels) or "(no labels)"


def member_entry(member: GroupMember) -> AlertEntry:
    """One member alert as a webhook lists it (``alerts[]``)."""
    labels = dict(member.labels)
    labels.setdefault("alertname", member.rule)
    labels.setdefault("severity", member.level.label)
    resolved = member.state == "resolved"
    return AlertEntry(
        status=member.state,
        labels=tuple(labels.items()),
        starts_at=member.since,
        # a member resolved before resolved_at was recorded: its start is all we know
        ends_at=(member.resolved_at or member.since) if resolved else None,
        fingerprint=member.fingerprint,
    )


def member_line(member: GroupMember) -> str:
    """One member alert for a notification body: ``firing major ifdown ifIndex=3,...``."""
    return f"{member.state} {member.level.label} {member.rule} {label_text(member.labels)}"
