"""Rule summaries: an admin's Jinja template, rendered in a sandbox with the series as data."""

from __future__ import annotations

import logging
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from alertd.model import Labels, Level

log = logging.getLogger(__name__)
_ENV = SandboxedEnvironment(autoescape=False)


class Summary:
    """A compiled summary template; falls back to a plain description if rendering fails."""

    def __init__(self, template: str | None, rule: str, metric: str) -> None:
        self.rule = rule
        self.metric = metric
        self._template = _ENV.from_string(template) if template else None

    def render(self, labels: Labels, value: float | None, level: Level | None) -> str:
        context: dict[str, Any] = {
            "labels": dict(labels),
            "value": value,
            "level": level.label if level else "ok",
            "metric": self.metric,
            "rule": self.rule,
        }
        if self._template is not None:
            try:
                return " ".join(self._template.render(context).split())
            except Exception:  # a broken template must never lose the alert
                log.debug("summary template of rule %s failed", self.rule, exc_info=True)
        instance = dict(labels).get("instance", "?")
        shown = "unknown" if value is None else f"{value:g}"
        return f"{self.metric} is {shown} on {instance}"
