"""The web board on a real aiohttp server (127.0.0.1, ephemeral port) over the daemon's real
``Inbound`` and state database, driven with aiohttp's client as a browser would: cookies,
forms with their CSRF field, redirects."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertd.api.auth import Authorizer
from alertd.board import session
from alertd.config.server import ApiToken
from alertd.model import Incident, IncidentState, Level
from tests.board_stack import NOW, TOKENS, BoardStack, alert, build_stack, seed, sha

pytestmark = pytest.mark.integration

RESPONDER, VIEWER, ADMIN, INGEST = "alice-oncall", "viewer", "ops-admin", "prometheus"
MAJOR = Level.MAJOR
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def token(name: str) -> str:
    return TOKENS[name][0]


@dataclass
class Browser:
    """An aiohttp client session that keeps cookies for 127.0.0.1 and never follows
    redirects by itself."""

    base: str
    http: aiohttp.ClientSession

    async def get(self, path: str, **headers: str) -> tuple[int, str, Any]:
        async with self.http.get(self.base + path, headers=headers, allow_redirects=False) as r:
            return r.status, await r.text(), r.headers

    async def post(self, path: str, data: dict[str, str], **headers: str) -> tuple[int, str, Any]:
        async with self.http.post(
            self.base + path, data=data, headers=headers, allow_redirects=False
        ) as r:
            return r.status, await r.text(), r.headers

    async def csrf(self, path: str = "/board/login") -> str:
        status, body, _ = await self.get(path)
        assert status == 200, body
        found = CSRF.search(body)
        assert found is not None, body
        return found.group(1)

    async def login(self, name: str) -> Any:
        status, body, headers = await self.post(
            "/board/login", {"csrf": await self.csrf(), "token": token(name), "next": "/board/"}
        )
        assert status == 303, body
        return headers

    async def act(self, incident_id: int, action: str, **fields: str) -> tuple[int, str, Any]:
        csrf = await self.csrf(f"/board/incidents/{incident_id}")
        return await self.post(f"/board/incidents/{incident_id}/{action}", {"csrf": csrf, **fields})


Serve = Callable[..., Awaitable[tuple[BoardStack, Browser]]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start the board over a seeded stack on 127.0.0.1:0; return it and a fresh browser."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []
    stacks: dict[str, BoardStack] = {}

    async def start(tokens: Any = TOKENS) -> tuple[BoardStack, Browser]:
        key = "open" if not tokens else "tokens"
        if key not in stacks:
            stack = build_stack(tmp_path / key, tokens)
            seed(stack)
            runner = web.AppRunner(stack.app(), access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            host, port = runner.addresses[0][:2]
            stack.base = f"http://{host}:{port}"
            stacks[key] = stack
        stack = stacks[key]
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return stack, Browser(stack.base, http)

    yield start
    for http in sessions:
        await http.close()
    for runner in runners:
        await runner.cleanup()


# -- login and sessions ------------------------------------------------------------------------


async def test_pages_need_a_login_and_send_you_back_after_it(serve: Serve) -> None:
    _, b = await serve()
    status, _, headers = await b.get("/board/incidents/2")
    assert status == 303
    assert headers["Location"] == "/board/login?next=%2Fboard%2Fincidents%2F2"
    status, body, _ = await b.post(
        "/board/login",
        {"csrf": await b.csrf(), "token": token(VIEWER), "next": "/board/incidents/2"},
    )
    assert status == 303, body
    status, body, _ = await b.get("/board/incidents/2")
    assert status == 200
    assert "disk / 95% on db-02" in body
    assert "Signed in as <strong>viewer</strong>" in body


async def test_a_bad_token_is_refused_and_leaves_you_signed_out(serve: Serve) -> None:
    _, b = await serve()
    status, body, _ = await b.post(
        "/board/login", {"csrf": await b.csrf(), "token": "not-a-token", "next": "/board/"}
    )
    assert status == 401
    assert "Unknown token." in body
    assert "Signed in as" not in body
    assert (await b.get("/board/"))[0] == 303  # still sent to the login page


async def test_a_token_without_board_scopes_cannot_log_in(serve: Serve) -> None:
    _, b = await serve()
    status, body, _ = await b.post(
        "/board/login", {"csrf": await b.csrf(), "token": token(INGEST), "next": "/board/"}
    )
    assert status == 403
    assert "none of the read, respond or admin scopes" in body
    assert (await b.get("/board/"))[0] == 303


async def test_the_session_cookie_is_signed_strict_and_never_holds_the_token(
    serve: Serve,
) -> None:
    _, b = await serve()
    headers = await b.login(RESPONDER)
    cookies = SimpleCookie()
    for line in headers.getall("Set-Cookie"):
        cookies.load(line)
    morsel = cookies[session.COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/board"
    assert not morsel["secure"]  # plain http here; set when the request is https
    assert int(morsel["max-age"]) == session.LIFETIME
    assert token(RESPONDER) not in morsel.value
    assert sha(token(RESPONDER)) not in morsel.value


async def test_a_forged_cookie_is_not_a_session(serve: Serve) -> None:
    stack, b = await serve()
    # a session for the admin signed with the wrong key, and one with a tampered payload
    forged = session.encode(
        b"guessed-secret", session.new_session(ADMIN, frozenset({"admin"}), NOW)
    )
    b.http.cookie_jar.update_cookies({session.COOKIE: forged})
    assert (await b.get("/board/"))[0] == 303
    b.http.cookie_jar.clear()
    await b.login(VIEWER)
    genuine = session.encode(
        stack.secret, session.new_session(VIEWER, frozenset({"read"}), NOW), sha(token(VIEWER))
    )
    version, _, signature = genuine.split(".")
    other = session.encode(
        stack.secret, session.new_session(ADMIN, frozenset({"admin"}), NOW), sha(token(ADMIN))
    )
    tampered = f"{version}.{other.split('.')[1]}.{signature}"
    b.http.cookie_jar.clear()
    b.http.cookie_jar.update_cookies({session.COOKIE: tampered})
    assert (await b.get("/board/"))[0] == 303


async def test_sessions_end_when_the_token_is_rotated_or_they_expire(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(VIEWER)
    assert (await b.get("/board/"))[0] == 200
    configured = stack.authorizer
    tokens = dict(configured.tokens)
    tokens[VIEWER] = ApiToken(sha256=sha("a-new-viewer-token"), scopes=["read"])
    stack.authorizer = Authorizer(tokens)  # a reload with the token rotated
    assert (await b.get("/board/"))[0] == 303
    del tokens[VIEWER]
    assert (await b.get("/board/"))[0] == 303  # or removed
    stack.authorizer = configured
    assert (await b.get("/board/"))[0] == 200
    stack.clock.now = NOW + session.LIFETIME - 1
    assert (await b.get("/board/"))[0] == 200
    stack.clock.now = NOW + session.LIFETIME
    assert (await b.get("/board/"))[0] == 303  # expired


async def test_logout_ends_the_session(serve: Serve) -> None:
    _, b = await serve()
    await b.login(VIEWER)
    status, _, headers = await b.post("/board/logout", {"csrf": await b.csrf("/board/")})
    assert status == 303
    assert headers["Location"] == "/board/login"
    assert (await b.get("/board/"))[0] == 303


async def test_login_never_redirects_off_the_board(serve: Serve) -> None:
    _, b = await serve()
    status, _, headers = await b.post(
        "/board/login",
        {"csrf": await b.csrf(), "token": token(VIEWER), "next": "https://evil.example/"},
    )
    assert status == 303
    assert headers["Location"] == "/board/"


# -- what the board shows ----------------------------------------------------------------------


async def test_open_incidents_are_grouped_by_priority_with_targets_as_text(serve: Serve) -> None:
    _, b = await serve()
    await b.login(VIEWER)
    status, body, _ = await b.get("/board/")
    assert status == 200
    groups = re.findall(r'<h2 id="g-\d+"><span class="pri pri-\w+">(P\d)</span>', body)
    assert groups == ["P1", "P2", "P3", "P4"]
    p1, p2, p3, p4 = re.split(r'<section class="group"', body)[1:]
    assert "core switch down" in p1
    assert "respond overdue by 12m" in p1  # opened 17 min ago, 5 min target
    for text in ("sw-core-01", "critical", ">open<", "17m"):
        assert text in p1
    assert "respond within 10m" in p2
    assert "No P3 incidents." in p3
    assert "no target" in p4  # P4 has no target configured


async def test_filters_by_state_priority_team_and_label(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(VIEWER)
    assert stack.inbound.respond("ack", 1, "someone", "cli").status == "ok"

    async def listed(query: str) -> list[str]:
        status, body, _ = await b.get("/board/?" + query)
        assert status == 200
        return re.findall(r'<td data-label="ID"><a href="/board/incidents/(\d+)">', body)

    assert await listed("") == ["1", "2", "3"]
    assert await listed("state=acknowledged") == ["1"]
    assert await listed("state=open") == ["2", "3"]
    assert await listed("priority=P2") == ["2"]
    assert await listed("team=dba") == ["2"]
    assert await listed("team=netops") == ["1", "3"]
    assert await listed("q=instance%3Dsw-acc") == ["3"]
    assert await listed("q=SW-CORE+down") == ["1"]  # every word, any case, labels or summary
    assert await listed("q=nothing-matches") == []
    _, body, _ = await b.get("/board/?state=acknowledged")
    assert "resolve within 43m" in body  # acknowledged: the P1 resolve target (1h) counts


async def test_the_incident_page_shows_labels_timeline_and_deliveries(serve: Serve) -> None:
    _, b = await serve()
    await b.login(VIEWER)
    status, body, _ = await b.get("/board/incidents/2")
    assert status == 200
    assert "<dt>team</dt><dd>dba</dd>" in body
    assert "<dt>Team</dt><dd>dba</dd>" in body  # the routed team
    assert '<strong>opened</strong> by <span class="actor">alertd</span>' in body
    assert '<td data-label="Channel">mail</td>' in body
    assert '<td data-label="State">pending</td>' in body
    assert (await b.get("/board/incidents/999"))[0] == 404


async def test_grouped_incidents_list_their_member_alerts(serve: Serve, tmp_path: Path) -> None:
    stack = build_stack(tmp_path / "grouped", {})
    store = stack.store
    with store.transaction():
        incident = store.open(
            Incident(
                0,
                "grp-1",
                "IfDown",
                "ifOperStatus",
                (("instance", "sw-1"),),
                MAJOR,
                "P2",
                IncidentState.OPEN,
                "2 interfaces down on sw-1",
                None,
                NOW,
                NOW,
            )
        )
        store.set_member(incident.id, "fp-a", "IfDown", (("ifName", "ge-0/0/1"),), MAJOR, NOW)
        store.set_member(incident.id, "fp-b", "IfDown", (("ifName", "ge-0/0/2"),), MAJOR, NOW)
        store.resolve_member(incident.id, "fp-b")
    runner = web.AppRunner(stack.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/board/incidents/{incident.id}") as r,
        ):
            body = await r.text()
    finally:
        await runner.cleanup()
    assert "Alerts (1 of 2 firing)" in body
    assert "<code>ifName=ge-0/0/1</code>" in body


# -- acting ------------------------------------------------------------------------------------


async def test_ack_from_the_board_names_the_token_on_the_timeline(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(RESPONDER)
    status, _, headers = await b.act(1, "ack", comment="on it, checking the uplink")
    assert status == 303
    assert headers["Location"] == "/board/incidents/1"
    incident = stack.store.get(1)
    assert incident is not None
    assert incident.state is IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_by == RESPONDER
    (ack,) = [t for t in stack.timeline(1) if t.kind == "acknowledged"]
    assert ack.actor == RESPONDER
    assert ack.detail == "acknowledged via board: on it, checking the uplink"
    _, body, _ = await b.get("/board/incidents/1")
    assert '<span class="state state-acknowledged">acknowledged</span>' in body
    assert f'<strong>acknowledged</strong> by <span class="actor">{RESPONDER}</span>' in body
    assert "Acknowledge</button>" not in body  # nothing left to acknowledge
    status, body, _ = await b.act(1, "ack")
    assert status == 409
    assert f"already acknowledged by {RESPONDER}" in body


async def test_comment_and_resolve_by_hand(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(RESPONDER)
    assert (await b.act(3, "comment", comment="flapping optic, ticket NET-88"))[0] == 303
    assert (await b.act(3, "comment", comment="   "))[0] == 400
    assert (await b.act(3, "resolve"))[0] == 303
    incident = stack.store.get(3)
    assert incident is not None
    assert incident.state is IncidentState.RESOLVED
    kinds = [(t.kind, t.actor, t.detail) for t in stack.timeline(3)]
    assert ("comment", RESPONDER, "flapping optic, ticket NET-88") in kinds
    assert ("resolved", RESPONDER, "resolved by hand via board") in kinds
    assert len([k for k in kinds if k[0] == "comment"]) == 1
    assert incident.resolved_by == RESPONDER
    _, body, _ = await b.get("/board/incidents/3")
    assert f"by hand, by {RESPONDER}" in body  # not as if it recovered


async def test_a_read_only_token_can_look_but_not_act(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(VIEWER)
    status, body, _ = await b.get("/board/incidents/1")
    assert status == 200
    assert "Acknowledge</button>" not in body
    assert "no respond scope" in body
    status, body, _ = await b.act(1, "ack")
    assert status == 403
    assert "The token viewer lacks the respond scope" in body
    incident = stack.store.get(1)
    assert incident is not None
    assert incident.state is IncidentState.OPEN
    status, _, _ = await b.post(
        "/board/silences",
        {"csrf": await b.csrf("/board/"), "matchers": "i=x", "duration": "1h", "reason": "r"},
    )
    assert status == 403


async def test_posts_without_the_sessions_csrf_token_or_from_elsewhere_are_refused(
    serve: Serve,
) -> None:
    stack, b = await serve()
    await b.login(RESPONDER)
    good = await b.csrf("/board/incidents/1")
    _, other = await serve()
    await other.login(RESPONDER)
    someone_elses = await other.csrf("/board/incidents/1")
    assert someone_elses != good
    for data, headers in [
        ({}, {}),
        ({"csrf": "forged"}, {}),
        ({"csrf": someone_elses}, {}),
        ({"csrf": good}, {"Origin": "http://evil.example"}),
        ({"csrf": good}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": good}, {"Origin": "null", "Sec-Fetch-Site": "same-site"}),
    ]:
        status, body, _ = await b.post("/board/incidents/1/ack", data, **headers)
        assert status == 403, (data, headers)
        assert "refused" in body.lower() or "expired" in body.lower()
    incident = stack.store.get(1)
    assert incident is not None
    assert incident.state is IncidentState.OPEN
    # and with the right token, from the board's own origin, it goes through
    status, _, _ = await b.post("/board/incidents/1/ack", {"csrf": good}, Origin=b.base)
    assert status == 303
    # as a browser sends it under Referrer-Policy: no-referrer
    status, _, _ = await b.post(
        "/board/incidents/1/comment",
        {"csrf": good, "comment": "checked"},
        Origin="null",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert status == 303


async def test_the_open_board_acts_as_anonymous(serve: Serve) -> None:
    stack, b = await serve(tokens={})
    status, body, _ = await b.get("/board/")
    assert status == 200
    assert "open access: no tokens configured" in body
    assert (await b.get("/board/login"))[0] == 303  # nothing to log in to
    assert (await b.act(2, "ack"))[0] == 303
    (ack,) = [t for t in stack.timeline(2) if t.kind == "acknowledged"]
    assert ack.actor == "anonymous"
    status, _, _ = await b.post("/board/incidents/2/resolve", {})  # CSRF still applies
    assert status == 403


# -- maintenance windows and silences ---------------------------------------------------------


async def test_an_admin_adds_and_removes_a_silence(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(ADMIN)
    status, body, _ = await b.post(
        "/board/silences",
        {
            "csrf": await b.csrf("/board/silences"),
            "matchers": "instance=sw-acc-07\ninstance=sw-acc-08, job=snmp",
            "start": "2026-08-20T11:00",
            "duration": "2h",
            "end": "",
            "reason": "replacing optics",
        },
    )
    assert status == 303, body
    status, body, _ = await b.get("/board/silences")
    assert "<code>instance=sw-acc-07 | sw-acc-08</code> <code>job=snmp</code>" in body
    assert "2026-08-20 11:00:00Z to 2026-08-20 13:00:00Z" in body
    assert "upcoming: starts in 1h" in body
    assert '<td data-label="Owner">ops-admin</td>' in body
    (window_id,) = re.findall(r'action="/board/silences/(\d+)/remove"', body)
    rows = stack.inbound.conn.execute("SELECT kind, owner, reason FROM maintenance").fetchall()
    assert rows == [("silence", ADMIN, "replacing optics")]
    status, _, _ = await b.post(
        f"/board/silences/{window_id}/remove", {"csrf": await b.csrf("/board/silences")}
    )
    assert status == 303
    _, body, _ = await b.get("/board/silences")
    assert "No silences in force or upcoming." in body
    status, _, _ = await b.post(
        f"/board/silences/{window_id}/remove", {"csrf": await b.csrf("/board/silences")}
    )
    assert status == 404


async def test_maintenance_shows_configured_windows_and_explains_a_bad_form(
    serve: Serve,
) -> None:
    _, b = await serve()
    await b.login(ADMIN)
    status, body, _ = await b.get("/board/maintenance")
    assert status == 200
    for text in ("CHG-1234", "active, 5h left", "edit channels.yaml"):
        assert text in body
    status, body, _ = await b.post(
        "/board/maintenance",
        {
            "csrf": await b.csrf("/board/maintenance"),
            "matchers": "not a matcher",
            "duration": "2h",
            "end": "2026-08-21T00:00",
            "reason": "",
        },
    )
    assert status == 400
    assert "matcher &#39;not a matcher&#39;: expected label=value" in body
    assert "give either a duration or an end, not both" in body
    assert "give a reason" in body
    assert ">not a matcher</textarea>" in body  # what was typed comes back


async def test_a_responder_cannot_add_maintenance(serve: Serve) -> None:
    stack, b = await serve()
    await b.login(RESPONDER)
    _, body, _ = await b.get("/board/maintenance")
    assert "Add a maintenance window" not in body
    status, _, _ = await b.post(
        "/board/maintenance",
        {"csrf": await b.csrf("/board/maintenance"), "matchers": "i=x", "duration": "1h"},
    )
    assert status == 403
    assert stack.inbound.conn.execute("SELECT COUNT(*) FROM maintenance").fetchone() == (0,)


# -- escaping and headers ----------------------------------------------------------------------


async def test_label_values_and_summaries_are_escaped(serve: Serve) -> None:
    stack, b = await serve()
    stack.post_alerts(
        [
            alert(
                "Xss",
                '<img src=x onerror="alert(1)"> summary',
                instance="<script>alert('instance')</script>",
                note='"><script>alert(2)</script>',
            )
        ]
    )
    incident = stack.incident("Xss")
    await b.login(VIEWER)
    for path in ("/board/", f"/board/incidents/{incident.id}", "/board/?q=%3Cscript%3E"):
        status, body, _ = await b.get(path)
        assert status == 200, path
        assert "<script>alert" not in body, path
        assert "<img src=x" not in body, path
        assert "&lt;script&gt;alert(" in body, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path  # no inline script at all


async def test_every_board_response_carries_the_security_headers(serve: Serve) -> None:
    _, b = await serve()
    paths = ["/board/login", "/board/static/board.css", "/board/static/board.js"]
    responses = [await b.get(p) for p in paths]
    responses.append(await b.post("/board/login", {}))  # refused: no CSRF token
    responses.append(await b.post("/board/login", {"token": "x" * 100_000}))  # too large
    responses.append(await b.get("/"))  # the optional redirect to the board
    await b.login(VIEWER)
    for p in ["/board/", "/board/incidents/1", "/board/incidents/404", "/board/silences"]:
        responses.append(await b.get(p))
    responses.append(await b.get("/board/static/nope.js"))
    statuses = [status for status, _, _ in responses]
    assert statuses == [200, 200, 200, 403, 413, 302, 200, 200, 404, 200, 404]
    assert responses[5][2]["Location"] == "/board/"
    for _, _, headers in responses:
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    css = responses[1][2]
    assert css["Content-Type"].startswith("text/css")
    assert responses[2][2]["Content-Type"].startswith("text/javascript")
    page = responses[6][2]
    assert page["Cache-Control"] == "no-store"
