"""Alertmanager API v2 beyond ingest, so ``amtool`` and Alertmanager clients work unchanged:
alerts and alert groups, silences, status and receivers, in Alertmanager's JSON shapes.

* Alerts: see ``am_alerts`` (pushed alerts and alertd's own open incidents).
* Silences are alertd silences (table ``maintenance``, kind ``silence``): ``alertd silence
  list`` shows them and an incident they cover is recorded as suppressed by ``silence #<id>``.
  Their Alertmanager id is a UUID ending in the row id (``am_alerts.silence_uuid``); paths
  also take the plain number. ``GET /api/v2/silences`` lists the silences in force, to come,
  and those that ended within the last 5 days (Alertmanager's default retention). ``DELETE``
  expires one (a pending one gets start = end = now); expiring an expired one is a no-op.
  ``POST`` with an ``id`` expires that silence and creates a new one with a new id, the path
  Alertmanager takes when an update would rewrite history (alertd always takes it).
  Equality silences created here show in ``alertd silence list`` exactly like CLI ones; any
  other matcher (``!=``, ``=~``, ``!~``) is kept as Alertmanager matchers.
* Scopes: reads need ``read``; creating and expiring silences needs ``admin``.
* Errors are JSON strings, as Alertmanager sends: 400 for bad input, 404 for no such silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from alertd.api import am_config
from alertd.api.am_alerts import (
    ApiAlert,
    am_time,
    collect_alerts,
    group_alerts,
    parse_silence_id,
    silence_uuid,
)
from alertd.api.am_matchers import (
    filter_matches,
    matchers_from_json,
    parse_filters,
    silence_has,
    valid_text,
)
from alertd.api.auth import Authorizer
from alertd.api.ops import Operations
from alertd.config.load import Config
from alertd.config.server import Scope
from alertd.incidents.maintenance import MatcherError, compile_matcher_regex, from_config, from_rows
from alertd.ingest.rfc3339 import parse_time
from alertd.state.db import read_in_thread
from alertd.state.maintenance import (
    LabelMatcher,
    WindowRow,
    get_window,
    stored_windows,
    windows_ended_after,
)

log = logging.getLogger(__name__)

RETENTION = 5 * 86400.0  # expired silences stay listed this long (Alertmanager: 120h)
_STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def am_v2_routes(
    ops: Operations,
    authorizer: Callable[[], Authorizer],
    *,
    version: str,
    started_at: float,
) -> list[web.RouteDef]:
    """Return the Alertmanager v2 routes besides ``POST /api/v2/alerts``.

    ``authorizer`` is called per request (tokens follow reloads); ``version`` is alertd's,
    shown in ``versionInfo``; ``started_at`` is the wall time the daemon started (uptime).
    """

    def require(request: web.Request, scope: Scope) -> str:
        return authorizer().require(request, scope)

    shared = _SharedReads(ops)

    async def get_alerts(request: web.Request) -> web.Response:
        require(request, "read")
        body = await shared.get(
            ("alerts", request.query_string),
            lambda r: json.dumps([a.to_json() for a in _filtered(r, request)]),
        )
        return _json_text(body)

    async def get_groups(request: web.Request) -> web.Response:
        require(request, "read")
        body = await shared.get(
            ("groups", request.query_string),
            lambda r: json.dumps(group_alerts(_filtered(r, request))),
        )
        return _json_text(body)

    async def get_silences(request: web.Request) -> web.Response:
        require(request, "read")
        filters = _filters(request)
        now = ops.wall_now()
        silences = [
            silence_json(row, now)
            for row in windows_ended_after(ops.conn, "silence", now - RETENTION)
            if silence_has(row.label_matchers, filters)
        ]
        silences.sort(key=_silence_order)
        return _json(silences)

    async def get_silence(request: web.Request) -> web.Response:
        require(request, "read")
        row = _silence(ops, request.match_info["silence_id"])
        return _json(silence_json(row, ops.wall_now()))

    async def delete_silence(request: web.Request) -> web.Response:
        who = require(request, "admin")
        row = _silence(ops, request.match_info["silence_id"])
        if silence_json(row, ops.wall_now())["status"]["state"] != "expired":
            ops.remove_window("silence", row.id)
            log.info("silence #%d expired through the Alertmanager API by %s", row.id, who)
        return web.Response(status=200)

    async def post_silences(request: web.Request) -> web.Response:
        who = require(request, "admin")
        try:
            data = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(400, f"the body is not JSON: {exc}") from None
        now = ops.wall_now()
        try:
            new = _postable(data, now)
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        matchers, start, end, created_by, comment, old_id = new
        if old_id:
            row_id = parse_silence_id(old_id)
            row = get_window(ops.conn, row_id) if row_id is not None else None
            if row is None or row.kind != "silence":
                raise _error(404, "not found")
            if silence_json(row, now)["status"]["state"] != "expired":
                ops.remove_window("silence", row.id)  # replaced: its history stays
        window_id = ops.add_window(
            kind="silence",
            # Inbound hands these to state.maintenance.add_window, which takes AM matchers;
            # Operations.add_window's annotation is still the equality form's
            matchers=matchers,
            start=max(start, now),
            end=end,
            reason=comment,
            owner=created_by or who,
        )
        log.info(
            "silence #%d added through the Alertmanager API by %s%s: %s",
            window_id,
            who,
            f" (replacing {old_id})" if old_id else "",
            " ".join(str(m) for m in matchers),
        )
        return _json({"silenceID": silence_uuid(window_id)})

    async def get_status(request: web.Request) -> web.Response:
        require(request, "read")
        return _json(
            {
                "cluster": {"status": "disabled", "peers": []},
                "versionInfo": {
                    "version": version,
                    "revision": "",
                    "branch": "",
                    "buildUser": "",
                    "buildDate": "",
                    "goVersion": "none (alertd is written in Python)",
                },
                "config": {"original": am_config.render_config(ops.current_config(), version)},
                "uptime": am_time(started_at),
            }
        )

    async def get_receivers(request: web.Request) -> web.Response:
        require(request, "read")
        names = am_config.receiver_names(ops.current_config().channels)
        return _json(am_config.receivers_json(names))

    return [
        web.get("/api/v2/alerts", get_alerts),
        web.get("/api/v2/alerts/groups", get_groups),
        web.get("/api/v2/silences", get_silences),
        web.post("/api/v2/silences", post_silences),
        web.get("/api/v2/silence/{silence_id}", get_silence),
        web.delete("/api/v2/silence/{silence_id}", delete_silence),
        web.get("/api/v2/status", get_status),
        web.get("/api/v2/receivers", get_receivers),
    ]


def silence_json(row: WindowRow, now: float) -> dict[str, Any]:
    """Return a stored silence as Alertmanager's ``gettableSilence``; a removed one shows as
    expired when it was removed (Alertmanager's expire sets ``endsAt``, and ``startsAt`` too
    for one not started)."""
    start, end, updated = row.start, row.end, row.created_at
    if row.removed_at is not None and row.removed_at < end:
        end = updated = row.removed_at
        start = min(start, end)
    state = "pending" if now < start else "active" if now < end else "expired"
    return {
        "id": silence_uuid(row.id),
        "status": {"state": state},
        "updatedAt": am_time(updated),
        "comment": row.reason,
        "createdBy": row.owner,
        "endsAt": am_time(end),
        "matchers": [m.to_json() for m in row.label_matchers],
        "startsAt": am_time(start),
    }


def _silence_order(s: dict[str, Any]) -> tuple[int, float]:
    """Alertmanager's ``SortSilences``: active by end, pending by start, expired latest
    first (the times are in one format, so comparing the text compares the times)."""
    state = s["status"]["state"]
    if state == "pending":
        return (1, parse_time(s["startsAt"]) or 0.0)
    end = parse_time(s["endsAt"]) or 0.0
    return (_STATE_ORDER[state], end if state == "active" else -end)


def _postable(data: Any, now: float) -> tuple[list[LabelMatcher], float, float, str, str, str]:
    """Validate a ``postableSilence``; raise ValueError with Alertmanager's wording."""
    if not isinstance(data, dict):
        raise ValueError("silence in body must be of type object")
    for key in ("matchers", "startsAt", "endsAt", "createdBy", "comment"):
        if key not in data:
            raise ValueError(f"{key} in body is required")
    for key in ("startsAt", "endsAt", "createdBy", "comment"):
        if not isinstance(data[key], str) or not valid_text(data[key]):
            raise ValueError(f"{key} in body must be of type string")
    old_id = data.get("id") or ""
    if not isinstance(old_id, str):
        raise ValueError("id in body must be of type string")
    matchers = matchers_from_json(data["matchers"])  # MatcherError is a ValueError
    times = []
    for key in ("startsAt", "endsAt"):
        try:
            moment = parse_time(data[key])
        except ValueError:
            raise ValueError(f"{key} in body must be of type date-time: {data[key]!r}") from None
        if moment is None:
            raise ValueError(f"invalid zero {key[:-2]} timestamp")
        times.append(moment)
    start, end = times
    if start >= end:
        raise ValueError("Failed to create silence: start time must be before end time")
    if end < now:
        raise ValueError("Failed to create silence: end time can't be in the past")
    return matchers, start, end, data["createdBy"], data["comment"], old_id


def _flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name)
    if text is None:
        return True  # the API's default; amtool always sends every flag
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _error(400, f'{name} in query must be of type boolean: "{text}"')


def _filters(request: web.Request) -> list[LabelMatcher]:
    try:
        return parse_filters(request.query.getall("filter", []))
    except MatcherError as exc:
        raise _error(400, str(exc)) from None


class _ReadSide(Protocol):
    @property
    def conn(self) -> sqlite3.Connection: ...

    def wall_now(self) -> float: ...

    def current_config(self) -> Config: ...


def _filtered(ops: _ReadSide, request: web.Request) -> list[ApiAlert]:
    """The alerts ``GET /api/v2/alerts`` (and ``/groups``) answer with: Alertmanager's
    ``alertFilter`` (state flags, then matchers) and receiver regex."""
    filters = _filters(request)
    show_active = _flag(request, "active")
    silenced, inhibited = _flag(request, "silenced"), _flag(request, "inhibited")
    _flag(request, "unprocessed")  # validated; alertd has no unprocessed alerts
    receiver = request.query.get("receiver")
    receiver_ok: Callable[[str], bool] = lambda _: True  # noqa: E731
    if receiver:
        try:
            receiver_ok = compile_matcher_regex(receiver)
        except MatcherError as exc:
            raise _error(400, f"failed to parse receiver param: {exc}") from None
    now = ops.wall_now()
    config = ops.current_config()
    windows = [*from_config(config.channels), *from_rows(stored_windows(ops.conn, now))]
    out = []
    for alert in collect_alerts(ops.conn, config.channels, windows, now):
        if receiver and not any(receiver_ok(r) for r in alert.receivers):
            continue
        if not show_active and alert.state == "active":
            continue
        if (not silenced and alert.silenced_by) or (not inhibited and alert.inhibited_by):
            continue
        if filter_matches(filters, alert.labels):
            out.append(alert)
    return out


def _silence(ops: Operations, text: str) -> WindowRow:
    row_id = parse_silence_id(text)
    if row_id is None:
        raise _error(400, f'silenceID in path must be of type uuid: "{text}"')
    row = get_window(ops.conn, row_id)
    if row is None or row.kind != "silence":
        raise _error(404, f"silence {text} not found")
    return row


class _Reader:
    """``ops`` with its own read-only connection, for a worker thread."""

    def __init__(self, ops: Operations, conn: sqlite3.Connection) -> None:
        self._ops = ops
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def wall_now(self) -> float:
        return self._ops.wall_now()

    def current_config(self) -> Config:
        return self._ops.current_config()


class _SharedReads:
    """Concurrent identical GETs share one computation: Prometheus UIs, amtool and
    dashboards poll the same query. An answer is reused only while nothing was written on
    the daemon's connection since it started (``total_changes``) and for at most a second
    (alerts expire and windows open with time)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.running: dict[tuple[str, str], tuple[int, float, asyncio.Task[str]]] = {}

    async def get(self, key: tuple[str, str], work: Callable[[_ReadSide], str]) -> str:
        changes = self.ops.conn.total_changes
        now = time.monotonic()
        known = self.running.get(key)
        if known is not None and known[0] == changes and now - known[1] < SHARE_FOR:
            return await asyncio.shield(known[2])
        task = asyncio.create_task(_off_loop(self.ops, work))
        self.running[key] = (changes, now, task)
        if len(self.running) > 64:  # many distinct queries: forget the oldest
            del self.running[next(iter(self.running))]
        return await asyncio.shield(task)


SHARE_FOR = 1.0  # seconds an identical GET may reuse an answer (if nothing was written)


async def _off_loop(ops: Operations, work: Callable[[_ReadSide], str]) -> str:
    """Run a heavy read (10,000 alerts: about a second) in a thread on a read-only
    connection of its own, so the event loop keeps serving pages, ingest and sends."""
    return await read_in_thread(ops.conn, lambda conn: work(_Reader(ops, conn)))


def _json_text(text: str) -> web.Response:
    return web.Response(
        text=text, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _json(body: Any) -> web.Response:
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> web.HTTPException:
    """An Alertmanager-style error (the message as a JSON string), ready to raise."""
    kind: type[web.HTTPException] = web.HTTPNotFound if status == 404 else web.HTTPBadRequest
    return kind(text=json.dumps(message), content_type="application/json")
