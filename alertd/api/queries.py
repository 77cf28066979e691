"""The incident list of ``GET /api/v1/incidents``: its query parameters, and the lookup.

State and priority filter in SQL; label matchers and the team need the labels and the routes
of ``channels.yaml``, so they filter in Python over the rows SQL selected (newest first). The
cursor is the id of the last incident of a page: the next page holds older ones, so paging
is stable while new incidents open; ``offset`` skips that many more (after the cursor, if
given).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from multidict import MultiMapping

from alertd.api.errors import ApiError
from alertd.config.channels import ChannelsFile
from alertd.incidents.maintenance import MatcherError, compile_matcher_regex
from alertd.incidents.routing import teams_paged
from alertd.model import Incident
from alertd.state.incidents import INCIDENT_COLUMNS, incident_from_row

STATES = ("open", "acknowledged", "resolved")
DEFAULT_STATES = ("open", "acknowledged")
PRIORITIES = ("P1", "P2", "P3", "P4")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000
MAX_MATCHERS = 20
MAX_MATCHER_CHARS = 1024
_MATCHER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$", re.DOTALL)
_CURSOR = re.compile(r"^[0-9]{1,18}$")

Op = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher as Prometheus writes it: ``name=value``, ``!=``, ``=~``, ``!~``
    (a missing label is the empty string). Regular expressions match the whole value, in RE2
    syntax, compiled as silences' matchers are (``compile_matcher_regex``)."""

    name: str
    op: Op
    value: str
    pattern: Callable[[str], bool] | None = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        if len(text) > MAX_MATCHER_CHARS:
            raise ApiError(400, f"match: longer than {MAX_MATCHER_CHARS} characters")
        found = _MATCHER.match(text)
        if found is None:
            raise ApiError(400, f"match: {text!r} is not LABEL=VALUE, !=, =~ or !~")
        name, op, value = found.groups()
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = compile_matcher_regex(value)
            except (MatcherError, RecursionError, OverflowError) as exc:
                raise ApiError(400, f"match: {text!r}: bad regular expression: {exc}") from None
        return cls(name, cast(Op, op), value, pattern)

    def accepts(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.pattern is None:
            return (got == self.value) == (self.op == "=")
        return self.pattern(got) == (self.op == "=~")


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """What ``GET /api/v1/incidents`` was asked for."""

    states: tuple[str, ...] = DEFAULT_STATES
    priorities: tuple[str, ...] = ()
    team: str | None = None
    matchers: tuple[Matcher, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: int | None = None  # only incidents with a smaller id
    offset: int = 0

    @classmethod
    def parse(cls, query: MultiMapping[str]) -> IncidentQuery:
        """Read the query string; raise a 400 ``ApiError`` naming the first bad parameter."""
        states = tuple(dict.fromkeys(query.getall("state", [])))
        if "all" in states:  # as the CLI's ``--state all``
            states = tuple(STATES)
        for state in states:
            if state not in STATES:
                raise ApiError(400, f"state: {state!r} is not one of {', '.join(STATES)}, all")
        priorities = tuple(dict.fromkeys(query.getall("priority", [])))
        for priority in priorities:
            if priority not in PRIORITIES:
                raise ApiError(400, f"priority: {priority!r} is not one of P1, P2, P3, P4")
        matchers = query.getall("match", [])
        if len(matchers) > MAX_MATCHERS:
            raise ApiError(400, f"match: at most {MAX_MATCHERS} matchers")
        cursor = query.get("cursor")
        if cursor is not None and not _CURSOR.match(cursor):
            raise ApiError(400, "cursor: not a cursor from a previous page's `next`")
        team = _single(query, "team")
        if team is not None and len(team) > 200:
            raise ApiError(400, "team: longer than 200 characters")
        return cls(
            states=states or DEFAULT_STATES,
            priorities=priorities,
            team=team,
            matchers=tuple(Matcher.parse(m) for m in matchers),
            limit=_integer(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
            cursor=None if cursor is None else int(cursor),
            offset=_integer(query, "offset", 0, 0, MAX_OFFSET),
        )


@dataclass(frozen=True, slots=True)
class Page:
    incidents: list[Incident]
    next: str | None  # the cursor of the next page
    total: int  # incidents matching the filters, on every page


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"{name}: give it once")
    return values[0] if values else None


def _integer(query: MultiMapping[str], name: str, default: int, low: int, high: int) -> int:
    text = _single(query, name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise ApiError(400, f"{name}: expected an integer from {low} to {high}")
    return int(text)


def find_incidents(conn: sqlite3.Connection, q: IncidentQuery, channels: ChannelsFile) -> Page:
    """Return one page of the incidents ``q`` selects, newest first."""
    # "+state", "+priority": filter while walking the table newest first (and stop after a
    # page) rather than use the state index and sort every match by id
    where = [f"+state IN ({', '.join('?' for _ in q.states)})"]
    params: list[Any] = list(q.states)
    if q.priorities:
        where.append(f"+priority IN ({', '.join('?' for _ in q.priorities)})")
        params.extend(q.priorities)
    if not q.matchers and q.team is None:
        return _sql_page(conn, where, params, q)
    total = 0
    skipped = 0
    page: list[Incident] = []
    rows = conn.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} ORDER BY id DESC",
        params,
    )
    for row in rows:
        if q.matchers:  # on the labels alone: most rows stop here
            labels = dict(json.loads(row[4]))
            if not all(m.accepts(labels) for m in q.matchers):
                continue
        incident = None
        if q.team is not None:
            incident = incident_from_row(row)
            if q.team not in teams_paged(incident, channels):
                continue
        total += 1
        if len(page) > q.limit or (q.cursor is not None and row[0] >= q.cursor):
            continue
        if skipped < q.offset:
            skipped += 1
            continue
        page.append(incident or incident_from_row(row))
    return _page(page, q.limit, total)


def _sql_page(
    conn: sqlite3.Connection, where: list[str], params: list[Any], q: IncidentQuery
) -> Page:
    (total,) = conn.execute(
        f"SELECT COUNT(*) FROM incidents WHERE {' AND '.join(where)}".replace("+", ""), params
    ).fetchone()
    if q.cursor is not None:
        where = [*where, "id < ?"]
        params = [*params, q.cursor]
    rows = conn.execute(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, q.limit + 1, q.offset],
    )
    return _page([incident_from_row(row) for row in rows], q.limit, int(total))


def _page(found: Sequence[Incident], limit: int, total: int) -> Page:
    more = len(found) > limit
    page = list(found[:limit])
    return Page(page, str(page[-1].id) if more and page else None, total)
