"""Alertmanager matcher text (``filter=`` parameters) and the JSON matchers of silences.

``parse_matcher`` follows Alertmanager 0.25's ``pkg/labels.ParseMatcher`` (what ``amtool``'s
arguments go through): a label name, one of ``=``, ``!=``, ``=~``, ``!~``, and a value that
may be double-quoted, with OpenMetrics escapes (``\\"``, ``\\n``, ``\\\\``). So
``alertname=Disk``, ``alertname="Disk"`` and ``{alertname="Disk"}`` are one matcher. Unlike
0.25, a quoted label name (``"host name"="a"``, the UTF-8 form of 0.27+) is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from alertd.incidents.maintenance import MatcherError, check_matcher, matcher_matches
from alertd.state.maintenance import LabelMatcher

_MATCHER = re.compile(
    r'^\s*([a-zA-Z_:][a-zA-Z0-9_:]*|"(?:[^"\\]|\\.)*")\s*(=~|=|!=|!~)\s*((?s:.*?))\s*$'
)
_OPS = {"=": (False, True), "!=": (False, False), "=~": (True, True), "!~": (True, False)}


def parse_matcher(text: str) -> LabelMatcher:
    """Parse one matcher such as ``instance=~"web-.*"``; raise ``MatcherError``."""
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    m = _MATCHER.match(inner)
    if m is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = m.groups()
    if name.startswith('"'):
        name = _unescape(name[1:-1], text)
    quoted = raw.startswith('"')
    value = _unquote(raw[1:] if quoted else raw, quoted, text)
    is_regex, is_equal = _OPS[op]
    matcher = LabelMatcher(name, value, is_regex, is_equal)
    check_matcher(matcher)
    return matcher


def _unquote(raw: str, quoted: bool, text: str) -> str:
    """ParseMatcher's loop: unescape, and allow an unescaped quote only as the last
    character of a quoted value."""
    out: list[str] = []
    escaped = False
    closed = not quoted
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(ch, "\\" + ch))
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if closed or i < len(raw) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {text}")
            closed = True
        else:
            out.append(ch)
    if not closed:
        raise MatcherError(f"matcher value contains unescaped double quote: {text}")
    return "".join(out)


def _unescape(raw: str, text: str) -> str:
    return _unquote(raw + '"', True, text)


def parse_filters(filters: Sequence[str]) -> list[LabelMatcher]:
    """Parse every ``filter=`` value; raise ``MatcherError`` on the first bad one."""
    return [parse_matcher(f) for f in filters]


def filter_matches(matchers: Sequence[LabelMatcher], labels: Mapping[str, str]) -> bool:
    """Return whether an alert passes ``GET /api/v2/alerts`` filters (Alertmanager's
    ``matchFilterLabels``: an empty ``=`` value also accepts a missing label, and an empty
    ``!=``/``!~`` value accepts any present one)."""
    for m in matchers:
        present = m.name in labels
        value = labels.get(m.name, "")
        if m.value == "" and present != m.is_equal:
            continue
        if not matcher_matches(m, value):
            return False
    return True


def valid_text(text: str) -> bool:
    """Return whether ``text`` is valid Unicode (JSON can carry a lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def silence_has(silence: Sequence[LabelMatcher], filters: Sequence[LabelMatcher]) -> bool:
    """Return whether a silence passes ``GET /api/v2/silences`` filters: each filter must be
    one of its matchers, same name, operator and value (``CheckSilenceMatchesFilterLabels``)."""
    return all(f in silence for f in filters)


def matchers_from_json(data: Any) -> list[LabelMatcher]:
    """Read a silence's ``matchers`` (``[{name, value, isRegex, isEqual=true}]``); raise
    ``MatcherError`` naming the first problem."""
    if not isinstance(data, list) or not data:
        raise MatcherError("matchers in body should have at least 1 items")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise MatcherError(f"matchers.{i} in body must be of type object")
        for key in ("name", "value"):
            if not isinstance(item.get(key), str):
                raise MatcherError(f"matchers.{i}.{key} in body must be of type string")
        for key in ("isRegex", "isEqual"):
            if key in item and not isinstance(item[key], bool):
                raise MatcherError(f"matchers.{i}.{key} in body must be of type boolean")
        if "isRegex" not in item:
            raise MatcherError(f"matchers.{i}.isRegex in body is required")
        if not item["name"] or not valid_text(item["name"]):
            raise MatcherError(f"invalid label name {item['name']!r}")
        if not valid_text(item["value"]):
            raise MatcherError(f"invalid label value {item['value']!r}")
        matcher = LabelMatcher.from_json(item)
        check_matcher(matcher)
        out.append(matcher)
    if all(matcher_matches(m, "") for m in out):
        raise MatcherError("at least one matcher must not match the empty string")
    return out
