"""Escalation: page the next tier when an incident stays unacknowledged, re-page the current
one, and escalate an acknowledged incident that misses its priority's resolve target.

Deadlines live in the incidents table (``state/incidents.py`` EscalationStore) and are read
back each cycle, so a restart re-arms every one of them, and moving a step forward is written
in the same transaction as its timeline entry: no escalation is lost or fired twice.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace

from alertd.config.channels import ChannelsFile, EscalationStep
from alertd.config.types import format_duration
from alertd.incidents.routing import RoutePlan, notifications_for, route_plan
from alertd.ingest import external
from alertd.model import Incident, IncidentState, Notification, Transition
from alertd.notify.outbox import OutboxStore
from alertd.state.incidents import EscalationStore, IncidentStore

log = logging.getLogger(__name__)


def _policy(incident: Incident, config: ChannelsFile) -> tuple[list[EscalationStep], float | None]:
    plan = route_plan(incident, config)
    return plan.steps, plan.repeat


def paged_so_far(
    escalations: EscalationStore,
    incident: Incident,
    config: ChannelsFile,
    plan: RoutePlan | None = None,
) -> tuple[str, ...]:
    """The teams and channels paged about ``incident`` so far: who is paged at once, and each
    tier it was escalated to since. News such as its resolution goes to all of them, as
    Alertmanager sends a resolve to whoever had the alert: tier-2 and management paged
    about it must not think it still open, nor the team of the route it left when its
    level changed. ``plan``: ``incident``'s routing, if known."""
    state = escalations.get(incident.id)
    if state is not None and state.paged:
        return state.paged
    # an incident from before who was paged was recorded: the steps of its route now
    plan = route_plan(incident, config) if plan is None else plan
    if len(plan.steps) < 2:
        return plan.targets
    step = 0 if state is None else min(state.paged_step, len(plan.steps) - 1)
    targets = list(plan.targets)
    for later in plan.steps[1 : step + 1]:
        targets.extend(t for t in later.notify if t not in targets)
    return tuple(targets)


def resolved_by_hand_news(
    conn: sqlite3.Connection, resolved: Incident, config: ChannelsFile, now: float
) -> list[Notification]:
    """The "resolved" notifications of an incident resolved by hand (API, CLI, SMS): to every
    tier paged, a pushed alert's as Prometheus sent it; for an incident held back, to those
    it had paged before (none if it never paged)."""
    if resolved.suppressed_by is not None:
        news = held_back_resolve_news(EscalationStore(conn), resolved, config, now)
        return external.stored_sources(conn, news_where_pages_went(conn, news))
    news = news_to_everyone_paged(conn, resolved, Transition.RESOLVED, config, now)
    return external.stored_sources(conn, news)


def held_back_resolve_news(
    escalations: EscalationStore, resolved: Incident, config: ChannelsFile, now: float
) -> list[Notification]:
    """The "resolved" notifications of an incident a window, silence or parent held back: to
    whoever it had paged before it was (a silence added on a paging incident), nobody if it
    never paged."""
    state = escalations.get(resolved.id)
    if state is None or not state.paged:
        return []
    return notifications_for(resolved, Transition.RESOLVED, config, now, targets=state.paged)


def news_to_everyone_paged(
    conn: sqlite3.Connection,
    incident: Incident,
    transition: Transition,
    config: ChannelsFile,
    now: float,
) -> list[Notification]:
    """``transition``'s notifications to every tier paged about ``incident`` so far, where
    their pages went (``news_where_pages_went``)."""
    targets = paged_so_far(EscalationStore(conn), incident, config)
    notes = notifications_for(incident, transition, config, now, targets=targets)
    return news_where_pages_went(conn, notes)


def news_where_pages_went(
    conn: sqlite3.Connection, notes: list[Notification]
) -> list[Notification]:
    """``notes`` (news to every tier paged) sent where the incidents' pages went: to each
    channel a failover delivered them on, for the addresses it reached there (a WeCom group
    that got the pages while the DingTalk robot was broken must hear of the resolve:
    user-test finding), instead of to the channel that failed them, unless that channel
    reached those people itself since (they never saw the incident there; and a resolve
    to it that failed again would fail over a second time: verification finding).
    ``notes`` itself when no failover took any of their pages."""
    if not notes:
        return notes
    failed, reached = OutboxStore(conn).where_pages_went([n.incident.id for n in notes])
    if not failed:
        return notes
    out: list[Notification] = []
    for n in notes:
        seen = reached.get(n.incident.id, set())
        moved = {
            a for f in failed.get(n.incident.id, ()) if f.channel == n.channel for a in f.recipients
        }
        wanted = n.recipients or ("",)
        keep = tuple(a for a in wanted if a not in moved or (n.channel, a) in seen)
        if keep == wanted:
            out.append(n)
        elif keep:
            out.append(replace(n, recipients=tuple(a for a in keep if a)))
    covered = {(n.incident.id, n.channel, a) for n in out for a in n.recipients or ("",)}
    first = {n.incident.id: n for n in reversed(notes)}
    for incident_id, fallbacks in failed.items():
        base = first.get(incident_id)
        if base is None:
            continue
        for f in fallbacks:
            missing = tuple(a for a in f.to_recipients if (incident_id, f.to, a) not in covered)
            if not missing:
                continue
            covered.update((incident_id, f.to, a) for a in missing)
            out.append(
                replace(
                    base,
                    channel=f.to,
                    recipients=tuple(a for a in missing if a),
                    team=f.team,
                    key=f"{base.key}>{f.to}:{','.join(missing)}",  # as a failover's key
                )
            )
    return out


def first_deadlines(plan: RoutePlan, start: float, now: float) -> tuple[float | None, float | None]:
    """Return when an incident whose step 0 is paged at ``now`` escalates next (counted from
    ``start``) and when it is re-paged: what ``Escalator.arm_new`` stores."""
    steps, repeat = plan.steps, plan.repeat
    next_step = start + steps[1].after if len(steps) > 1 else None
    return next_step, now + repeat if repeat else None


class Escalator:
    """Arms escalation for new incidents and fires what is due."""

    def __init__(
        self, store: IncidentStore, escalations: EscalationStore, channels: ChannelsFile
    ) -> None:
        self.store = store
        self.escalations = escalations
        self.channels = channels

    def arm_new(self, incident: Incident, now: float, since: float | None = None) -> None:
        """Set the first deadlines of an incident whose step 0 is paged now; later steps count
        from ``since`` (default: when it opened)."""
        plan = route_plan(incident, self.channels)
        start = incident.opened_at if since is None else since
        next_step, next_repeat = first_deadlines(plan, start, now)
        self.escalations.arm(incident.id, 0, next_step, next_repeat)
        self.escalations.add_paged(incident.id, plan.targets)

    def page_again(self, incident: Incident, why: str, now: float) -> list[Notification]:
        """Page ``incident``'s first step again now, saying ``why``."""
        steps, _ = _policy(incident, self.channels)
        return self._page(incident, 0, steps, Transition.REPEAT, why, now) if steps else []

    def run(self, now: float) -> list[Notification]:
        """Fire every escalation due at ``now``; call inside ``store.transaction()``."""
        targets = self.channels.priorities.targets
        deadlines: dict[str, float] = {p: now - t.resolve_within for p, t in targets.items()}
        out: list[Notification] = []
        for incident_id in self.escalations.due(now, deadlines):
            incident = self.store.get(incident_id)
            state = self.escalations.get(incident_id)
            if incident is None or state is None:
                continue
            steps, repeat = _policy(incident, self.channels)
            if not steps:
                self.escalations.arm(incident_id, state.step, None, None, state.resolve_escalated)
                continue
            next_repeat = now + repeat if repeat else None
            if incident.state is IncidentState.ACKNOWLEDGED:
                step = min(state.step + 1, len(steps) - 1)
                target = next(t for p, t in targets.items() if p == incident.priority)
                why = f"not resolved within {format_duration(target.resolve_within)}"
                out += self._page(incident, step, steps, Transition.ESCALATED, why, now)
                self.escalations.arm(incident_id, step, None, None, resolve_escalated=True)
            elif state.next_escalation_at is not None and state.next_escalation_at <= now:
                step = min(state.step + 1, len(steps) - 1)
                why = f"not acknowledged within {format_duration(steps[step].after)}"
                out += self._page(incident, step, steps, Transition.ESCALATED, why, now)
                following = None
                if step + 1 < len(steps):
                    # on schedule from the opening; after a pause (suppressed, lapsed ack) the
                    # gap between steps is kept instead of firing the next one at once
                    gap = steps[step + 1].after - steps[step].after
                    following = max(incident.opened_at + steps[step + 1].after, now + gap)
                self.escalations.arm(incident_id, step, following, next_repeat)
            else:
                step = min(state.step, len(steps) - 1)
                out += self._page(
                    incident, step, steps, Transition.REPEAT, "still not acknowledged", now
                )
                self.escalations.arm(incident_id, state.step, state.next_escalation_at, next_repeat)
        return out

    def _page(
        self,
        incident: Incident,
        step: int,
        steps: list[EscalationStep],
        transition: Transition,
        why: str,
        now: float,
    ) -> list[Notification]:
        names = steps[step].notify
        kind = "escalated" if transition is Transition.ESCALATED else "repeated"
        detail = f"step {step + 1}: {', '.join(names)} paged ({why})"
        self.store.add_timeline(incident.id, now, kind, detail)
        self.escalations.add_paged(incident.id, names)
        log.info("incident #%d %s: %s", incident.id, kind, detail)
        return notifications_for(incident, transition, self.channels, now, targets=names)
