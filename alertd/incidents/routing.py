"""Routes: which teams and channels, and which recipients on them, hear about an incident.

The first matching route (and any before it that say ``continue``) decides. Its escalation
steps say who is paged at once and who later; a plain ``notify`` is a single step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alertd.config.channels import ChannelsFile, EscalationStep, Route
from alertd.evaluate.thresholds import matches
from alertd.model import Incident, Level, Notification, Transition


def route_fields(
    labels: Mapping[str, str], priority: str, level: Level, rule: str
) -> dict[str, str]:
    """What a route's ``match`` sees: the labels, plus priority, level and rule."""
    return {**labels, "priority": priority, "level": level.label, "rule": rule}


def matching_routes(incident: Incident, config: ChannelsFile) -> list[Route]:
    """Return the routes ``incident`` matches: up to and including the first without
    ``continue``."""
    fields = route_fields(incident.label_map, incident.priority, incident.level, incident.rule)
    found: list[Route] = []
    for route in config.routes:
        if matches(route.match, fields):
            found.append(route)
            if not route.continue_:
                break
    return found


def escalation_steps(incident: Incident, config: ChannelsFile) -> list[EscalationStep]:
    """Return the steps of the policy that escalates ``incident`` (the last matching route's:
    routes before it said ``continue`` and only page at once)."""
    routes = matching_routes(incident, config)
    return routes[-1].steps if routes else []


def route_targets(incident: Incident, config: ChannelsFile) -> list[str]:
    """Return the team and channel names paged at once, in route order."""
    targets: list[str] = []
    for route in matching_routes(incident, config):
        targets.extend(t for t in route.steps[0].notify if t not in targets)
    return targets


def notifications_for(
    incident: Incident,
    transition: Transition,
    config: ChannelsFile,
    key_time: float,
    previous_level: Level | None = None,
    targets: Sequence[str] | None = None,
) -> list[Notification]:
    """Return one notification per channel, with the recipients of every team routed there.

    ``targets`` defaults to who is paged at once. An incident no route matches goes to
    every ``log`` channel, so it is never silent.
    """
    recipients: dict[str, list[str]] = {}
    for target in route_targets(incident, config) if targets is None else targets:
        team = config.teams.get(target)
        if team is None:
            if target in config.channels:
                recipients.setdefault(target, [])
            continue
        emails = [m.email for m in team.members if m.email]
        for channel in team.channels:
            bucket = recipients.setdefault(channel, [])
            bucket.extend(e for e in emails if e not in bucket)
    if not recipients:
        recipients = {n: [] for n, c in config.channels.items() if c.type == "log"}
    return [
        Notification(
            incident=incident,
            transition=transition,
            channel=channel,
            recipients=tuple(people) if config.channels[channel].type == "email" else (),
            key=f"{incident.id}.{transition.value}.{channel}.{key_time:.3f}",
            previous_level=previous_level,
        )
        for channel, people in recipients.items()
    ]
