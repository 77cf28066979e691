"""The JSON API, ``/api/v1/...``: incidents, acknowledge/resolve/comment, maintenance windows
and silences, teams and their escalation tiers, KPIs, reload. ``openapi.json`` beside this
module documents it and is served at ``/api/v1/openapi.json``.

Reads go straight to the state database (``ops.conn``, synchronously on the event loop: the
queries are indexed and short); changes go through ``Operations`` so they land on timelines
with the acting token's name. Every endpoint is declared once in ``ENDPOINTS`` with its scope,
and the scope is checked before a handler runs, so none can skip it. The last route answers
every other ``/api/v1/`` request: 405 (with ``Allow``) for a known path, else 404, as JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from aiohttp import web

from alertd.api.auth import Authorizer
from alertd.api.bodies import DURATION, WindowRequest, json_object, text_field
from alertd.api.errors import ApiError, guard, json_error, read_json
from alertd.api.ops import Action, Operations, Outcome
from alertd.api.queries import IncidentQuery, find_incidents
from alertd.api.views import (
    incident_detail_json,
    incident_json,
    kpis_json,
    teams_json,
    window_json,
    windows_json,
)
from alertd.config.channels import ChannelsFile
from alertd.config.server import Scope
from alertd.config.types import parse_duration
from alertd.incidents.kpi import compute_kpis
from alertd.incidents.kpi_facts import incident_facts
from alertd.incidents.maintenance import Window
from alertd.state.incidents import IncidentStore

PREFIX = "/api/v1"
MAX_ID = 2**63 - 1  # SQLite's largest integer
DEFAULT_KPI_SINCE = "30d"

WindowKind = Literal["maintenance", "silence"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation: method, path (``{id}`` is a positive integer), the scope it needs
    (None: open to all) and its handler's name in ``api_v1_routes``."""

    method: str
    path: str
    scope: Scope | None
    handler: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.escape(self.path).replace(r"\{id\}", "[0-9]+") + "$")


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", f"{PREFIX}/openapi.json", None, "openapi"),
    Endpoint("GET", f"{PREFIX}/incidents", "read", "list_incidents"),
    Endpoint("GET", f"{PREFIX}/incidents/{{id}}", "read", "get_incident"),
    Endpoint("POST", f"{PREFIX}/incidents/{{id}}/ack", "respond", "ack"),
    Endpoint("POST", f"{PREFIX}/incidents/{{id}}/resolve", "respond", "resolve"),
    Endpoint("POST", f"{PREFIX}/incidents/{{id}}/comment", "respond", "comment"),
    Endpoint("GET", f"{PREFIX}/maintenance", "read", "list_maintenance"),
    Endpoint("POST", f"{PREFIX}/maintenance", "admin", "add_maintenance"),
    Endpoint("DELETE", f"{PREFIX}/maintenance/{{id}}", "admin", "remove_maintenance"),
    Endpoint("GET", f"{PREFIX}/silences", "read", "list_silences"),
    Endpoint("POST", f"{PREFIX}/silences", "admin", "add_silence"),
    Endpoint("DELETE", f"{PREFIX}/silences/{{id}}", "admin", "remove_silence"),
    Endpoint("GET", f"{PREFIX}/teams", "read", "teams"),
    Endpoint("GET", f"{PREFIX}/kpis", "read", "kpis"),
    Endpoint("POST", f"{PREFIX}/reload", "admin", "reload"),
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's name and its scopes (None: no tokens configured,
    the API is open and everything is allowed)."""

    name: str
    scopes: frozenset[str] | None

    def can(self, scope: Scope) -> bool:
        return self.scopes is None or scope in self.scopes


Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]

BY_MAX = 200  # characters of a ``by`` name
SYSTEM_ACTOR = "alertd"  # the actor of the timeline lines alertd writes itself
_RESPOND_FIELDS = frozenset({"comment", "by"})
_COMMENT_FIELDS = frozenset({"text", "by"})


def _acting(caller: Caller, body: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return who acts, and the token they act through when that is someone else's.

    ``by`` names the person: on an open API it is all there is (else ``anonymous``); with
    tokens, a shared one (a chat bot's) acts for the person it names, and the token stays
    on the record beside them.
    """
    given = "by" in body
    by = text_field(body, "by", required=False, limit=BY_MAX).strip()
    if given and not by:
        raise ApiError(400, "by: a name is required (leave the field out to act as yourself)")
    if not by.isprintable():  # it is shown in notifications and log lines, one line each
        raise ApiError(400, "by: a name on one line, without control characters")
    if by == SYSTEM_ACTOR:  # the timeline's own lines: nobody writes as alertd
        raise ApiError(400, f"by: {SYSTEM_ACTOR!r} is alertd's own name on the timeline")
    if not by or by == caller.name:
        return caller.name, None
    return by, None if caller.scopes is None else caller.name


def openapi_spec() -> bytes:
    """Return the OpenAPI document of this API (``alertd/api/openapi.json``)."""
    return resources.files("alertd.api").joinpath("openapi.json").read_bytes()


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=functools.partial(json.dumps, allow_nan=False)
    )


def _id(request: web.Request) -> int:
    text = request.match_info["id"]  # digits, by the route
    if len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        raise ApiError(404, f"no such id {text[:40]}")
    return int(text)


def _outcome(outcome: Outcome) -> None:
    if outcome.status == "not_found":
        raise ApiError(404, outcome.message)
    if outcome.status == "conflict":
        raise ApiError(409, outcome.message)


def api_v1_routes(ops: Operations, authorizer: Callable[[], Authorizer]) -> list[web.RouteDef]:
    """Return the ``/api/v1`` routes, the catch-all for unknown paths last.

    ``authorizer`` is called per request, so tokens follow reloads. Add these routes after
    any other ``/api/v1`` route: the catch-all would shadow one added later."""
    spec = openapi_spec()

    def channels() -> ChannelsFile:
        return ops.current_config().channels

    async def openapi(_: web.Request, __: Caller) -> web.StreamResponse:
        return web.Response(body=spec, content_type="application/json")

    # -- incidents -------------------------------------------------------------------------
    async def list_incidents(request: web.Request, _: Caller) -> web.StreamResponse:
        query = IncidentQuery.parse(request.query)
        ch = channels()
        page = find_incidents(ops.conn, query, ch)
        return _json(
            {
                "incidents": [incident_json(i, ch) for i in page.incidents],
                "next": page.next,
                "total": page.total,
            }
        )

    async def get_incident(request: web.Request, _: Caller) -> web.StreamResponse:
        incident_id = _id(request)
        incident = IncidentStore(ops.conn).get(incident_id)
        if incident is None:
            raise ApiError(404, f"no incident #{incident_id}")
        return _json(incident_detail_json(ops.conn, incident, channels()))

    def _current(incident_id: int) -> web.Response:
        incident = IncidentStore(ops.conn).get(incident_id)
        if incident is None:  # gone between the change and now: cannot happen, say so
            raise ApiError(404, f"no incident #{incident_id}")
        return _json(incident_json(incident, channels()))

    async def respond(action: Action, request: web.Request, caller: Caller) -> web.Response:
        incident_id = _id(request)
        body = json_object(await read_json(request, required=False), _RESPOND_FIELDS)
        comment = text_field(body, "comment", required=False) or None
        who, token = _acting(caller, body)
        how = "api" if token is None else f"api (token {token})"
        _outcome(ops.respond(action, incident_id, who, how, comment))
        return _current(incident_id)

    async def ack(request: web.Request, caller: Caller) -> web.StreamResponse:
        return await respond("ack", request, caller)

    async def resolve(request: web.Request, caller: Caller) -> web.StreamResponse:
        return await respond("resolve", request, caller)

    async def comment(request: web.Request, caller: Caller) -> web.StreamResponse:
        incident_id = _id(request)
        body = json_object(await read_json(request, required=True), _COMMENT_FIELDS)
        who, token = _acting(caller, body)
        who = who if token is None else f"{who} (token {token})"
        _outcome(ops.comment(incident_id, who, text_field(body, "text", required=True)))
        return _current(incident_id)

    # -- maintenance windows and silences ----------------------------------------------------
    def list_windows(kind: WindowKind) -> Handler:
        async def handler(_: web.Request, __: Caller) -> web.StreamResponse:
            now = ops.wall_now()
            return _json({"windows": windows_json(ops.conn, channels(), kind, now)})

        return handler

    def add_window(kind: WindowKind) -> Handler:
        async def handler(request: web.Request, caller: Caller) -> web.StreamResponse:
            now = ops.wall_now()
            raw = await read_json(request, required=True)
            w = WindowRequest.parse(raw, now, caller.name)
            window_id = ops.add_window(kind, w.matchers, w.start, w.end, w.reason, w.owner)
            window = Window(f"#{window_id}", kind, w.matchers, w.reason, w.owner, w.start, w.end)
            location = f"{PREFIX}/{'maintenance' if kind == 'maintenance' else 'silences'}"
            return _json(
                window_json(window, window_id, now),
                status=201,
                headers={"Location": f"{location}/{window_id}"},
            )

        return handler

    def remove_window(kind: WindowKind) -> Handler:
        async def handler(request: web.Request, _: Caller) -> web.StreamResponse:
            window_id = _id(request)
            if not ops.remove_window(kind, window_id):
                raise ApiError(404, f"no {kind} #{window_id} in force")
            return web.Response(status=204)

        return handler

    # -- teams, KPIs, reload -------------------------------------------------------------------
    async def teams(_: web.Request, caller: Caller) -> web.StreamResponse:
        return _json(teams_json(channels(), contacts=caller.can("admin")))

    async def kpis(request: web.Request, _: Caller) -> web.StreamResponse:
        values = request.query.getall("since", [DEFAULT_KPI_SINCE])
        if len(values) > 1:
            raise ApiError(400, "since: give it once")
        text = values[0]
        if not DURATION.match(text) or len(text) > 64:
            raise ApiError(400, "since: expected a duration such as 7d, 30d or 12h")
        now = ops.wall_now()
        ch = channels()
        since = max(now - parse_duration(text), 0.0)  # before 1970: all of them
        report = compute_kpis(
            incident_facts(ops.conn, since, ch), ch.priorities.targets, since, now
        )
        return _json(kpis_json(report))

    async def reload(_: web.Request, __: Caller) -> web.StreamResponse:
        if not await ops.reload():
            problems = list(ops.reload_rejected_for())
            why = "; ".join(problems[:5]) + (
                f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            raise ApiError(
                409,
                f"config rejected; still running the previous one: {why or 'see the log'}",
                code="config_rejected",
            )
        return _json({"reloaded": True})

    handlers: dict[str, Handler] = {
        "openapi": openapi,
        "list_incidents": list_incidents,
        "get_incident": get_incident,
        "ack": ack,
        "resolve": resolve,
        "comment": comment,
        "list_maintenance": list_windows("maintenance"),
        "add_maintenance": add_window("maintenance"),
        "remove_maintenance": remove_window("maintenance"),
        "list_silences": list_windows("silence"),
        "add_silence": add_window("silence"),
        "remove_silence": remove_window("silence"),
        "teams": teams,
        "kpis": kpis,
        "reload": reload,
    }
    routes = []
    for e in ENDPOINTS:
        path = e.path.replace("{id}", r"{id:\d+}")
        handler = guard(_authorized(e.scope, authorizer, handlers[e.handler]))
        # a GET answers HEAD too (aiohttp's ``web.get`` adds it)
        routes.append(
            web.get(path, handler) if e.method == "GET" else web.route(e.method, path, handler)
        )
    # [\s\S], not ".": a path may decode to a newline (%0A), and "." stops at it
    routes.append(web.route("*", PREFIX + r"/{tail:[\s\S]*}", guard(_unknown)))
    return routes


def _authorized(
    scope: Scope | None, authorizer: Callable[[], Authorizer], handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def checked(request: web.Request) -> web.StreamResponse:
        if scope is None:
            return await handler(request, Caller("anonymous", None))
        auth = authorizer()
        name = auth.require(request, scope)  # raises the JSON 401/403
        found = None if auth.open else auth.identify(request)
        return await handler(request, Caller(name, None if found is None else found[1]))

    return checked


async def _unknown(request: web.Request) -> web.StreamResponse:
    allowed = sorted({e.method for e in ENDPOINTS if e.pattern.match(request.path)})
    if allowed:
        if "GET" in allowed:
            allowed.append("HEAD")
        return json_error(
            405,
            f"{request.method} is not allowed on {request.path} (allowed: {', '.join(allowed)})",
            headers={"Allow": ", ".join(allowed)},
        )
    return json_error(404, f"no such endpoint {request.path}")
