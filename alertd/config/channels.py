"""Schema of ``channels.yaml``: channels, teams, the priority matrix and routes.

Each channel type's model lives beside its notifier (``alertd/notify/<type>/config.py``);
this module assembles them into one discriminated union on ``type``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from alertd.config.types import Duration, MatcherValues, StrictModel
from alertd.notify.email.config import EmailChannelConfig
from alertd.notify.log.config import LogChannelConfig

ChannelConfig = Annotated[EmailChannelConfig | LogChannelConfig, Field(discriminator="type")]
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


class Route(StrictModel):
    """Where an incident's notifications go: ``notify`` names teams or channels."""

    match: dict[str, MatcherValues] = {}
    notify: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")


class ChannelsFile(StrictModel):
    channels: dict[str, ChannelConfig] = {}
    teams: dict[str, Team] = {}
    priorities: Priorities = Field(default_factory=Priorities)
    routes: list[Route] = []
