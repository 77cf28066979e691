"""Where the board's pages live: what notifications link to, without the board's imports."""

from __future__ import annotations

PREFIX = "/board"


def incident_path(incident_id: int) -> str:
    """Return the path of an incident's page (for links in notifications)."""
    return f"{PREFIX}/incidents/{incident_id}"
