"""Alert events -> incidents: dedup by fingerprint, priority, state, timeline, notifications.

One call handles one evaluation's events in one transaction, so an incident change and its
timeline entries are never half-written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from alertd.config.channels import ChannelsFile, Route
from alertd.config.types import format_duration
from alertd.incidents.escalation import (
    Escalator,
    first_deadlines,
    held_back_resolve_news,
    news_to_everyone_paged,
    news_where_pages_went,
    paged_so_far,
)
from alertd.incidents.grouping import (
    Group,
    any_grouping,
    group_for,
    label_text,
    member_entry,
    member_line,
)
from alertd.incidents.maintenance import Window, covering
from alertd.incidents.priority import LEVEL_NAMES, priority_of
from alertd.incidents.routing import RoutePlan, notifications_for, route_plan
from alertd.ingest.external import EXTERNAL_METRIC
from alertd.model import (
    CARRIED_MAX,
    TARGET_UP_METRIC,
    AlertEvent,
    EventKind,
    Incident,
    IncidentState,
    Labels,
    Level,
    Notification,
    Transition,
)
from alertd.state.incidents import EscalationStore, IncidentStore

log = logging.getLogger(__name__)
VERBOSE_BATCH = 10  # up to this many events in a batch, each incident change is logged
# what routing looks at in an incident (route_fields): incidents alike in it route alike
_RouteKey = tuple[Labels, str, Level, str]


def window_view(labels: dict[str, str], rule: str) -> dict[str, str]:
    """What a maintenance window or silence matches on: the labels, plus ``rule`` and
    ``alertname`` (the rule's name unless the alert has its own, as pushed alerts do), so
    ``--match rule=cpu`` and an amtool silence on ``alertname=cpu`` both work."""
    return {"rule": rule, "alertname": rule, **labels}


def _why_quiet(suppressed_by: str) -> str:
    if suppressed_by.startswith("parent "):
        return f"{suppressed_by} is down: no page"
    return f"in {suppressed_by}: recorded, no page"


def _value(event: AlertEvent) -> str:
    """`` (value 92.5)`` for a timeline line; nothing for a pushed alert, which carries no
    value (for a rule's event, "unknown" says that its value was missing)."""
    if event.value is None:
        return "" if event.metric == EXTERNAL_METRIC else " (value unknown)"
    return f" (value {event.value:g})"


# news of an incident that every tier paged about it hears, not only the first
NEWS_FOR_EVERY_TIER = frozenset({Transition.RESOLVED, Transition.LEVEL_CHANGED})
# pages to every tier that list a group's alerts as they are: a group update waiting is moot
_LISTS_THE_GROUP = NEWS_FOR_EVERY_TIER
# the transitions that page an incident's routes for the first time
_FIRST_PAGES = frozenset({Transition.OPENED, Transition.REOPENED})


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
        # the windows in force when every incident they held back was found still covered
        # (``_window_ends``), and whether anything was suppressed since
        self._covered_under: list[Window] | None = None
        self._began_under: list[Window] | None = None
        self._suppressed_since = False
        self._quiet: set[int] = set()  # grouped incidents changed in this batch, not to page
        # groups a member of which resolved in this batch: their level follows their worst
        # firing member once the batch is applied, so a group whose members all resolve in
        # one batch keeps the level (and priority) it was paged at
        self._relevel: set[int] = set()
        self._plans: dict[_RouteKey, RoutePlan] = {}  # routing decided in this batch
        self._grouping = False  # does any route group alerts (asked once per batch)
        self._each_level = logging.INFO

    @property
    def channels(self) -> ChannelsFile:
        return self._channels

    @channels.setter
    def channels(self, channels: ChannelsFile) -> None:  # a reload swaps routes for both
        self._channels = channels
        self.escalator.channels = channels
        self._route_steps = [route.steps for route in channels.routes]  # built once per config

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
                # the first tier hears of it now, not at the next repeat or step (user test:
                # nobody was told for the length of a step, the one who acked included)
                if incident.suppressed_by is None:
                    why = f"the acknowledgement by {incident.acknowledged_by} lapsed"
                    out.extend(self.escalator.page_again(incident, why, now))
        in_force = [w for w in self.windows(now) if w.active_at(now)]
        out.extend(self._window_ends(in_force, now))
        self._windows_begin(in_force, now)
        out.extend(self._first_pages(now))
        out.extend(self._group_updates(now))
        return self._with_alerts(out + self.escalator.run(now))

    def _window_ends(self, in_force: list[Window], now: float) -> list[Notification]:
        """Page incidents that a window or silence held back and none covers any more.

        Reading every suppressed incident costs ~90 ms with 10,000 of them, and this runs at
        each cycle and deadline: skipped while the windows in force are those of the last
        read that released nothing, and nothing was suppressed since, because then the
        same windows cover the same incidents."""
        if in_force == self._covered_under and not self._suppressed_since:
            return []
        self._suppressed_since = False
        out: list[Notification] = []
        for incident in self.store.suppressed_by_window():
            if covering(in_force, window_view(incident.label_map, incident.rule), now) is not None:
                continue
            incident = self.store.set_suppressed(incident, None)
            self.store.add_timeline(
                incident.id, now, "unsuppressed", "the window is over and this still fails"
            )
            self.escalator.arm_new(incident, now, since=now)
            out.extend(notifications_for(incident, Transition.OPENED, self.channels, now))
        # a release rolled back with its transaction must be read again: remembered only
        # when there was none
        self._covered_under = None if out else in_force
        return out

    def _windows_begin(self, in_force: list[Window], now: float) -> None:
        """Hold back the unacknowledged incidents a window or silence that came into force
        since the last look covers: no escalation or repeat page while it lasts, and when it
        ends while they still fail they page again (``_window_ends``). User test: a silence
        added on a paging incident left it escalating to management.

        Read only when the windows in force change; remembered only when nothing was held
        back, so a hold whose transaction rolled back is tried again."""
        if in_force == self._began_under:
            return
        held = 0
        for incident in self.store.find([IncidentState.OPEN], limit=-1) if in_force else ():
            if incident.suppressed_by is not None:
                continue
            window = covering(in_force, window_view(incident.label_map, incident.rule), now)
            if window is not None:
                self._suppress(incident, window.label(), now)
                held += 1
        self._began_under = None if held else in_force

    def _first_pages(self, now: float) -> list[Notification]:
        """Send the first page of groups whose ``group_wait`` is over; arm escalation then."""
        out: list[Notification] = []
        for incident in self.store.first_pages_due(now):
            self.store.set_first_page(incident.id, None)
            if incident.suppressed_by is not None or incident.state is not IncidentState.OPEN:
                continue  # suppressed meanwhile, or acknowledged before anyone was paged
            firing, _ = self.store.firing_members(incident.id)
            self.store.add_timeline(
                incident.id, now, "paged", f"group wait over: {firing} alert(s) firing"
            )
            self.escalator.arm_new(incident, now, since=now)
            out.extend(notifications_for(incident, Transition.OPENED, self.channels, now))
        return out

    def _with_alerts(self, notes: list[Notification]) -> list[Notification]:
        """Fill in the member alerts of grouped incidents."""
        if not notes:
            return notes
        members = self.store.members([n.incident.id for n in notes])
        if not members:
            return notes
        carried = {i: ms[:CARRIED_MAX] for i, ms in members.items()}
        lines = {i: tuple(member_line(m) for m in ms) for i, ms in carried.items()}
        entries = {i: tuple(member_entry(m) for m in ms) for i, ms in carried.items()}
        return [
            replace(
                n,
                alerts=lines[i],
                entries=entries[i],
                more_alerts=len(members[i]) - len(carried[i]),
            )
            if (i := n.incident.id) in lines
            else n
            for n in notes
        ]

    def apply(self, events: Sequence[AlertEvent], now: float) -> list[Notification]:
        """Apply ``events``; return the notifications the changes call for.

        Call inside ``store.transaction()`` together with the rule-state write, so the two
        never disagree after a crash.
        """
        # one INFO line per incident change for a few; in a storm one summary line instead
        # (a log line per incident was a fifth of the cost of absorbing 10,000 alerts)
        self._each_level = logging.INFO if len(events) <= VERBOSE_BATCH else logging.DEBUG
        self._down = None  # looked up at most once per batch (a storm is one batch)
        self._windows_now = None
        self._quiet = set()
        self._relevel = set()
        self._plans = {}
        self._grouping = any_grouping(self.channels)
        # the batch's unresolved incidents in one SELECT, its timeline in one executemany
        with self.store.batch(event.fingerprint for event in events):
            out = self._apply_batch(events, now)
        self._plans = {}
        return self._with_alerts(out)

    def _apply_batch(self, events: Sequence[AlertEvent], now: float) -> list[Notification]:
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
        for group_id in sorted(self._relevel):
            group, worst = self.store.get(group_id), self.store.worst_firing(group_id)
            if group is None or worst is None or group.state is IncidentState.RESOLVED:
                continue
            if (change := self._group_level(group, worst, now)) is not None:
                changes.append(change)
        # a parent that went down in this same batch suppresses children whatever the order
        down = self.store.down_targets(TARGET_UP_METRIC) if changes else set()
        news: list[Notification] = []  # to every tier paged: and where failovers took pages
        for incident, transition, previous in changes:
            if self._grouping and transition in _LISTS_THE_GROUP:
                self.store.clear_group_update(incident.id)  # this page says it all
            parent = dict(incident.labels).get("parent")
            if (
                transition is Transition.OPENED
                and incident.suppressed_by is None
                and parent in down
            ):
                self._suppress(incident, f"parent {parent}", now)
                continue
            if transition is Transition.RESOLVED and incident.suppressed_by is not None:
                # held back after it had paged (a silence added since): those paged hear
                # that it is over, as they would have without the window
                notes = held_back_resolve_news(
                    self.escalator.escalations, incident, self.channels, now
                )
                out += notes
                news += notes
                continue
            if incident.suppressed_by is None and incident.id not in self._quiet:
                plan = self._plan(incident)
                targets = plan.targets
                if not targets and transition in _FIRST_PAGES:
                    self._unrouted(incident, now)
                if transition in NEWS_FOR_EVERY_TIER:
                    targets = paged_so_far(
                        self.escalator.escalations, incident, self.channels, plan
                    )
                if transition is Transition.LEVEL_CHANGED:  # its route now pages them too
                    targets = tuple(dict.fromkeys((*targets, *plan.targets)))
                    self.escalator.escalations.add_paged(incident.id, plan.targets)
                    self._follow_new_policy(incident, previous, plan, now)
                notes = notifications_for(
                    incident, transition, self.channels, now, previous, targets
                )
                out += notes
                if transition in NEWS_FOR_EVERY_TIER:
                    news += notes
        where = news_where_pages_went(self.store.conn, news)
        if where is not news:  # a failover took some of their pages elsewhere: follow them
            sent_as_is = {id(n) for n in news}
            out = [n for n in out if id(n) not in sent_as_is] + where
        for parent in released:
            out.extend(self._release_children(parent, now))
        if self._each_level != logging.INFO and changes:
            counts = Counter(transition.value for _, transition, _ in changes)
            self._say(
                logging.INFO,
                "%d alert events: %s",
                len(events),
                ", ".join(f"{n} incident(s) {what}" for what, n in sorted(counts.items())),
            )
        return out

    def _unrouted(self, incident: Incident, now: float) -> None:
        """Say on its timeline, and in the log, that no route matches ``incident``: its pages
        go to the log channels alone, if there are any (user test: a typo in a route's
        ``match`` sent every P1 to the log, and nothing said why)."""
        logs = [name for name, c in self.channels.channels.items() if c.type == "log"]
        where = f"told the log ({', '.join(logs)}) only" if logs else "nobody is told"
        self.store.add_timeline(incident.id, now, "routing", f"no route matches it: {where}")
        self._say(logging.WARNING, "incident #%d matches no route: %s", incident.id, where)

    def _say(self, level: int, message: str, *args: object) -> None:
        """Log what happened to an incident once it is committed: never for a write that
        rolls back (and is tried again, saying it again)."""
        self.store.after_commit(lambda: log.log(level, message, *args))

    def _follow_new_policy(
        self, incident: Incident, previous: Level | None, plan: RoutePlan, now: float
    ) -> None:
        """A level change that moved an unacknowledged incident to a route with other
        escalation steps: it escalates by those from their first step, paged now (the old
        step index means nothing there)."""
        if previous is None or incident.state is not IncidentState.OPEN:
            return
        before = replace(
            incident,
            level=previous,
            priority=priority_of(incident.labels, previous, self.channels.priorities),
        )
        if self._plan(before).steps == plan.steps:
            return
        self.escalator.arm_new(incident, now, since=now)
        later = (
            f"step 2 in {format_duration(plan.steps[1].after)}"
            if len(plan.steps) > 1
            else "it has no later step"
        )
        self.store.add_timeline(
            incident.id,
            now,
            "escalation",
            f"its level moved it to another route: escalation starts over at step 1 "
            f"({', '.join(plan.targets) or '-'}, paged now); {later}",
        )

    def _plan(self, incident: Incident) -> RoutePlan:
        """Route ``incident`` once per batch: arming its escalation and paging it agree."""
        key = (incident.labels, incident.priority, incident.level, incident.rule)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = route_plan(incident, self.channels, self._route_steps)
        return plan

    def _suppress(self, incident: Incident, why: str, now: float) -> None:
        self.store.set_suppressed(incident, why)
        self._suppressed_since = True
        if incident.id in self._quiet:
            self.store.set_first_page(incident.id, None)  # released later pages at once
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

    def _open(
        self, event: AlertEvent, level: Level, now: float, priority: str | None = None
    ) -> Incident:
        """Open an incident for ``event``: quiet if its parent is down or a window covers it.
        ``priority`` is ``level``'s for the event, if the caller has it already."""
        store = self.store
        if priority is None:
            priority = priority_of(event.labels, level, self.channels.priorities)
        labels = dict(event.labels)
        parent = labels.get("parent")
        suppressed = f"parent {parent}" if parent and parent in self._down_targets() else None
        if suppressed is None and self._windows_now is None:
            self._windows_now = list(self.windows(now))
        window = None
        if suppressed is None and self._windows_now:
            window = covering(self._windows_now, window_view(labels, event.rule), now)
        if window is not None:
            suppressed = window.label()
            self._suppressed_since = True
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
        # escalation armed in the INSERT itself (Escalator.arm_new's deadlines, step 0)
        next_step, next_repeat = None, None
        paged: tuple[str, ...] = ()
        if suppressed is None:
            plan = self._plan(draft)
            next_step, next_repeat = first_deadlines(plan, now, now)
            paged = plan.targets
        opened = store.open(draft, next_step, next_repeat, paged)
        if event.metric == TARGET_UP_METRIC and self._down is not None:
            self._down.add(labels.get("instance", ""))
        level_name = LEVEL_NAMES[level]
        store.add_timeline(
            opened.id,
            now,
            "opened",
            f"{level_name} {priority}: {event.summary}{_value(event)}",
        )
        if log.isEnabledFor(self._each_level):
            self._say(
                self._each_level,
                "incident #%d opened %s %s: %s%s",
                opened.id,
                priority,
                level_name,
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
                # a member of a group, or resolved by hand earlier: nothing left to do
                return self._member_resolved(event, now)
            resolved = store.resolve(current, now, event.value)
            store.add_timeline(current.id, now, "resolved", f"{event.summary}{_value(event)}")
            self._say(self._each_level, "incident #%d resolved: %s", current.id, event.summary)
            return resolved, Transition.RESOLVED, None
        assert event.level is not None
        if current is None and self._grouping:
            group = group_for(event, event.level, self.channels)
            joined = store.group_of(event.fingerprint)
            if joined is not None or group is not None:
                return self._member_firing(event, event.level, group, joined, now)
        priority = priority_of(event.labels, event.level, self.channels.priorities)
        if current is None:
            reopen_within = self.channels.incidents.reopen_within
            recent = (
                store.recently_resolved(event.fingerprint, now - reopen_within)
                if reopen_within
                else None
            )
            if recent is None:
                return self._open(event, event.level, now, priority), Transition.OPENED, None
            reopened = store.reopen(recent, now)
            if reopened.suppressed_by is not None:  # held back still: look at its windows
                self._suppressed_since = True
            if reopened.level != event.level:
                reopened = store.update_level(
                    reopened, event.level, priority, event.summary, event.value, now
                )
            store.add_timeline(
                reopened.id, now, "reopened", f"fires again: {event.summary} ({event.level.label})"
            )
            self.escalator.arm_new(reopened, now, since=now)
            self._say(logging.INFO, "incident #%d reopened: %s", reopened.id, event.summary)
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
        self._say(
            self._each_level,
            "incident #%d level %s -> %s (%s)",
            current.id,
            current.level.label,
            event.level.label,
            priority,
        )
        return changed, Transition.LEVEL_CHANGED, current.level

    def _member_firing(
        self,
        event: AlertEvent,
        level: Level,
        group: Group | None,
        current: Incident | None,
        now: float,
    ) -> tuple[Incident, Transition, Level | None] | None:
        """A FIRING alert of a grouping route: open its group's incident or join it."""
        store = self.store
        if current is None:
            assert group is not None
            current = store.active(group.fingerprint)
        if current is None:
            assert group is not None
            firing = replace(
                event,
                fingerprint=group.fingerprint,
                labels=group.labels,
                summary=f"{event.summary} (group {label_text(group.labels)})",
            )
            opened = self._open(firing, level, now)
            store.set_member(opened.id, event.fingerprint, event.rule, event.labels, level, now)
            store.add_timeline(
                opened.id, now, "alert_joined", f"{event.rule} {label_text(event.labels)}"
            )
            wait = group.route.group_wait
            if wait > 0 and opened.suppressed_by is None:
                store.set_first_page(opened.id, now + wait)
                self._no_escalation(opened)  # armed when the first page goes out
                self._quiet.add(opened.id)
                store.add_timeline(
                    opened.id, now, "group_wait", f"first page in {format_duration(wait)}"
                )
            return opened, Transition.OPENED, None
        before = store.member(current.id, event.fingerprint)
        if before is not None and before.state == "firing" and before.level == level:
            return None  # a repeat FIRING (e.g. after restart)
        store.set_member(current.id, event.fingerprint, event.rule, event.labels, level, now)
        what = "alert joined" if before is None or before.state != "firing" else "alert changed"
        store.add_timeline(
            current.id,
            now,
            what.replace(" ", "_"),
            f"{event.rule} {label_text(event.labels)} ({level.label})",
        )
        if store.first_page_at(current.id) is not None:
            self._quiet.add(current.id)  # its first page is still held: it will list this one
        change = self._group_level(current, store.worst_firing(current.id) or level, now)
        if change is None:
            self._group_changed(current, group.route if group else None, now)
        return change

    def _group_changed(self, group: Incident, route: Route | None, now: float) -> None:
        """Alerts joined or left a group already paged: everyone paged hears of it at most
        the route's ``group_interval`` later, in one update (none while its first page is
        held: that page lists them; none for a group held back)."""
        if route is None or not route.group_interval or group.suppressed_by is not None:
            return
        if group.id in self._quiet or self.store.first_page_at(group.id) is not None:
            return
        self.store.schedule_group_update(group.id, now + route.group_interval)

    def _group_updates(self, now: float) -> list[Notification]:
        """Send the groups' updates that are due: what fires now, to everyone paged."""
        out: list[Notification] = []
        for group in self.store.group_updates_due(now):
            self.store.clear_group_update(group.id)
            if group.state is IncidentState.RESOLVED or group.suppressed_by is not None:
                continue
            firing, _ = self.store.firing_members(group.id)
            total = self.store.member_count(group.id)
            summary = f"{firing} alert(s) firing in group {label_text(group.labels)}"
            group = self.store.set_summary(group, summary)
            self.store.add_timeline(
                group.id, now, "group_update", f"{firing} of {total} alert(s) firing: update sent"
            )
            out += news_to_everyone_paged(
                self.store.conn, group, Transition.GROUP_CHANGED, self.channels, now
            )
        return out

    def _group_level(
        self, current: Incident, worst: Level, now: float
    ) -> tuple[Incident, Transition, Level | None] | None:
        """Move a group incident to its worst firing member's level; page only if it rose."""
        store = self.store
        if worst == current.level:
            return None
        count, _ = store.firing_members(current.id)
        priority = priority_of(current.labels, worst, self.channels.priorities)
        summary = f"{count} alert(s) firing in group {label_text(current.labels)}"
        changed = store.update_level(current, worst, priority, summary, current.value, now)
        store.add_timeline(
            current.id,
            now,
            "level_changed",
            f"{current.level.label} -> {worst.label}, {current.priority} -> {priority}: {summary}",
        )
        if worst < current.level:
            return None  # the worst member recovered: recorded, no page
        return changed, Transition.LEVEL_CHANGED, current.level

    def _member_resolved(
        self, event: AlertEvent, now: float
    ) -> tuple[Incident, Transition, Level | None] | None:
        """A member alert recovered: the group resolves when none of its alerts fire."""
        store = self.store
        current = store.group_of(event.fingerprint)
        if current is None:
            return None
        store.resolve_member(current.id, event.fingerprint, now)
        store.add_timeline(
            current.id, now, "alert_resolved", f"{event.rule} {label_text(event.labels)}"
        )
        if store.worst_firing(current.id) is not None:
            self._relevel.add(current.id)  # others still fire: its level, after the batch
            group = group_for(event, event.previous_level or Level.MINOR, self.channels)
            self._group_changed(current, group.route if group else None, now)
            return None
        self._relevel.discard(current.id)
        # not "56 alert(s) firing in group ..." in the RESOLVED page: what it says now
        total = store.member_count(current.id)
        summary = f"{total} alert(s) in group {label_text(current.labels)}, all resolved"
        resolved = store.resolve(store.set_summary(current, summary), now, event.value)
        store.add_timeline(current.id, now, "resolved", "every alert in the group resolved")
        self._say(
            logging.INFO, "incident #%d resolved: every alert in the group resolved", current.id
        )
        if store.first_page_at(current.id) is not None:
            store.set_first_page(current.id, None)
            store.add_timeline(current.id, now, "group_wait", "resolved before its first page")
            self._quiet.add(current.id)
        return resolved, Transition.RESOLVED, None

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
            self._say(logging.INFO, "incident #%d flapping", current.id)
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
