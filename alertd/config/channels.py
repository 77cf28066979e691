"""Schema of ``channels.yaml``: channels, teams, the priority matrix and routes.

Each channel type's model lives beside its notifier (``alertd/notify/<type>/config.py``);
this module assembles them into one discriminated union on ``type``.
"""

from __future__ import annotations

import itertools
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, model_validator

from alertd.config.types import Duration, MatcherValues, StrictModel
from alertd.notify.channel_types import ChannelConfig

Priority = Literal["P1", "P2", "P3", "P4"]
LevelName = Literal["critical", "major", "minor"]


class Member(StrictModel):
    name: str = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    im: str | None = None


class Team(StrictModel):
    members: list[Member] = []
    channels: list[str] = Field(min_length=1)


class ResponseTarget(StrictModel):
    respond_within: Duration
    resolve_within: Duration


def _default_matrix() -> dict[str, dict[LevelName, Priority]]:
    return {
        "high": {"critical": "P1", "major": "P2", "minor": "P3"},
        "medium": {"critical": "P2", "major": "P3", "minor": "P4"},
        "low": {"critical": "P3", "major": "P4", "minor": "P4"},
    }


class Priorities(StrictModel):
    """Impact (the target's ``criticality`` label) x urgency (the level) -> priority."""

    matrix: dict[str, dict[LevelName, Priority]] = Field(default_factory=_default_matrix)
    default_impact: str = "medium"
    targets: dict[Priority, ResponseTarget] = {}
    # the optional third factor: a series' ``effort`` label (resource need) moves the priority
    # up (negative: more urgent) or down, e.g. {high: -1, low: 1}; P1 and P4 are the bounds
    effort: dict[str, int] = {}


class EscalationStep(StrictModel):
    """Who is paged ``after`` this long without an acknowledgement (0: at once)."""

    after: Duration = 0.0
    notify: list[str] = Field(min_length=1)


class Route(StrictModel):
    """Where an incident's notifications go: teams or channels, at once (``notify``) or in
    escalation steps (``escalate``); ``repeat`` re-pages the current step while unacknowledged."""

    match: dict[str, MatcherValues] = {}
    notify: list[str] = []
    escalate: list[EscalationStep] = []
    repeat: Duration | None = Field(default=None, gt=0)
    continue_: bool = Field(default=False, alias="continue")
    # alerts alike in these labels join one incident; its first page waits ``group_wait``
    group_by: list[str] = []
    group_wait: Duration = Field(default=0.0, ge=0)
    # alerts joining or leaving a paged group: everyone paged hears of it at most this long
    # after (Alertmanager's group_interval); 0: only when its level rises
    group_interval: Duration = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if bool(self.notify) == bool(self.escalate):
            raise ValueError("set exactly one of notify (page at once) or escalate (steps)")
        if self.escalate and self.escalate[0].after != 0:
            raise ValueError("the first escalation step pages at once: leave out its `after`")
        afters = [step.after for step in self.escalate]
        if any(b <= a for a, b in itertools.pairwise(afters)):
            raise ValueError("escalation steps must come later and later (`after` increasing)")
        if self.group_interval and not self.group_by:
            raise ValueError("group_interval is for a route that groups: set group_by too")
        return self

    @property
    def steps(self) -> list[EscalationStep]:
        """The escalation steps; a plain ``notify`` is one step at once."""
        return self.escalate or [EscalationStep(notify=self.notify)]


class WeeklySchedule(StrictModel):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    at: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # local time, HH:MM
    duration: Duration = Field(gt=0)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _zone(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        return self


class MaintenanceWindow(StrictModel):
    """An approved change window: one-off (start + end or duration) or weekly."""

    name: str = Field(min_length=1)
    # required: a window left without one held back every page (user test); `{}` says "all"
    match: dict[str, MatcherValues]
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    duration: Duration | None = Field(default=None, gt=0)
    weekly: WeeklySchedule | None = None
    owner: str = ""
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _when(self) -> Self:
        if self.weekly is not None:
            if self.start or self.end or self.duration:
                raise ValueError("a weekly window has no start, end or duration of its own")
            return self
        if self.start is None or (self.end is None) == (self.duration is None):
            raise ValueError("a one-off window needs start and one of end or duration")
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class IncidentSettings(StrictModel):
    """Incident lifecycle: reopen a recent incident instead of opening a new one; let an
    acknowledgement lapse so escalation resumes."""

    reopen_within: Duration = Field(default=0.0, ge=0)  # 0: every re-fire is a new incident
    ack_expires_after: Duration | None = Field(default=None, gt=0)


class RateLimit(StrictModel):
    """How many notifications a channel sends a minute, in all and to one recipient; what
    exceeds it goes out later as one digest, never dropped."""

    per_second: float | None = Field(default=None, gt=0)
    per_minute: float | None = Field(default=None, gt=0)
    per_recipient_per_minute: float | None = Field(default=None, gt=0)


class DeliveryConfig(StrictModel):
    """How hard the durable outbox tries: retries with exponential backoff and jitter until a
    notification is ``max_age`` old, then it fails over (``failover``)."""

    max_age: Duration = Field(default=3600.0, gt=0)
    backoff: Duration = Field(default=2.0, gt=0)
    max_backoff: Duration = Field(default=300.0, gt=0)
    send_timeout: Duration = Field(default=30.0, gt=0)
    # sends at once per channel (a stalled channel holds up only its own). A webhook opens
    # at most 100 connections (http_pool.LIMIT); the sends past those wait for a free one,
    # already claimed, so a storm's deliveries ride out the turns the daemon writes (the
    # side-by-side with Alertmanager: 1.10-1.18x its time at 200, 1.35-1.39x at 100)
    max_in_flight: int = Field(default=200, ge=1, le=10000)


class ChannelsFile(StrictModel):
    channels: dict[str, ChannelConfig] = {}
    teams: dict[str, Team] = {}
    priorities: Priorities = Field(default_factory=Priorities)
    routes: list[Route] = []
    maintenance: list[MaintenanceWindow] = []
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    rate_limits: dict[str, RateLimit] = {}  # channel name -> limits
    # channel -> the channel that takes over when a notification fails there for good
    # (permanent error, or retries ran out); a team's members are re-addressed on the way
    failover: dict[str, str] = {}
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
