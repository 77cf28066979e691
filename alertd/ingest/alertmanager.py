"""Parse Alertmanager API v2 ``postableAlerts`` bodies into ``PostedAlert``s.

This is the untrusted edge of the ingest stage: the body is parsed one array element at a
time (so an oversized request is refused at its ``max_alerts + 1``-th alert, not after
building the whole document), and every alert is validated on its own. As in Alertmanager
(``api/v2/api.go`` ``postAlertsHandler``), one bad alert does not sink the batch: the valid
ones are returned with one error line per invalid one, and the caller answers 400.

Semantics kept from Alertmanager:

* ``startsAt`` missing, null or Go's zero time (``0001-01-01T00:00:00Z``, what amtool sends)
  means now; if only ``endsAt`` is given, the alert starts at ``endsAt`` (never later than now).
* ``endsAt`` missing/zero means ``now + resolve_timeout`` and marks the alert ``refreshable``
  (Alertmanager's ``Timeout``): every re-send pushes the end further out.
* Labels with an empty value are dropped before validation (``removeEmptyLabels``); an alert
  left without labels is invalid ("at least one label pair required").
* ``endsAt`` before ``startsAt`` is invalid ("start time must be before end time"; equal is fine).
* Label and annotation names must be non-empty valid UTF-8, as in Alertmanager's default
  (``matcher/compat`` fallback mode); ``IngestLimits.classic_label_names`` restricts them to
  ``^[a-zA-Z_][a-zA-Z0-9_]*$`` (Alertmanager's ``classic-mode``).

Where alertd differs, on purpose:

* ``alertname`` is required: it is the rule name of the incident. Alertmanager does not check
  it, but documents it as the minimum label and every known sender sets it.
* A schema error in one alert (``labels`` not an object, a number as a label value...) makes
  that alert invalid; Alertmanager's go-swagger layer rejects the whole body (422) instead.
* An empty string ``startsAt``/``endsAt`` is treated as missing (go-openapi would read the
  Unix epoch).
* Invalid UTF-8 anywhere in the body rejects the body (Go would substitute U+FFFD); a string
  that is not valid Unicode (a lone ``\\ud800`` escape) makes its alert invalid.
* Size limits (``IngestLimits``): Alertmanager has none (no ``MaxBytesReader`` in ``api/``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from alertd.errors import AlertdError
from alertd.ingest.rfc3339 import parse_time
from alertd.ingest.severity import level_from_severity, summary_for
from alertd.model import Labels, Level, fingerprint

MiB = 1024 * 1024
DEFAULT_RESOLVE_TIMEOUT = 300.0  # Alertmanager's global.resolve_timeout
MAX_REPORTED_ERRORS = 20  # a 400 body lists this many invalid alerts, then "and N more"


class IngestError(AlertdError):
    """The whole request is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on one ``POST /api/v2/alerts``.

    Body size and alert count refuse the whole request (413 and 400); the per-alert limits
    make only that alert invalid. Defaults: Prometheus sends at most 256 alerts per POST
    (typically well under 1 KiB each), so 4 MiB and 10 000 alerts leave room for one
    10 000-alert storm POST of lean alerts while bounding the memory a request can pin.
    """

    max_body_bytes: int = 4 * MiB
    max_alerts: int = 10_000
    max_labels: int = 128
    max_label_name_bytes: int = 256
    max_label_value_bytes: int = 8192
    max_annotations: int = 64
    max_annotation_bytes: int = 64 * 1024  # each annotation value, and generatorURL
    body_timeout: float = 30.0  # seconds to receive the whole body (slow senders get 408)
    classic_label_names: bool = False  # True: only ^[a-zA-Z_][a-zA-Z0-9_]*$ names


@dataclass(frozen=True, slots=True)
class PostedAlert:
    """One valid alert from a POST, with Alertmanager's defaults applied.

    ``labels`` hold every label (``alertname`` included); ``rule`` is the ``alertname`` and
    ``fingerprint`` is ``model.fingerprint(rule, labels)``. ``refreshable`` is set when the
    sender gave no ``endsAt`` (it was computed from the resolve timeout).
    """

    rule: str
    labels: Labels
    annotations: Labels
    starts_at: float
    ends_at: float
    refreshable: bool
    generator_url: str
    level: Level
    summary: str
    fingerprint: str

    def firing(self, now: float) -> bool:
        """Return whether the alert is active at ``now`` (Alertmanager: ``endsAt`` > now)."""
        return self.ends_at > now


# -- the body -----------------------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m is not None else pos


def parse_postable_alerts(
    body: bytes,
    now: float,
    limits: IngestLimits,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
    *,
    default_level: Level = Level.MAJOR,
) -> tuple[list[PostedAlert], list[str]]:
    """Parse a ``POST /api/v2/alerts`` body.

    Return the valid alerts in body order and one error per invalid alert, such as
    ``alerts[3]: start time must be before end time``. Raise ``IngestError`` when the request
    as a whole is refused: 413 for a body over ``limits.max_body_bytes``, 400 for a body that
    is not UTF-8 JSON, not an array, or holds more than ``limits.max_alerts`` alerts.
    """
    if len(body) > limits.max_body_bytes:
        raise IngestError(413, f"request body larger than {limits.max_body_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    alerts: list[PostedAlert] = []
    errors: list[str] = []
    for index, item in enumerate(_array_items(text, limits.max_alerts)):
        try:
            alerts.append(_alert(item, now, limits, resolve_timeout, default_level))
        except _InvalidAlert as exc:
            errors.append(f"alerts[{index}]: {exc}")
    return alerts, errors


def describe_errors(errors: list[str]) -> str:
    """Join per-alert errors into one message (Alertmanager's ``MultiError`` shape), capped."""
    shown = "; ".join(errors[:MAX_REPORTED_ERRORS])
    if len(errors) > MAX_REPORTED_ERRORS:
        shown += f"; and {len(errors) - MAX_REPORTED_ERRORS} more invalid alerts"
    return shown


def _array_items(text: str, max_items: int) -> Iterable[Any]:
    """Return the elements of the JSON array ``text``; refuse more than max_items."""
    try:  # the common case, whole (the body's size is capped): orjson, 3x the stdlib's speed
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        items = None  # invalid, or the stdlib's extensions (NaN): the stdlib says which
    if isinstance(items, list) and len(items) <= max_items:
        return items
    return _array_items_one_by_one(text, max_items)


def _array_items_one_by_one(text: str, max_items: int) -> Iterator[Any]:
    """Yield the elements of the JSON array ``text`` one by one, so the error says where it
    went wrong; refuse more than max_items before reading them all."""
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        raise IngestError(400, "request body must be a JSON array of alerts")
    pos = _skip_ws(text, pos + 1)
    count = 0
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            if count == max_items:
                raise IngestError(400, f"too many alerts in one request (more than {max_items})")
            try:
                item, pos = _DECODER.raw_decode(text, pos)
            except RecursionError:
                raise IngestError(400, "request body is nested too deeply") from None
            except ValueError as exc:
                raise IngestError(400, f"request body is not valid JSON: {exc}") from None
            count += 1
            yield item
            pos = _skip_ws(text, pos)
            if text.startswith(",", pos):
                pos = _skip_ws(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise IngestError(400, f"request body is not valid JSON: expected , or ] at {pos}")
    if _skip_ws(text, pos) != len(text):
        raise IngestError(400, f"request body is not valid JSON: extra data at {pos}")


class _InvalidAlert(ValueError):
    """One alert is invalid; the message says why."""


_CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _quote(text: str) -> str:
    """Quote user text for an error message: JSON-escaped, ASCII, at most 64 characters."""
    return json.dumps(text if len(text) <= 64 else text[:64] + "...")


def _utf8_size(text: str) -> int:
    """Return the UTF-8 size of ``text``; raise _InvalidAlert if it is not valid Unicode."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _InvalidAlert("not valid UTF-8") from None


def _string_map(
    raw: Any, what: str, limits: IngestLimits, max_items: int, max_value: int, drop_empty: bool
) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _InvalidAlert(f"{what}: must be an object of strings")
    if len(raw) > max_items:
        raise _InvalidAlert(f"{what}: too many ({len(raw)} > {max_items})")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            raise _InvalidAlert(f"{what}: value of {_quote(name)} is not a string")
        if drop_empty and not value:
            continue
        try:
            size = _utf8_size(name)
        except _InvalidAlert:
            raise _InvalidAlert(f"{what}: invalid name {_quote(name)}") from None
        if not name or (limits.classic_label_names and not _CLASSIC_NAME.fullmatch(name)):
            raise _InvalidAlert(f"{what}: invalid name {_quote(name)}")
        if size > limits.max_label_name_bytes:
            raise _InvalidAlert(
                f"{what}: name {_quote(name)} too long ({size} > {limits.max_label_name_bytes} "
                "bytes)"
            )
        try:
            size = _utf8_size(value)
        except _InvalidAlert:
            raise _InvalidAlert(f"{what}: invalid value of {_quote(name)}") from None
        if size > max_value:
            raise _InvalidAlert(
                f"{what}: value of {_quote(name)} too long ({size} > {max_value} bytes)"
            )
        out[name] = value
    return out


def _time_field(item: dict[str, Any], key: str) -> float | None:
    raw = item.get(key)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise _InvalidAlert(f"{key}: must be an RFC 3339 time string")
    try:
        return parse_time(raw)
    except ValueError:
        raise _InvalidAlert(f"{key}: not an RFC 3339 time: {_quote(raw)}") from None


def _generator_url(item: dict[str, Any], limits: IngestLimits) -> str:
    raw = item.get("generatorURL")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise _InvalidAlert("generatorURL: must be a string")
    try:
        size = _utf8_size(raw)
    except _InvalidAlert:
        raise _InvalidAlert("generatorURL: not valid UTF-8") from None
    if size > limits.max_annotation_bytes:
        raise _InvalidAlert(f"generatorURL: too long ({size} > {limits.max_annotation_bytes})")
    # Go's url.Parse refuses ASCII control characters; so do we (no header/log injection)
    if _CONTROL.search(raw):
        raise _InvalidAlert("generatorURL: not a URL (control character)")
    return raw


def _alert(
    item: Any, now: float, limits: IngestLimits, resolve_timeout: float, default_level: Level
) -> PostedAlert:
    if not isinstance(item, dict):
        raise _InvalidAlert("must be a JSON object")
    if item.get("labels") is None:
        raise _InvalidAlert("labels: required")
    labels = _string_map(
        item["labels"],
        "invalid label set",
        limits,
        limits.max_labels,
        limits.max_label_value_bytes,
        drop_empty=True,
    )
    raw_annotations = item.get("annotations")
    annotations = (
        {}
        if raw_annotations is None
        else _string_map(
            raw_annotations,
            "invalid annotations",
            limits,
            limits.max_annotations,
            limits.max_annotation_bytes,
            drop_empty=False,
        )
    )
    starts_at = _time_field(item, "startsAt")
    ends_at = _time_field(item, "endsAt")
    generator_url = _generator_url(item, limits)
    if starts_at is None:
        starts_at = now if ends_at is None else min(now, ends_at)
    refreshable = ends_at is None
    if ends_at is None:
        ends_at = now + resolve_timeout
    if ends_at < starts_at:
        raise _InvalidAlert("start time must be before end time")
    if not labels:
        raise _InvalidAlert("at least one label pair required")
    rule = labels.get("alertname")
    if rule is None:
        raise _InvalidAlert("invalid label set: alertname missing")
    label_tuple = tuple(sorted(labels.items()))
    return PostedAlert(
        rule=rule,
        labels=label_tuple,
        annotations=tuple(sorted(annotations.items())),
        starts_at=starts_at,
        ends_at=ends_at,
        refreshable=refreshable,
        generator_url=generator_url,
        level=level_from_severity(labels.get("severity"), default_level),
        summary=summary_for(rule, labels, annotations),
        fingerprint=fingerprint(rule, label_tuple),
    )
