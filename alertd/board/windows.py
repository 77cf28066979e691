"""The maintenance windows and silences pages: list (configured and stored, active and
upcoming), add (admin scope) and remove (admin scope; only stored ones: configured windows
live in ``channels.yaml``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from alertd.board import read
from alertd.board.access import Visitor, redirect
from alertd.board.forms import parse_window
from alertd.board.paths import PREFIX

if TYPE_CHECKING:
    from alertd.board.routes import Board

log = logging.getLogger(__name__)

Kind = Literal["maintenance", "silence"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def window_handlers(b: Board, kind: Kind) -> tuple[Handler, Handler, Handler]:
    """The list, add and remove handlers of maintenance windows or silences."""
    path = f"{PREFIX}/{'maintenance' if kind == 'maintenance' else 'silences'}"

    def show_page(
        request: web.Request, v: Visitor, status: int = 200, **extra: Any
    ) -> web.Response:
        now = b.ops.wall_now()
        items = read.windows(b.ops.conn, b.ops.current_config().channels, kind, now)
        context: dict[str, Any] = {"problems": [], "values": {}, **extra}
        return b.page(
            request, v, "windows.html", status, kind=kind, path=path, items=items, **context
        )

    async def show(request: web.Request) -> web.StreamResponse:
        v = b.visitor(request)
        if (refused := b.gate(request, v, None)) is not None:
            return refused
        return show_page(request, v)

    async def add(request: web.Request) -> web.StreamResponse:
        if isinstance(posted := await b.submitted(request, "admin"), web.Response):
            return posted
        v, fields = posted
        parsed = parse_window(fields, b.ops.wall_now())
        if isinstance(parsed, list):
            return show_page(request, v, 400, problems=parsed, values=_echo(fields))
        window_id = b.ops.add_window(
            kind, parsed.matchers, parsed.start, parsed.end, parsed.reason, v.actor
        )
        log.info("board: %s added %s #%d", v.actor, kind, window_id)
        return redirect(path)

    async def remove(request: web.Request) -> web.StreamResponse:
        if isinstance(posted := await b.submitted(request, "admin"), web.Response):
            return posted
        v, _ = posted
        window_id = int(request.match_info["id"])
        if not b.ops.remove_window(kind, window_id):
            return b.error(request, v, 404, "Not found", f"No {kind} #{window_id} in force.")
        log.info("board: %s removed %s #%d", v.actor, kind, window_id)
        return redirect(path)

    return show, add, remove


def _echo(fields: Mapping[str, str]) -> dict[str, str]:
    keys = ("matchers", "start", "duration", "end", "reason")
    return {k: fields.get(k, "")[:2000] for k in keys}
