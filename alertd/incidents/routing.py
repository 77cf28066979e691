"""Routes: which channels, and which recipients on them, hear about an incident."""

from __future__ import annotations

from alertd.config.channels import ChannelsFile
from alertd.evaluate.thresholds import matches
from alertd.model import Incident, Level, Notification, Transition


def route_targets(incident: Incident, config: ChannelsFile) -> list[str]:
    """Return the team and channel names the routes send ``incident`` to, in route order."""
    fields = {**incident.label_map, "priority": incident.priority, "level": incident.level.label}
    targets: list[str] = []
    for route in config.routes:
        if matches(route.match, fields):
            targets.extend(t for t in route.notify if t not in targets)
            if not route.continue_:
                break
    return targets


def notifications_for(
    incident: Incident,
    transition: Transition,
    config: ChannelsFile,
    key_time: float,
    previous_level: Level | None = None,
) -> list[Notification]:
    """Return one notification per channel, with the recipients of every team routed there.

    An incident no route matches goes to every ``log`` channel, so it is never silent.
    """
    recipients: dict[str, list[str]] = {}
    for target in route_targets(incident, config):
        team = config.teams.get(target)
        if team is None:
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
