"""``/api/v1`` on a real aiohttp server (127.0.0.1, port picked at run time) over the real
``Inbound`` and a SQLite state directory: filters, paging, detail, ack/resolve/comment with
the token's name on the timeline, windows, teams, KPIs, reload, JSON errors, and auth on every
endpoint of the route table.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.api.v1 import ENDPOINTS, Endpoint, openapi_spec
from alertd.model import IncidentState, Level
from alertd.state.maintenance import LabelMatcher, add_window
from tests.integration.api_harness import (
    T0,
    TOKENS,
    Harness,
    app_for,
    build,
    seed,
    start,
    write_config,
)

pytestmark = pytest.mark.integration


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    h: Harness

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = "admin",
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> tuple[int, Any]:
        """Send one request as the named token (None: no Authorization); return the status
        and the decoded JSON body (None when empty)."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {TOKENS[token][0] if token in TOKENS else token}"
        async with self.session.request(
            method, self.base + path, json=body, data=data, headers=hdrs, params=params
        ) as r:
            text = await r.text()
            if text:
                assert r.content_type == "application/json", (r.status, text)
            return r.status, json.loads(text) if text else None


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    h = build(tmp_path / "state", write_config(tmp_path / "cfg"))
    seed(h)
    runner, base = await start(app_for(h))
    async with aiohttp.ClientSession() as session:
        yield Api(base, session, h)
    await runner.cleanup()
    h.store.conn.close()


def ids(body: dict[str, Any]) -> list[int]:
    return [i["id"] for i in body["incidents"]]


# -- listing -----------------------------------------------------------------------------------
async def test_list_defaults_to_unresolved_newest_first(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/incidents", "reader")
    assert status == 200
    assert ids(body) == [4, 3, 2, 1]  # #5 is resolved
    assert body["total"] == 4
    assert body["next"] is None
    first = body["incidents"][-1]
    assert first["labels"] == {"criticality": "high", "instance": "web1", "job": "node"}
    assert (first["priority"], first["level"], first["state"]) == ("P1", "critical", "open")
    assert first["opened_at"] == "2026-08-20T09:00:00.000Z"  # T0 - 1h, RFC 3339 UTC
    assert first["respond_by"] == "2026-08-20T09:05:00.000Z"  # P1: respond within 5m
    assert first["resolve_by"] == "2026-08-20T10:00:00.000Z"  # P1: resolve within 1h
    assert first["teams"] == ["netops", "oncall2"]  # tier 1 and tier 2 of its route
    disk = body["incidents"][1]
    assert disk["respond_by"] is None  # P3 has no target
    assert disk["teams"] == []  # routed to a channel only


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("state", "resolved")], [5]),
        ([("state", "open"), ("state", "resolved")], [5, 4, 3, 2, 1]),
        ([("state", "all")], [5, 4, 3, 2, 1]),  # as the CLI's --state all
        ([("priority", "P2")], [2]),
        ([("priority", "P1"), ("priority", "P3"), ("state", "resolved")], []),
        ([("team", "oncall2")], [2, 1]),
        ([("team", "netops")], [4, 2, 1]),
        ([("team", "nobody")], []),
        ([("match", "instance=web2")], [2]),
        ([("match", "job!=node")], [4]),
        ([("match", "instance=~web.*")], [2, 1]),
        ([("match", "instance=~web")], []),  # anchored: the whole value must match
        ([("match", "instance!~web.*|db1")], [4]),
        ([("match", "site=")], [3, 2, 1]),  # a missing label is ""
        ([("match", "job=node"), ("match", "instance!=web1"), ("priority", "P2")], [2]),
        ([("team", "netops"), ("match", "site=lab")], [4]),
    ],
)
async def test_list_filters(api: Api, params: list[tuple[str, str]], expected: list[int]) -> None:
    status, body = await api.call("GET", "/api/v1/incidents", "reader", params=params)
    assert status == 200, body
    assert ids(body) == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ([("state", "closed")], "state"),
        ([("priority", "P9")], "priority"),
        ([("match", "instance")], "match"),
        ([("match", "1abc=x")], "match"),
        ([("match", "instance=~(")], "regular expression"),
        ([("limit", "0")], "limit"),
        ([("limit", "501")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("offset", "-1")], "offset"),
        ([("cursor", "abc")], "cursor"),
        ([("team", "a"), ("team", "b")], "team"),
    ],
)
async def test_list_rejects_bad_parameters(
    api: Api, params: list[tuple[str, str]], names: str
) -> None:
    status, body = await api.call("GET", "/api/v1/incidents", "reader", params=params)
    assert status == 400
    assert body["code"] == "bad_request"
    assert names in body["message"]


@pytest.mark.parametrize("extra", [[], [("match", "job=bulk")]], ids=["sql", "matchers"])
async def test_paging_by_cursor_and_offset(api: Api, extra: list[tuple[str, str]]) -> None:
    for n in range(23):
        api.h.fire("bulk", {"instance": f"b{n:02d}", "job": "bulk"}, Level.MINOR, 1.0)
    filters = [("priority", "P4"), *extra]  # minor x medium impact: P4, the bulk ones only
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: 23 incidents in pages of 5
        params = [*filters, ("limit", "5")] + ([("cursor", cursor)] if cursor else [])
        status, body = await api.call("GET", "/api/v1/incidents", "reader", params=params)
        assert status == 200
        assert body["total"] == 23
        seen += ids(body)
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 23
    assert seen == sorted(seen, reverse=True)  # newest first, no repeats
    params = [*filters, ("limit", "5"), ("cursor", str(seen[4])), ("offset", "5")]
    _, body = await api.call("GET", "/api/v1/incidents", "reader", params=params)
    assert ids(body) == seen[10:15]
    params = [*filters, ("limit", "5"), ("offset", "20")]
    status, body = await api.call("GET", "/api/v1/incidents", "reader", params=params)
    assert ids(body) == seen[20:]
    assert body["next"] is None


# -- one incident ------------------------------------------------------------------------------
async def test_detail_has_alerts_timeline_and_deliveries(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/incidents/4", "reader")
    assert status == 200
    assert body["labels"] == {"site": "lab"}  # a group: its group_by labels
    assert [(a["labels"]["instance"], a["state"]) for a in body["alerts"]] == [
        ("sw1", "firing"),
        ("sw2", "firing"),
    ]
    assert body["timeline"][0]["kind"] == "opened"
    assert body["timeline"][0]["at"] == "2026-08-20T09:03:00.000Z"
    assert [(d["channel"], d["state"], d["attempts"]) for d in body["deliveries"]] == [
        ("log", "pending", 0)
    ]
    assert body["deliveries"][0]["team"] == "netops"
    assert "recipients" not in body["deliveries"][0]  # addresses are personal data

    status, body = await api.call("GET", "/api/v1/incidents/999", "reader")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await api.call("GET", "/api/v1/incidents/99999999999999999999", "reader")
    assert (status, body["code"]) == (404, "not_found")  # beyond SQLite's integers
    status, body = await api.call("GET", "/api/v1/incidents/" + "9" * 5000, "reader")
    assert (status, body["code"]) == (404, "not_found")  # beyond int()'s digit limit


# -- responding --------------------------------------------------------------------------------
async def test_ack_resolve_comment_record_the_token_name(api: Api) -> None:
    path = "/api/v1/incidents/1"
    status, body = await api.call("POST", f"{path}/ack", "responder", {"comment": "on it"})
    assert status == 200
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "responder")
    assert body["acknowledged_at"] == "2026-08-20T10:00:00.000Z"

    status, body = await api.call("POST", f"{path}/ack", "responder")
    assert (status, body["code"]) == (409, "conflict")
    assert "acknowledged" in body["message"]

    status, body = await api.call("POST", f"{path}/comment", "admin", {"text": "fibre cut"})
    assert (status, body["id"]) == (200, 1)

    api.h.clock.advance(60)
    status, body = await api.call("POST", f"{path}/resolve", "responder", data=b"")
    assert (status, body["state"]) == (200, "resolved")
    assert body["resolved_at"] == "2026-08-20T10:01:00.000Z"
    status, body = await api.call("POST", f"{path}/resolve", "responder")
    assert (status, body["code"]) == (409, "conflict")

    _, detail = await api.call("GET", path, "reader")
    by_hand = [(t["kind"], t["actor"], t["detail"]) for t in detail["timeline"][1:]]
    assert by_hand == [
        ("acknowledged", "responder", "acknowledged via api: on it"),
        # nothing delivers here: the unsent "opened" page asks nobody to act any more
        (
            "superseded",
            "log",
            "opened via log: not sent: acknowledged by responder before it went out",
        ),
        ("comment", "admin", "fibre cut"),
        ("resolved", "responder", "resolved by hand via api"),
    ]
    # the resolve notifies like any resolve does: its intent is in the outbox
    deliveries = [(d["transition"], d["state"]) for d in detail["deliveries"]]
    assert deliveries == [("opened", "superseded"), ("resolved", "pending")]
    assert api.h.store.get(1).state is IncidentState.RESOLVED  # type: ignore[union-attr]


@pytest.mark.parametrize("action", ["ack", "resolve", "comment"])
async def test_respond_to_a_missing_incident_is_404(api: Api, action: str) -> None:
    body = {"text": "x"} if action == "comment" else {"comment": "x"}
    status, got = await api.call("POST", f"/api/v1/incidents/999/{action}", "responder", body)
    assert (status, got["code"]) == (404, "not_found")
    assert "#999" in got["message"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"body": {}}, 400, "bad_request"),  # text is required
        ({"body": {"text": ""}}, 400, "bad_request"),
        ({"body": {"text": 5}}, 400, "bad_request"),
        ({"body": {"text": "x", "extra": 1}}, 400, "bad_request"),
        ({"body": ["text"]}, 400, "bad_request"),
        ({"data": b"null"}, 400, "bad_request"),
        ({"body": {"text": "x" * 4097}}, 400, "bad_request"),
        ({}, 400, "bad_request"),  # no body at all
        ({"data": b"{not json"}, 400, "bad_request"),
        ({"data": b'{"text": NaN}'}, 400, "bad_request"),
        ({"data": b"[" * 30000 + b"]" * 30000}, 400, "bad_request"),  # nesting, not a crash
        ({"data": b'{"text": "x"}', "headers": {"Content-Type": "text/plain"}}, 415, None),
        ({"data": b'{"text": "' + b"x" * 70000 + b'"}'}, 413, "payload_too_large"),
    ],
)
async def test_comment_body_errors(
    api: Api, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    if "data" in kwargs:
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
    got, body = await api.call("POST", "/api/v1/incidents/2/comment", "responder", **kwargs)
    assert got == status
    assert body["code"] == (code or "unsupported_media_type")
    _, detail = await api.call("GET", "/api/v1/incidents/2", "reader")
    assert [t["kind"] for t in detail["timeline"]] == ["opened"]  # nothing was added


# -- maintenance windows and silences ----------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "kind"), [("maintenance", "maintenance"), ("silences", "silence")]
)
async def test_windows_add_list_remove(api: Api, path: str, kind: str) -> None:
    url = f"/api/v1/{path}"
    status, body = await api.call("GET", url, "reader")
    assert status == 200
    configured = [w for w in body["windows"] if w["source"] == "config"]
    if kind == "maintenance":
        assert [(w["name"], w["id"], w["weekly"]["at"]) for w in configured] == [
            ("CHG-1", None, "02:00")
        ]
        assert configured[0]["active"] is False  # a Thursday morning
    else:
        assert configured == []

    new = {"match": {"instance": ["web9"]}, "duration": "2h", "reason": "replacing a disk"}
    status, made = await api.call("POST", url, "admin", new)
    assert status == 201
    assert made["kind"] == kind
    assert (made["owner"], made["source"], made["active"]) == ("admin", "stored", True)
    assert (made["start"], made["end"]) == ("2026-08-20T10:00:00.000Z", "2026-08-20T12:00:00.000Z")
    later = {
        "match": {"site": ["lab", "dc2"]},
        "start": "2026-08-21T22:00:00+02:00",
        "end": "2026-08-21T23:30:00Z",
        "reason": "core upgrade",
        "owner": "CHG-77",
    }
    status, upcoming = await api.call("POST", url, "admin", later)
    assert status == 201
    assert (upcoming["start"], upcoming["active"]) == ("2026-08-21T20:00:00.000Z", False)
    assert upcoming["match"] == {"site": ["lab", "dc2"]}
    assert upcoming["matchers"] == [{"name": "site", "op": "=~", "value": "lab|dc2"}]

    _, body = await api.call("GET", url, "reader")
    stored = [(w["id"], w["owner"]) for w in body["windows"] if w["source"] == "stored"]
    assert stored == [(made["id"], "admin"), (upcoming["id"], "CHG-77")]
    other = "silences" if kind == "maintenance" else "maintenance"
    _, body = await api.call("GET", f"/api/v1/{other}", "reader")
    assert made["id"] not in [w["id"] for w in body["windows"]]  # each kind lists its own

    # the window is in force: a new incident it covers pages nobody, and says why
    api.h.fire("cpu", {"instance": "web9", "job": "node"}, Level.CRITICAL)
    incident = api.h.store.get(api.h.incident_id("web9"))
    assert incident is not None
    assert incident.suppressed_by == f"{kind} #{made['id']} (replacing a disk)"

    status, body = await api.call("DELETE", f"{url}/{made['id']}", "admin")
    assert (status, body) == (204, None)
    status, body = await api.call("DELETE", f"{url}/{made['id']}", "admin")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await api.call("DELETE", f"/api/v1/{other}/{upcoming['id']}", "admin")
    assert (status, body["code"]) == (404, "not_found")  # not that kind
    _, body = await api.call("GET", url, "reader")
    assert [w["id"] for w in body["windows"] if w["source"] == "stored"] == [upcoming["id"]]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"match": {"a": ["b"]}, "reason": "r"}, "end or duration"),
        (
            {"match": {"a": ["b"]}, "reason": "r", "duration": "1h", "end": "2026-08-21T00:00:00Z"},
            "one of",
        ),
        ({"match": {}, "reason": "r", "duration": "1h"}, "match"),
        ({"match": {"a": "b"}, "reason": "r", "duration": "1h"}, "match.a"),
        ({"match": {"a b": ["c"]}, "reason": "r", "duration": "1h"}, "label name"),
        ({"match": {"a": ["b"]}, "duration": "1h"}, "reason"),
        ({"match": {"a": ["b"]}, "reason": "r", "duration": "soon"}, "duration"),
        ({"match": {"a": ["b"]}, "reason": "r", "duration": "0s"}, "duration"),
        ({"match": {"a": ["b"]}, "reason": "r", "duration": "400d"}, "duration"),
        ({"match": {"a": ["b"]}, "reason": "r", "end": "2026-08-20T09:00:00Z"}, "over already"),
        ({"match": {"a": ["b"]}, "reason": "r", "end": "2026-08-21T09:00:00"}, "offset"),
        ({"match": {"a": ["b"]}, "reason": "r", "start": None, "duration": "1h"}, "start"),
        (
            {
                "match": {"a": ["b"]},
                "reason": "r",
                "start": "2026-08-21T00:00:00Z",
                "end": "2026-08-20T23:00:00Z",
            },
            "after it starts",
        ),
        (
            {
                "match": {"a": ["b"]},
                "reason": "r",
                "start": "2030-01-01T00:00:00Z",
                "duration": "1h",
            },
            "366d",
        ),
        ({"match": {"a": ["b"]}, "reason": "r", "duration": "1h", "who": "me"}, "unknown"),
    ],
)
async def test_window_body_errors(api: Api, body: dict[str, Any], names: str) -> None:
    status, got = await api.call("POST", "/api/v1/silences", "admin", body)
    assert (status, got["code"]) == (400, "bad_request")
    assert names in got["message"]
    _, listed = await api.call("GET", "/api/v1/silences", "reader")
    assert listed["windows"] == []


# -- teams, KPIs, reload -----------------------------------------------------------------------
async def test_teams_show_tiers_and_contacts_only_to_admins(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/teams", "reader")
    assert status == 200
    netops = body["teams"][0]
    assert netops["name"] == "netops"
    assert netops["members"] == [
        {"name": "Alice", "contacts": ["email", "phone"]},
        {"name": "Bob", "contacts": ["im"]},
    ]
    assert "+15550100002" not in json.dumps(body)
    escalating = body["routes"][1]
    assert escalating["match"] == {"priority": ["P1", "P2"]}
    assert escalating["tiers"] == [
        {"tier": 1, "after": 0.0, "notify": ["netops"]},
        {"tier": 2, "after": 600.0, "notify": ["oncall2"]},
    ]
    assert body["routes"][0]["group_by"] == ["site"]

    _, body = await api.call("GET", "/api/v1/teams", "admin")
    alice = body["teams"][0]["members"][0]
    assert (alice["email"], alice["phone"], alice["im"]) == (
        "alice@example.com",
        "+15550100001",
        None,
    )


async def test_kpis(api: Api) -> None:
    await api.call("POST", "/api/v1/incidents/2/ack", "responder")
    status, body = await api.call("GET", "/api/v1/kpis", "reader", params={"since": "7d"})
    assert status == 200
    assert body["now"] == "2026-08-20T10:00:00.000Z"
    assert body["since"] == "2026-08-13T10:00:00.000Z"
    assert (body["total"]["incidents"], body["total"]["acknowledged"]) == (5, 1)
    by_priority = {g["key"]: g for g in body["by_priority"]}
    assert set(by_priority) >= {"P1", "P2"}  # every priority with a target has a row
    assert by_priority["P2"]["mtta"] == 3540.0  # opened 09:01, acknowledged 10:00
    assert by_priority["P1"]["respond_breaches"] == 1  # unacknowledged for an hour
    assert {g["key"] for g in body["by_team"]} == {"netops", "-"}
    assert [(n["rule"], n["incidents"]) for n in body["noise"]] == [
        ("cpu", 3),
        ("disk", 1),
        ("ifdown", 1),
    ]
    status, body = await api.call("GET", "/api/v1/kpis", "reader", params={"since": "1y"})
    assert (status, body["code"]) == (400, "bad_request")  # no unit y: 365d
    status, body = await api.call("GET", "/api/v1/kpis", "reader", params={"since": "99999w"})
    assert (status, body["since"]) == (200, "1970-01-01T00:00:00.000Z")  # all of them


async def test_reload(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/reload", "admin")
    assert (status, body) == (200, {"reloaded": True})
    api.h.reload_result = False
    api.h.reload_problems = ("channels.yaml:9:63: channels.hook.retires: unknown key",)
    status, body = await api.call("POST", "/api/v1/reload", "admin")
    assert (status, body["code"]) == (409, "config_rejected")
    assert "channels.yaml:9:63: channels.hook.retires: unknown key" in body["message"]
    assert api.h.reloads == [True, False]


# -- errors and the spec -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/api/v1/nothing-here", 404, None),
        ("GET", "/api/v1/incidents/abc", 404, None),
        ("GET", "/api/v1/", 404, None),
        ("DELETE", "/api/v1/incidents", 405, "GET, HEAD"),
        ("GET", "/api/v1/incidents/3/ack", 405, "POST"),
        ("PUT", "/api/v1/silences/1", 405, "DELETE"),
        ("GET", "/api/v1/nothing%0A", 404, None),  # a path that decodes to a newline
        ("DELETE", "/api/v1/silences/a%0Ab", 404, None),  # found by schemathesis
    ],
)
async def test_unknown_paths_and_methods_answer_json(
    api: Api, method: str, path: str, status: int, allow: str | None
) -> None:
    async with api.session.request(method, api.base + path) as r:
        assert r.status == status
        body = await r.json()
        assert body["code"] == ("not_found" if status == 404 else "method_not_allowed")
        assert r.headers.get("Allow") == allow


async def test_spec_documents_every_endpoint_with_its_scope(api: Api) -> None:
    status, served = await api.call("GET", "/api/v1/openapi.json", None)
    assert status == 200
    assert served == json.loads(openapi_spec())
    documented = {
        (method.upper(), path, op.get("x-scope"))
        for path, item in served["paths"].items()
        for method, op in item.items()
    }
    assert documented == {(e.method, e.path, e.scope) for e in ENDPOINTS}
    for path, item in served["paths"].items():
        for op in item.values():
            if op.get("x-scope") is not None:
                assert {"401", "403"} <= set(op["responses"]), path
            if "{id}" in path:
                assert "404" in op["responses"], path


async def test_a_slow_body_does_not_block_other_clients(api: Api) -> None:
    host, port = api.base.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/incidents/1/comment HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + TOKENS["responder"][0].encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te'
        )
        await writer.drain()
        status, body = await api.call("GET", "/api/v1/incidents", "reader")
        assert (status, body["total"]) == (200, 4)  # answered while that body dawdles
    finally:
        writer.close()
        await writer.wait_closed()


# -- auth: every endpoint of the route table ---------------------------------------------------
LACKING = {"read": "prometheus", "respond": "reader", "admin": "responder"}
PROTECTED = [e for e in ENDPOINTS if e.scope is not None]


def _request(e: Endpoint) -> tuple[str, dict[str, Any] | None]:
    body = {"text": "x"} if e.path.endswith("comment") else None
    if e.method == "POST" and e.path.endswith(("maintenance", "silences")):
        body = {"match": {"a": ["b"]}, "duration": "1h", "reason": "r"}
    return e.path.replace("{id}", "1"), body


def test_every_endpoint_but_the_spec_needs_a_scope() -> None:
    assert [e.path for e in ENDPOINTS if e.scope is None] == ["/api/v1/openapi.json"]
    assert len(PROTECTED) == len(ENDPOINTS) - 1


@pytest.mark.parametrize("e", PROTECTED, ids=lambda e: f"{e.method} {e.path}")
async def test_every_endpoint_refuses_missing_unknown_and_unscoped_tokens(
    api: Api, e: Endpoint
) -> None:
    path, body = _request(e)
    before = api.h.store.conn.execute("SELECT total_changes()").fetchone()
    status, got = await api.call(e.method, path, None, body)
    assert (status, got["code"], got["message"]) == (
        401,
        "unauthorized",
        "a bearer token is needed",
    )
    status, got = await api.call(e.method, path, "not-a-known-token", body)
    assert (status, got["message"]) == (401, "this bearer token is not known")  # not "needed"
    status, got = await api.call(e.method, path, LACKING[e.scope], body)  # type: ignore[index]
    assert (status, got["code"]) == (403, "forbidden")
    assert e.scope in got["message"]
    after = api.h.store.conn.execute("SELECT total_changes()").fetchone()
    assert after == before  # refused requests changed nothing
    assert api.h.reloads == []
    status, got = await api.call(e.method, path, "admin", body)
    assert status in (200, 201, 204, 404), (e, status, got)  # the right token gets through


async def test_unauthorized_names_the_bearer_scheme(api: Api) -> None:
    async with api.session.get(api.base + "/api/v1/incidents") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_ack_body_may_be_left_out_but_not_null(api: Api) -> None:
    hdrs = {"Content-Type": "application/json"}
    status, body = await api.call(
        "POST", "/api/v1/incidents/1/ack", "responder", data=b"null", headers=hdrs
    )
    assert (status, body["code"]) == (400, "bad_request")
    status, body = await api.call(
        "POST", "/api/v1/incidents/1/ack", "responder", data=b"{}", headers=hdrs
    )
    assert (status, body["state"]) == (200, "acknowledged")


async def test_a_silence_made_with_alertmanager_matchers_lists_them(api: Api) -> None:
    with api.h.store.transaction():
        add_window(
            api.h.store.conn,
            kind="silence",
            matchers=[
                LabelMatcher("instance", "web.*", is_regex=True),
                LabelMatcher("job", "x", is_equal=False),
            ],
            start=T0,
            end=T0 + 3600,
            reason="from amtool",
            owner="bob",
            now=T0,
        )
    _, body = await api.call("GET", "/api/v1/silences", "reader")
    (made,) = body["windows"]
    assert made["match"] is None  # not expressible as label -> values
    assert made["matchers"] == [
        {"name": "instance", "op": "=~", "value": "web.*"},
        {"name": "job", "op": "!=", "value": "x"},
    ]


async def test_head_works_where_get_does(api: Api) -> None:
    hdrs = {"Authorization": f"Bearer {TOKENS['reader'][0]}"}
    async with api.session.head(api.base + "/api/v1/incidents", headers=hdrs) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
    async with api.session.head(api.base + "/api/v1/incidents") as r:
        assert r.status == 401


async def test_by_names_who_acts_and_a_shared_token_stays_on_the_record(api: Api) -> None:
    path = "/api/v1/incidents/1"
    status, body = await api.call("POST", f"{path}/ack", "responder", {"by": "wang"})
    assert (status, body["acknowledged_by"]) == (200, "wang")
    body = {"text": "fibre cut", "by": "li"}
    assert (await api.call("POST", f"{path}/comment", "responder", body))[0] == 200
    body = {"by": "responder"}  # the token's own name: nothing to add
    assert (await api.call("POST", f"{path}/resolve", "responder", body))[0] == 200

    _, detail = await api.call("GET", path, "reader")
    said = [(t["kind"], t["actor"], t["detail"]) for t in detail["timeline"][1:]]
    assert [line for line in said if line[0] != "superseded"][:3] == [
        ("acknowledged", "wang", "acknowledged via api (token responder)"),
        ("comment", "li (token responder)", "fibre cut"),
        ("resolved", "responder", "resolved by hand via api"),
    ]


@pytest.mark.parametrize("by", ["", "   ", "alertd", "x" * 201, "wang\nresolved by boss", 7])
async def test_a_bad_by_is_refused_and_changes_nothing(api: Api, by: Any) -> None:
    status, body = await api.call("POST", "/api/v1/incidents/2/ack", "responder", {"by": by})
    assert (status, body["code"]) == (400, "bad_request")
    assert "by" in body["message"]
    _, detail = await api.call("GET", "/api/v1/incidents/2", "reader")
    assert detail["state"] == "open"


async def test_on_an_open_api_by_is_the_actor(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg")
    (cfg / "server.yaml").write_text("tokens: {}\n")
    h = build(tmp_path / "state", cfg)
    seed(h)
    runner, base = await start(app_for(h))
    try:
        async with aiohttp.ClientSession() as session:
            open_api = Api(base, session, h)
            status, body = await open_api.call("POST", "/api/v1/incidents/1/ack", None)
            assert (status, body["acknowledged_by"]) == (200, "anonymous")
            path = "/api/v1/incidents/2/ack"
            status, body = await open_api.call("POST", path, None, {"by": "wang"})
            assert (status, body["acknowledged_by"]) == (200, "wang")
            _, detail = await open_api.call("GET", "/api/v1/incidents/2", None)
            acks = [t for t in detail["timeline"] if t["kind"] == "acknowledged"]
            assert [(t["actor"], t["detail"]) for t in acks] == [("wang", "acknowledged via api")]
    finally:
        await runner.cleanup()
        h.store.conn.close()
