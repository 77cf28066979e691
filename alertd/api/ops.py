"""What the HTTP surfaces (JSON API, Alertmanager compatibility, the board) may do to a running
daemon, as one protocol: reads go straight to the state database, changes go through here so
they land on the timeline and commit their notifications with them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from alertd.config.load import Config
from alertd.state.maintenance import WindowMatchers

Action = Literal["ack", "resolve"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change came to: ``ok``, ``not_found`` (404) or ``conflict`` (409)."""

    status: Literal["ok", "not_found", "conflict"]
    message: str


class Operations(Protocol):
    @property
    def conn(self) -> sqlite3.Connection:
        """The state database (reads; the daemon's one connection, on its event loop)."""
        ...

    def current_config(self) -> Config: ...

    def wall_now(self) -> float: ...

    def respond(
        self, action: Action, incident_id: int, who: str, how: str, comment: str | None = None
    ) -> Outcome:
        """Acknowledge or resolve; ``how`` is the surface ("api", "board", "sms"...)."""
        ...

    def comment(self, incident_id: int, who: str, text: str) -> Outcome: ...

    def add_window(
        self,
        kind: Literal["maintenance", "silence"],
        matchers: WindowMatchers,
        start: float,
        end: float,
        reason: str,
        owner: str,
    ) -> int:
        """Store a maintenance window or silence; return its id (it shows on timelines of
        the incidents it covers, like one added with ``alertd silence add``)."""
        ...

    def remove_window(self, kind: Literal["maintenance", "silence"], window_id: int) -> bool: ...

    async def reload(self) -> bool: ...

    def reload_rejected_for(self) -> Sequence[str]:
        """Why the last reload was rejected (file:line:col: key: message), if it was."""
        ...
