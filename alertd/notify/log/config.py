"""Config model of the log channel (``type: log``): writes each notification as one log line.

Useful as a fallback channel and for trying rules out before wiring a real one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class LogChannelConfig(BaseModel):
    """A channel that logs notifications to ``alertd.notify`` at ``level``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["log"]
    level: Literal["info", "warning"] = "warning"
