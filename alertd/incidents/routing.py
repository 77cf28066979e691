"""Routes: which teams and channels, and which recipients on them, hear about an incident.

The first matching route (and any before it that say ``continue``) decides. Its escalation
steps say who is paged at once and who later; a plain ``notify`` is a single step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

from alertd.config.channels import ChannelsFile, EscalationStep, Member, Route
from alertd.evaluate.thresholds import matches
from alertd.incidents.priority import LEVEL_NAMES
from alertd.model import Incident, Level, Notification, Transition
from alertd.notify.channel_types import MEMBER_ADDRESS, ONE_MESSAGE_PER_RECIPIENT


def route_fields(
    labels: Mapping[str, str], priority: str, level: Level, rule: str
) -> dict[str, str]:
    """What a route's ``match`` sees: the labels, plus priority, level and rule."""
    return {**labels, "priority": priority, "level": LEVEL_NAMES[level], "rule": rule}


def matching_routes(incident: Incident, config: ChannelsFile) -> list[Route]:
    """Return the routes ``incident`` matches: up to and including the first without
    ``continue``."""
    return [config.routes[i] for i in _matching(incident, config)]


def _matching(incident: Incident, config: ChannelsFile) -> list[int]:
    """``matching_routes`` as indexes into ``config.routes``."""
    fields = route_fields(incident.label_map, incident.priority, incident.level, incident.rule)
    found: list[int] = []
    for index, route in enumerate(config.routes):
        if matches(route.match, fields):
            found.append(index)
            if not route.continue_:
                break
    return found


def escalation_steps(incident: Incident, config: ChannelsFile) -> list[EscalationStep]:
    """Return the steps of the policy that escalates ``incident`` (the last matching route's:
    routes before it said ``continue`` and only page at once)."""
    routes = matching_routes(incident, config)
    return routes[-1].steps if routes else []


def teams_paged(incident: Incident, config: ChannelsFile) -> list[str]:
    """Return the teams that any escalation tier of ``incident``'s routes pages, in route
    and tier order: what "the incident's teams" means to every filter (API and board)."""
    teams: list[str] = []
    for route in matching_routes(incident, config):
        for step in route.steps:
            teams.extend(t for t in step.notify if t in config.teams and t not in teams)
    return teams


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """What the routes decide for one incident: who is paged at once, and the escalation
    policy (the last matching route's steps and re-page interval)."""

    targets: tuple[str, ...]
    steps: list[EscalationStep]
    repeat: float | None


def route_plan(
    incident: Incident,
    config: ChannelsFile,
    route_steps: Sequence[list[EscalationStep]] | None = None,
) -> RoutePlan:
    """Return ``incident``'s routing: the routes are matched once for both first page and
    escalation. ``route_steps``: each route's ``steps`` built ahead, in route order (a plain
    ``notify`` route builds a pydantic model at each ``Route.steps``); read, never changed.
    """
    indexes = _matching(incident, config)
    if not indexes:
        return RoutePlan((), [], None)
    targets: list[str] = []
    steps: list[EscalationStep] = []
    for index in indexes:
        steps = config.routes[index].steps if route_steps is None else route_steps[index]
        targets.extend(t for t in steps[0].notify if t not in targets)
    return RoutePlan(tuple(targets), steps, config.routes[indexes[-1]].repeat)


def route_targets(incident: Incident, config: ChannelsFile) -> list[str]:
    """Return the team and channel names paged at once, in route order."""
    return list(route_plan(incident, config).targets)


def notifications_for(
    incident: Incident,
    transition: Transition,
    config: ChannelsFile,
    key_time: float,
    previous_level: Level | None = None,
    targets: Sequence[str] | None = None,
) -> list[Notification]:
    """Return one notification per channel, with the recipients of every team routed there
    (each member's address for that channel type: email, phone, IM id); a channel type that
    takes one recipient per message (SMS) gets one notification per recipient.

    ``targets`` defaults to who is paged at once. An incident no route matches goes to
    every ``log`` channel, so it is never silent.
    """
    recipients: dict[str, list[str]] = {}
    teams: dict[str, list[str]] = {}
    if targets is None:
        targets = route_plan(incident, config).targets
    for target in targets:
        team = config.teams.get(target)
        if team is None:
            if target in config.channels:
                recipients.setdefault(target, [])
            continue
        for channel in team.channels:
            bucket = recipients.setdefault(channel, [])
            addresses = member_addresses(team.members, config.channels[channel].type)
            bucket.extend(a for a in addresses if a not in bucket)
            teams.setdefault(channel, []).append(target)
    if not recipients:
        recipients = {n: [] for n, c in config.channels.items() if c.type == "log"}
    key = f"{incident.id}.{transition.value}"
    out = []
    for channel, people in recipients.items():
        base = Notification(
            incident=incident,
            transition=transition,
            channel=channel,
            recipients=tuple(people),
            key=f"{key}.{channel}.{key_time:.3f}",
            previous_level=previous_level,
            team=",".join(teams.get(channel, ())),
        )
        key_of = partial(_recipient_key, f"{key}.{channel}", key_time)
        out += one_each(base, config.channels[channel].type, key_of)
    return out


def _recipient_key(stem: str, key_time: float, recipient: str) -> str:
    return f"{stem}.{recipient}.{key_time:.3f}"


def one_each(
    n: Notification, channel_type: str, key_of: Callable[[str], str]
) -> list[Notification]:
    """``n``, or one copy per recipient (keyed ``key_of(recipient)``) for a channel type whose
    provider takes one recipient a message (SMS)."""
    if channel_type in ONE_MESSAGE_PER_RECIPIENT and len(n.recipients) > 1:
        return [replace(n, recipients=(r,), key=key_of(r)) for r in n.recipients]
    return [n]


def member_addresses(members: Sequence[Member], channel_type: str) -> list[str]:
    """Return the members' addresses for a channel type (none for a channel that has its
    own destination, such as a robot or the log)."""
    field = MEMBER_ADDRESS.get(channel_type, "")
    if not field:
        return []
    return [a for m in members if (a := getattr(m, field))]


@dataclass(frozen=True, slots=True)
class Told:
    """Where the news a notification brings has gone (``OutboxStore.told``): each channel,
    with the addresses it went to there ("" for a channel without addresses); and whether
    newer news of the incident went to the same teams since (then the old news goes
    nowhere more)."""

    reached: Mapping[str, set[str]]
    newer: bool = False


def fallbacks_for(
    n: Notification,
    failed: tuple[str, ...],
    why: str,
    config: ChannelsFile,
    told: Callable[[Notification], Told],
) -> list[Notification]:
    """Return where a notification goes when it failed for good for ``failed``: its
    channel's failover (``failover_for``; ``commit_failover`` leaves out, with a timeline
    line, each address the same news reached there already) or, when a reload removed its
    channel, the team's channels now (``reroute_for``, with ``told(n)``)."""
    if n.channel in config.channels:  # (the caller leaves out whom it told already)
        return failover_for(n, failed, why, config)
    return reroute_for(n, failed, config, told(n))


def not_told_yet(copies: list[Notification], told: Told) -> list[Notification]:
    """``copies`` less each address that the same news went to on that channel already
    (a route naming both ``sms`` and ``mail``, with ``sms`` failing over to ``mail``: the
    mail went out once, directly). A channel without addresses is ``""``."""
    out = []
    for c in copies:
        reached = told.reached.get(c.channel, set())
        if not c.recipients:
            if "" not in reached:
                out.append(c)
            continue
        need = tuple(a for a in c.recipients if a not in reached)
        if need == c.recipients:
            out.append(c)
        elif need:
            out.append(replace(c, recipients=need))
    return out


def reroute_for(
    n: Notification, failed: tuple[str, ...], config: ChannelsFile, told: Told
) -> list[Notification]:
    """Return where a notification for a channel the config no longer has goes now: the
    current channels of the teams it was for, to the members it failed for (``failed``:
    their addresses; none: the whole team), each address that the same news has not
    reached there already. A channel renamed or replaced in a team takes over its pages; one
    just dropped takes none (the team's other channels had them).

    Not re-routed: old news (``told.newer``), a digest (its pages went to their incidents'
    other channels one by one), and a page to a channel that a route or escalation step
    names itself (no team: nothing tells what replaced it)."""
    if n.digest or not n.team or told.newer:
        return []
    names = [name for name in n.team.split(",") if name in config.teams]
    lost = set(failed)
    recipients: dict[str, list[str]] = {}
    teams: dict[str, list[str]] = {}
    for name in names:
        team = config.teams[name]
        members = [m for m in team.members if not lost or lost & _addresses_of(m)]
        for channel in team.channels:
            kind = config.channels[channel].type
            reached = told.reached.get(channel, set())
            if MEMBER_ADDRESS.get(kind):
                need = [a for a in member_addresses(members, kind) if a not in reached]
                if not need:
                    continue
            elif reached or channel in recipients:
                continue  # the team's shared channel had it (or has it from another team)
            else:
                need = []
            bucket = recipients.setdefault(channel, [])
            bucket.extend(a for a in need if a not in bucket)
            teams.setdefault(channel, []).append(name)
    out = []
    for channel, people in recipients.items():
        base = replace(n, channel=channel, recipients=tuple(people), team=",".join(teams[channel]))
        if config.channels[channel].type in ONE_MESSAGE_PER_RECIPIENT and len(people) > 1:
            out += [replace(base, recipients=(p,)) for p in people]
        else:
            out.append(base)
    return out


def _addresses_of(member: Member) -> set[str]:
    return {a for a in (member.email, member.phone, member.im) if a}


def failover_for(
    n: Notification, failed: tuple[str, ...], why: str, config: ChannelsFile
) -> list[Notification]:
    """Return where a notification goes when it failed for good on its channel for the
    ``failed`` recipients: the channel's ``failover``, addressed to the same team members."""
    target = config.failover.get(n.channel)
    if target is None or target not in config.channels or n.channel not in config.channels:
        return []
    old_type = config.channels[n.channel].type
    new_type = config.channels[target].type
    members = [
        m
        for name in n.team.split(",")
        if (team := config.teams.get(name)) is not None
        for m in team.members
    ]
    old_field = MEMBER_ADDRESS.get(old_type, "")
    if old_field:  # only the members the failed addresses belong to
        members = [m for m in members if getattr(m, old_field) in failed]
    addresses = list(dict.fromkeys(member_addresses(members, new_type)))
    base = replace(n, channel=target, recipients=tuple(addresses))
    if new_type in ONE_MESSAGE_PER_RECIPIENT and len(addresses) > 1:
        return [replace(base, recipients=(a,), key=f"{n.key}.{a}") for a in addresses]
    return [base]
