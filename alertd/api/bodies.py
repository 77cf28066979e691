"""The request bodies of ``/api/v1``, checked by hand against what ``openapi.json`` says
(strict: unknown fields, nulls and wrong types are 400s naming the field)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertd.api.errors import NO_BODY, ApiError
from alertd.config.types import parse_duration

MAX_TEXT = 4096
MAX_WINDOW = 366 * 86400.0  # a window lasts at most this, and starts at most this far ahead
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WINDOW_KEYS = frozenset({"match", "start", "end", "duration", "reason", "owner"})


def json_object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """Return ``body`` as a JSON object with only ``allowed`` keys (no body: ``{}``)."""
    if body is NO_BODY:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
    return body


def text_field(body: Mapping[str, Any], key: str, *, required: bool, limit: int = MAX_TEXT) -> str:
    """Return a non-empty string field ("" when it is optional and left out)."""
    if key not in body and not required:
        return ""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key}: a non-empty string is required")
    if len(value) > limit:
        raise ApiError(400, f"{key}: longer than {limit} characters")
    return value


def _time(body: Mapping[str, Any], key: str) -> float:
    value = body[key]
    try:
        if not isinstance(value, str):
            raise ValueError
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ApiError(
            400, f"{key}: expected an RFC 3339 time with offset, e.g. 2026-12-01T22:00:00Z"
        ) from None


def _duration(text: Any, key: str, limit: float) -> float:
    if not isinstance(text, str) or not DURATION.match(text):
        raise ApiError(400, f"{key}: expected a duration such as 90s, 30m, 2h or 1d")
    seconds = parse_duration(text)
    if not 0 < seconds <= limit:
        raise ApiError(400, f"{key}: must be above 0 and at most {limit / 86400:g}d")
    return seconds


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """A ``POST /api/v1/maintenance|silences`` body, checked."""

    matchers: dict[str, list[str]]
    start: float
    end: float
    reason: str
    owner: str

    @classmethod
    def parse(cls, raw: Any, now: float, default_owner: str) -> WindowRequest:
        body = json_object(raw, _WINDOW_KEYS)
        match = body.get("match")
        if not isinstance(match, dict) or not 1 <= len(match) <= 20:
            raise ApiError(400, "match: an object of 1 to 20 label names is required")
        matchers: dict[str, list[str]] = {}
        for name, values in match.items():
            if not _LABEL_NAME.match(name) or len(name) > 200:
                raise ApiError(400, f"match: {name!r} is not a label name")
            if not isinstance(values, list) or not 1 <= len(values) <= 50:
                raise ApiError(400, f"match.{name}: a list of 1 to 50 values is required")
            if not all(isinstance(v, str) and len(v) <= 1024 for v in values):
                raise ApiError(400, f"match.{name}: values must be strings")
            matchers[name] = list(dict.fromkeys(values))
        start = _time(body, "start") if "start" in body else now
        if ("end" in body) == ("duration" in body):
            raise ApiError(400, "give one of end or duration")
        if "end" in body:
            end = _time(body, "end")
        else:
            end = start + _duration(body["duration"], "duration", MAX_WINDOW)
        if end <= now:
            raise ApiError(400, "end: the window is over already")
        if end <= start:
            raise ApiError(400, "end: the window must end after it starts")
        if end - start > MAX_WINDOW or start - now > MAX_WINDOW:
            raise ApiError(400, "a window lasts at most 366d and starts within 366d")
        reason = text_field(body, "reason", required=True, limit=1024)
        owner = text_field(body, "owner", required=False, limit=200) or default_owner
        return cls(matchers, start, end, reason, owner)
