"""Incident KPIs: MTTA, MTTR, SLA breaches, tier-1 resolution rate and noise per rule.

Pure computation over ``IncidentFacts`` (read from the state database by
``state/kpi_queries.py``) and the priority targets of ``channels.yaml``; ``now`` is an input,
so a scripted history gives the same numbers every time. ``report.py`` renders the result.

Definitions (times are seconds from ``opened_at``, or from ``reopened_at`` for an incident
that fired again after a resolve: its acknowledgement was cleared then, and its targets
count from then, as escalation's and the API's ``respond_by`` do):

* MTTA: over acknowledged incidents, ``acknowledged_at - opened_at`` (mean and median).
* MTTR: over resolved incidents, ``resolved_at - opened_at`` (mean and median).
* Respond breach: acknowledged later than ``respond_within``; or never acknowledged and still
  unacknowledged past it, at ``now`` if still open, at ``resolved_at`` if it resolved
  unacknowledged (it waited for a human that long).
* Resolve breach: resolved later than ``resolve_within``, or unresolved past it at ``now``.
  An incident whose priority has no target counts towards neither breach.
* Tier-1 resolution rate: resolved incidents that never escalated / resolved incidents.
* Noise: incidents and pages (notification deliveries) per rule, most pages first.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from alertd.config.channels import Priority, ResponseTarget

NO_TEAM = "-"

# channels.yaml's ``priorities.targets`` (keyed by the Priority literal) or any str mapping
Targets = Mapping[str, ResponseTarget] | Mapping[Priority, ResponseTarget]


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What the KPIs need to know about one incident."""

    id: int
    priority: str
    rule: str
    team: str  # the team paged at step 0 of the incident's route, or NO_TEAM
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    escalated: bool  # a later step was paged, or it missed its resolve target and escalated
    acknowledged_by: str | None = None
    acknowledged_how: str | None = None  # cli, api, sms, email, im
    pages: int = 0  # notification deliveries recorded on its timeline
    reopened_at: float | None = None  # when it last fired again after a resolve

    @property
    def targets_from(self) -> float:
        """When its response and resolve times count from: its reopening, if any."""
        return self.opened_at if self.reopened_at is None else self.reopened_at


@dataclass(frozen=True, slots=True)
class GroupKpis:
    """The KPIs of one group of incidents (all, one priority, or one team).

    Means and medians are ``None`` when nothing was acknowledged (or resolved); breach counts
    are ``None`` when no incident in the group has a priority with targets.
    """

    key: str
    incidents: int
    pages: int
    acknowledged: int
    resolved: int
    mtta: float | None
    mtta_median: float | None
    mttr: float | None
    mttr_median: float | None
    respond_breaches: int | None
    resolve_breaches: int | None
    escalated: int
    tier1_resolved: int
    tier1_rate: float | None


@dataclass(frozen=True, slots=True)
class RuleNoise:
    """How much one rule paged."""

    rule: str
    incidents: int
    pages: int


@dataclass(frozen=True, slots=True)
class KpiReport:
    """All KPIs over the incidents opened in ``[since, now]``."""

    since: float
    now: float
    total: GroupKpis
    by_priority: tuple[GroupKpis, ...]
    by_team: tuple[GroupKpis, ...]
    noise: tuple[RuleNoise, ...]


def respond_breached(facts: IncidentFacts, target: ResponseTarget, now: float) -> bool:
    """Say whether ``facts`` missed its respond (acknowledge) target, as seen at ``now``."""
    done = facts.acknowledged_at if facts.acknowledged_at is not None else facts.resolved_at
    return _late(facts.targets_from, done, now, target.respond_within)


def resolve_breached(facts: IncidentFacts, target: ResponseTarget, now: float) -> bool:
    """Say whether ``facts`` missed its resolve target, as seen at ``now``."""
    return _late(facts.targets_from, facts.resolved_at, now, target.resolve_within)


def _late(since: float, done_at: float | None, now: float, within: float) -> bool:
    return (now if done_at is None else done_at) - since > within


def group_kpis(
    key: str,
    incidents: Sequence[IncidentFacts],
    targets: Mapping[str, ResponseTarget],
    now: float,
) -> GroupKpis:
    """Compute the KPIs of one group of incidents."""
    ack_times = [
        i.acknowledged_at - i.targets_from for i in incidents if i.acknowledged_at is not None
    ]
    resolved = [i for i in incidents if i.resolved_at is not None]
    resolve_times = [i.resolved_at - i.targets_from for i in incidents if i.resolved_at is not None]
    measured = [(i, targets[i.priority]) for i in incidents if i.priority in targets]
    tier1 = sum(1 for i in resolved if not i.escalated)
    return GroupKpis(
        key=key,
        incidents=len(incidents),
        pages=sum(i.pages for i in incidents),
        acknowledged=len(ack_times),
        resolved=len(resolved),
        mtta=statistics.fmean(ack_times) if ack_times else None,
        mtta_median=statistics.median(ack_times) if ack_times else None,
        mttr=statistics.fmean(resolve_times) if resolve_times else None,
        mttr_median=statistics.median(resolve_times) if resolve_times else None,
        respond_breaches=(
            sum(respond_breached(i, t, now) for i, t in measured) if measured else None
        ),
        resolve_breaches=(
            sum(resolve_breached(i, t, now) for i, t in measured) if measured else None
        ),
        escalated=sum(1 for i in incidents if i.escalated),
        tier1_resolved=tier1,
        tier1_rate=tier1 / len(resolved) if resolved else None,
    )


def rule_noise(incidents: Iterable[IncidentFacts]) -> tuple[RuleNoise, ...]:
    """Return incidents and pages per rule: most pages first, then most incidents, then name."""
    counts: dict[str, tuple[int, int]] = {}
    for i in incidents:
        n, pages = counts.get(i.rule, (0, 0))
        counts[i.rule] = (n + 1, pages + i.pages)
    rows = [RuleNoise(rule, n, pages) for rule, (n, pages) in counts.items()]
    return tuple(sorted(rows, key=lambda r: (-r.pages, -r.incidents, r.rule)))


def compute_kpis(
    facts: Iterable[IncidentFacts],
    targets: Targets,
    since: float,
    now: float,
) -> KpiReport:
    """Compute every KPI over the incidents opened at or after ``since``.

    Every priority with a target gets a row even without incidents, so a quiet priority
    shows as 0 rather than missing; teams appear when they had incidents (NO_TEAM last).
    """
    named: dict[str, ResponseTarget] = {str(p): t for p, t in targets.items()}
    window = [f for f in facts if since <= f.opened_at <= now]

    def grouped(
        field: Callable[[IncidentFacts], str], keys: Iterable[str]
    ) -> dict[str, list[IncidentFacts]]:
        groups: dict[str, list[IncidentFacts]] = {k: [] for k in keys}
        for f in window:
            groups.setdefault(field(f), []).append(f)
        return groups

    by_priority = grouped(lambda f: f.priority, named)
    by_team = grouped(lambda f: f.team, ())
    return KpiReport(
        since=since,
        now=now,
        total=group_kpis("all", window, named, now),
        by_priority=tuple(group_kpis(k, by_priority[k], named, now) for k in sorted(by_priority)),
        by_team=tuple(
            group_kpis(k, by_team[k], named, now)
            for k in sorted(by_team, key=lambda t: (t == NO_TEAM, t))
        ),
        noise=rule_noise(window),
    )
