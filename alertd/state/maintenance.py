"""Maintenance windows and silences added from the CLI or the Alertmanager API, kept in the
state database.

The ``matchers`` column holds JSON in one of two forms:

* ``{"instance": ["web1", "web2"]}``: equality, any of the values (``alertd silence add
  --match``, and Alertmanager silences whose matchers are all ``=`` on distinct labels);
* ``{"$am": [{"name": ..., "value": ..., "isRegex": ..., "isEqual": ...}, ...]}``: Alertmanager
  matchers (``=``, ``!=``, ``=~``, ``!~``), all of which must match. An older alertd reads this
  as equality on a label named ``$am`` that no alert has: such a window covers nothing (it
  never silences more than it should).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AM_KEY = "$am"
_GO_META = re.compile(r"([\\.+*?()|\[\]{}^$])")  # what Go's regexp.QuoteMeta escapes


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """An Alertmanager matcher: ``name`` ``=`` / ``!=`` / ``=~`` / ``!~`` ``value``.

    A regex is anchored at both ends and written in RE2 syntax (matching lives in
    ``alertd.incidents.maintenance``)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def op(self) -> str:
        if self.is_regex:
            return "=~" if self.is_equal else "!~"
        return "=" if self.is_equal else "!="

    def __str__(self) -> str:
        """Alertmanager's text form: ``name=~"value"`` (value escaped as in OpenMetrics)."""
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelMatcher:
        return cls(
            str(data["name"]),
            str(data["value"]),
            bool(data.get("isRegex", False)),
            bool(data.get("isEqual", True)),
        )


WindowMatchers = Mapping[str, Sequence[str]] | Sequence[LabelMatcher]


def as_label_matchers(matchers: Mapping[str, Sequence[str]]) -> tuple[LabelMatcher, ...]:
    """Return equality matchers as Alertmanager ones: one value is ``=``, several are ``=~``
    with the values as alternatives (escaped like Go's ``regexp.QuoteMeta``)."""
    out = []
    for name, values in matchers.items():
        if len(values) == 1:
            out.append(LabelMatcher(name, values[0]))
        else:
            pattern = "|".join(_GO_META.sub(r"\\\1", v) for v in values)
            out.append(LabelMatcher(name, pattern, is_regex=True))
    return tuple(out)


def as_equality(matchers: Sequence[LabelMatcher]) -> dict[str, list[str]] | None:
    """Return Alertmanager matchers as the equality form if they are all ``=`` on distinct
    labels, else None."""
    names = [m.name for m in matchers]
    if len(set(names)) != len(names) or any(m.is_regex or not m.is_equal for m in matchers):
        return None
    return {m.name: [m.value] for m in matchers}


def encode_matchers(matchers: WindowMatchers) -> str:
    """Return the JSON stored in ``maintenance.matchers`` (the equality form when it can)."""
    if isinstance(matchers, Mapping):
        return json.dumps({k: list(v) for k, v in matchers.items()})
    equality = as_equality(matchers)
    if equality is not None:
        return json.dumps(equality)
    return json.dumps({AM_KEY: [m.to_json() for m in matchers]})


def decode_matchers(text: str) -> tuple[dict[str, list[str]], tuple[LabelMatcher, ...]]:
    """Return the stored matchers: ``(equality, ())`` for the equality form, ``({}, am)`` for
    Alertmanager matchers."""
    data = json.loads(text)
    am = data.get(AM_KEY)
    if isinstance(am, list) and am and all(isinstance(m, dict) for m in am):
        return {}, tuple(LabelMatcher.from_json(m) for m in am)
    return {str(k): [str(v) for v in values] for k, values in data.items()}, ()


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One stored window, as written by ``alertd maintenance|silence add`` or the
    Alertmanager API.

    ``matchers`` is the equality form (empty when the window has Alertmanager matchers in
    ``am``: then only ``am`` says what it covers; use ``alertd.incidents.maintenance.Window``
    to match). ``removed_at`` is set once it was removed (expired by hand)."""

    id: int
    kind: str
    matchers: dict[str, list[str]]
    start: float
    end: float
    reason: str
    owner: str
    am: tuple[LabelMatcher, ...] = ()
    created_at: float = 0.0
    removed_at: float | None = None

    @property
    def label_matchers(self) -> tuple[LabelMatcher, ...]:
        """Its matchers in Alertmanager's form, whichever way it was stored."""
        return self.am or as_label_matchers(self.matchers)


_COLUMNS = "id, kind, matchers, start, end, reason, owner, created_at, removed_at"


def _row(row: Sequence[Any]) -> WindowRow:
    equality, am = decode_matchers(row[2])
    return WindowRow(row[0], row[1], equality, row[3], row[4], row[5], row[6], am, row[7], row[8])


def add_window(
    conn: sqlite3.Connection,
    *,
    kind: str,
    matchers: WindowMatchers,
    start: float,
    end: float,
    reason: str,
    owner: str,
    now: float,
) -> int:
    """Store a window; ``matchers`` is the equality form (label -> any of these values) or
    a sequence of Alertmanager matchers."""
    cur = conn.execute(
        "INSERT INTO maintenance (kind, matchers, start, end, reason, owner, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, encode_matchers(matchers), start, end, reason, owner, now),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def stored_windows(
    conn: sqlite3.Connection, now: float, *, expired: bool = False
) -> list[WindowRow]:
    """Return the windows in force or to come; with ``expired``, every window, the ended and
    removed ones too (``alertd silence list --all``)."""
    if expired:
        return [
            _row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM maintenance ORDER BY id")
        ]
    query = f"SELECT {_COLUMNS} FROM maintenance WHERE removed_at IS NULL AND end > ? ORDER BY id"
    return [_row(row) for row in conn.execute(query, (now,))]


def get_window(conn: sqlite3.Connection, window_id: int) -> WindowRow | None:
    """Return a window by id, removed or over ones included."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM maintenance WHERE id = ?", (window_id,)).fetchone()
    return _row(row) if row else None


def windows_ended_after(conn: sqlite3.Connection, kind: str, since: float) -> list[WindowRow]:
    """Return the windows of ``kind`` in force, to come, or ended (or removed) after
    ``since``: what Alertmanager lists as its silences within their retention."""
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM maintenance WHERE kind = ? AND end > ? "
            "AND (removed_at IS NULL OR removed_at > ?) ORDER BY id",
            (kind, since, since),
        )
    ]


def remove_window(conn: sqlite3.Connection, window_id: int, kind: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE maintenance SET removed_at = ? WHERE id = ? AND kind = ? AND removed_at IS NULL",
        (now, window_id, kind),
    )
    return cur.rowcount == 1
