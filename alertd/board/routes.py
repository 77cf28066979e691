"""The web incident board: server-rendered pages under ``/board/`` for on-call engineers.

Reads come straight from the state database (``board.read``); every change goes through the
daemon's ``Operations`` so it lands on the timeline with the acting token's name and
``how="board"``. Who may do what is ``board.access``: signed session cookies, and every POST
needs its session's CSRF token and must not come from another site. Every response
carries a strict Content-Security-Policy (scripts and styles from ``/board/static/`` only).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import jinja2
from aiohttp import web

from alertd.api.auth import Authorizer
from alertd.api.ops import Operations
from alertd.board import read, session
from alertd.board.access import (
    VIEW_SCOPES,
    Visitor,
    identify,
    lookup,
    redirect,
    safe_next,
    same_origin,
    set_cookie,
)
from alertd.board.forms import MAX_TEXT, text_field
from alertd.board.paths import PREFIX, incident_path
from alertd.board.windows import Handler, window_handlers

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60  # the list reloads itself (board.js) while nobody is typing
HERE = Path(__file__).parent
STATIC_TYPES = {
    "board.css": "text/css",
    "board.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def board_routes(
    ops: Operations,
    authorizer: Callable[[], Authorizer],
    session_secret: Callable[[], bytes],
) -> list[web.RouteDef]:
    """Return the board's routes, all under ``/board/``.

    ``authorizer`` and ``session_secret`` are called per request, so a reload that changes
    the tokens applies at once (a removed or rotated token's sessions end). With no tokens
    configured the board is open and acts as ``anonymous``.
    """
    b = Board(ops, authorizer, session_secret)
    windows = {kind: window_handlers(b, kind) for kind in ("maintenance", "silence")}
    routes = [
        web.get(PREFIX, _secured(b.to_index)),
        web.get(f"{PREFIX}/", _secured(b.index)),
        web.get(f"{PREFIX}/login", _secured(b.login_form)),
        web.post(f"{PREFIX}/login", _secured(b.login)),
        web.post(f"{PREFIX}/logout", _secured(b.logout)),
        web.get(f"{PREFIX}/incidents/{{id:[0-9]{{1,18}}}}", _secured(b.incident)),
        web.post(
            f"{PREFIX}/incidents/{{id:[0-9]{{1,18}}}}/{{action:ack|resolve|comment}}",
            _secured(b.act),
        ),
        web.get(f"{PREFIX}/static/{{name}}", _secured(b.static)),
    ]
    for kind, path in (("maintenance", "maintenance"), ("silence", "silences")):
        show, add, remove = windows[kind]
        routes += [
            web.get(f"{PREFIX}/{path}", _secured(show)),
            web.post(f"{PREFIX}/{path}", _secured(add)),
            web.post(f"{PREFIX}/{path}/{{id:[0-9]{{1,18}}}}/remove", _secured(remove)),
        ]
    return routes


def root_redirect() -> web.RouteDef:
    """An optional ``GET /`` that sends a browser to the board."""

    async def to_board(_: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"{PREFIX}/", **SECURITY_HEADERS})

    return web.get("/", to_board)


def _secured(handler: Handler) -> Handler:
    """Add the security headers to every response, and turn an unexpected error into a
    plain 500 page (logged) rather than aiohttp's default."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # e.g. 413 from request.post() on a huge body
            exc.headers.update(SECURITY_HEADERS)
            raise
        except Exception:
            log.exception("board: %s %s failed", request.method, request.path)
            response = web.Response(
                status=500, text="internal error; see the alertd log\n", content_type="text/plain"
            )
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return wrapped


class Board:
    """The pages' shared parts: templates, the visitor, the gate, checked forms."""

    def __init__(
        self,
        ops: Operations,
        authorizer: Callable[[], Authorizer],
        session_secret: Callable[[], bytes],
    ) -> None:
        self.ops = ops
        self.authorizer = authorizer
        self.secret = session_secret
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static_files = {name: (HERE / "static" / name).read_bytes() for name in STATIC_TYPES}
        versions = {n: hashlib.sha256(d).hexdigest()[:12] for n, d in self.static_files.items()}
        self.env.globals.update(
            when=read.when,
            iso=read.iso,
            static=lambda name: f"{PREFIX}/static/{name}?v={versions[name]}",
            prefix=PREFIX,
            priorities=read.PRIORITIES,
        )

    # -- who is asking ----------------------------------------------------------------------
    def visitor(self, request: web.Request) -> Visitor:
        return identify(request, self.authorizer(), self.secret(), self.ops.wall_now())

    def page(
        self, request: web.Request, v: Visitor, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        """Render ``template`` for ``v``; a new session's cookie goes out with it."""
        html = self.env.get_template(template).render(v=v, **context)
        response = web.Response(status=status, text=html, content_type="text/html")
        if v.fresh:
            set_cookie(response, self.secret(), v.session, v.binding, secure=request.secure)
        return response

    def error(
        self, request: web.Request, v: Visitor, status: int, title: str, message: str
    ) -> web.Response:
        return self.page(request, v, "error.html", status, title=title, message=message)

    def gate(self, request: web.Request, v: Visitor, scope: str | None) -> web.Response | None:
        """Return the response refusing ``v`` (login redirect, 403), or None to go on."""
        if not v.open and not v.session.signed_in:
            if request.method == "GET":
                target = f"{PREFIX}/login?next={quote(request.path_qs, safe='')}"
                return redirect(target)
            return self.error(request, v, 401, "Not signed in", "Log in to do that.")
        if not v.can_view or (scope is not None and scope not in v.scopes):
            need = scope or "read"
            text = f"The token {v.actor} lacks the {need} scope needed here."
            return self.error(request, v, 403, "Not allowed", text)
        return None

    async def submitted(
        self, request: web.Request, scope: str
    ) -> tuple[Visitor, dict[str, str]] | web.Response:
        """Return who posted which fields, once the form passes its CSRF checks and the
        visitor holds ``scope``; else the response refusing it."""
        v = self.visitor(request)
        fields = await self.form(request, v)
        if isinstance(fields, web.Response):
            return fields
        if (refused := self.gate(request, v, scope)) is not None:
            return refused
        return v, fields

    async def form(self, request: web.Request, v: Visitor) -> dict[str, str] | web.Response:
        """Return a POST's fields once the CSRF checks pass: the browser does not say it
        comes from elsewhere, and the ``csrf`` field is this session's."""
        if not same_origin(request):
            log.info("board: refused a cross-site %s %s", request.method, request.path)
            return self.error(request, v, 403, "Refused", "Cross-site request refused.")
        data = await request.post()
        fields = {k: val for k, val in data.items() if isinstance(val, str)}
        if v.fresh or not session.csrf_ok(self.secret(), v.session, fields.get("csrf", "")):
            text = "This form has expired or did not come from the board; reload and retry."
            return self.error(request, v, 403, "Form expired", text)
        return fields

    # -- pages ------------------------------------------------------------------------------
    async def to_index(self, _: web.Request) -> web.StreamResponse:
        return redirect(f"{PREFIX}/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        v = self.visitor(request)
        if (refused := self.gate(request, v, None)) is not None:
            return refused
        filters = read.Filters.parse(request.query)
        config = self.ops.current_config()
        board = read.incidents(self.ops.conn, config.channels, filters, self.ops.wall_now())
        return self.page(
            request,
            v,
            "incidents.html",
            board=board,
            filters=filters,
            teams=read.team_names(config.channels),
            states=read.STATES,
            now=self.ops.wall_now(),
            refresh=REFRESH_SECONDS,
        )

    async def incident(self, request: web.Request) -> web.StreamResponse:
        v = self.visitor(request)
        if (refused := self.gate(request, v, None)) is not None:
            return refused
        incident_id = int(request.match_info["id"])
        channels = self.ops.current_config().channels
        found = read.detail(self.ops.conn, channels, incident_id, self.ops.wall_now())
        if found is None:
            return self.error(request, v, 404, "Not found", f"No incident #{incident_id}.")
        return self.page(request, v, "incident.html", d=found, max_text=MAX_TEXT)

    async def act(self, request: web.Request) -> web.StreamResponse:
        if isinstance(posted := await self.submitted(request, "respond"), web.Response):
            return posted
        v, fields = posted
        incident_id, action = int(request.match_info["id"]), request.match_info["action"]
        try:
            comment = text_field(fields, "comment")
        except ValueError as exc:
            return self.error(request, v, 400, "Not saved", str(exc))
        if action == "comment":
            if comment is None:
                return self.error(request, v, 400, "Not saved", "Write a comment first.")
            outcome = self.ops.comment(incident_id, v.actor, comment)
        else:
            verb: Literal["ack", "resolve"] = "ack" if action == "ack" else "resolve"
            outcome = self.ops.respond(verb, incident_id, v.actor, "board", comment)
        if outcome.status == "ok":
            log.info("board: %s", outcome.message)
            return redirect(incident_path(incident_id))
        status = 404 if outcome.status == "not_found" else 409
        return self.error(request, v, status, f"Incident #{incident_id}", outcome.message)

    # -- login ------------------------------------------------------------------------------
    async def login_form(self, request: web.Request) -> web.StreamResponse:
        v = self.visitor(request)
        if v.open or v.session.signed_in:
            return redirect(safe_next(request.query.get("next")))
        return self.page(request, v, "login.html", next=safe_next(request.query.get("next")))

    async def login(self, request: web.Request) -> web.StreamResponse:
        v = self.visitor(request)
        fields = await self.form(request, v)
        if isinstance(fields, web.Response):
            return fields
        target = safe_next(fields.get("next"))
        auth = self.authorizer()
        if auth.open:
            return redirect(target)
        presented = fields.get("token", "").strip()
        found = lookup(auth, presented) if presented else None
        if found is None:
            log.info("board: login refused (unknown token)")
            return self.page(request, v, "login.html", 401, next=target, problem="Unknown token.")
        name, scopes = found
        if not scopes & VIEW_SCOPES:
            problem = f"The token {name} has none of the read, respond or admin scopes."
            return self.page(request, v, "login.html", 403, next=target, problem=problem)
        fresh = session.new_session(name, scopes, self.ops.wall_now())
        response = redirect(target)
        set_cookie(response, self.secret(), fresh, auth.tokens[name].sha256, secure=request.secure)
        log.info("board: %s logged in", name)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        v = self.visitor(request)
        fields = await self.form(request, v)
        if isinstance(fields, web.Response):
            return fields
        response = redirect(f"{PREFIX}/login")
        response.del_cookie(session.COOKIE, path=PREFIX)
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.static_files:
            return web.Response(status=404, text="not found\n")
        return web.Response(
            body=self.static_files[name],
            content_type=STATIC_TYPES[name],
            charset="utf-8" if STATIC_TYPES[name].startswith("text/") else None,
            headers={"Cache-Control": "public, max-age=3600"},
        )
