"""Level and one-line summary of a pushed alert, from its ``severity`` label and annotations.

Senders disagree on severity words (Prometheus rules say ``warning``/``critical``, Zabbix
``average``/``disaster``, PagerDuty-minded ones ``error``/``info``); this maps the common ones
onto alertd's three levels and leaves the rest to a configurable default.
"""

from __future__ import annotations

from collections.abc import Mapping

from alertd.model import Level

MAX_SUMMARY_CHARS = 500

SEVERITY_LEVELS: Mapping[str, Level] = {
    **dict.fromkeys(
        ("critical", "crit", "page", "emergency", "emerg", "disaster", "fatal"), Level.CRITICAL
    ),
    **dict.fromkeys(("major", "error", "err", "high", "average"), Level.MAJOR),
    **dict.fromkeys(
        ("minor", "warning", "warn", "low", "info", "informational", "notice"), Level.MINOR
    ),
}


def level_from_severity(severity: str | None, default: Level = Level.MAJOR) -> Level:
    """Map a ``severity`` label value (any case) to a level; missing or unknown -> ``default``."""
    if severity is None:
        return default
    return SEVERITY_LEVELS.get(severity.strip().lower(), default)


def summary_for(rule: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """Return a one-line summary: the ``summary``, ``description`` or ``message`` annotation,
    else the alert name and its ``instance``."""
    for key in ("summary", "description", "message"):
        text = " ".join(annotations.get(key, "").split())
        if text:
            return text[:MAX_SUMMARY_CHARS]
    instance = labels.get("instance", "")
    text = f"{rule} on {instance}" if instance else rule
    return " ".join(text.split())[:MAX_SUMMARY_CHARS]
