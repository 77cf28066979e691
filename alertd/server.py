"""The daemon's HTTP listener: /metrics, health and readiness, and reload.

Loopback-only unless configured otherwise; alert ingest, provider webhooks and acknowledge
links are added by the composition root.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Reloader = Callable[[], Awaitable[bool]]
ReadyCheck = Callable[[], bool]


def build_web_app(
    registry: CollectorRegistry,
    reload: Reloader,
    ready: ReadyCheck,
    routes: Sequence[web.RouteDef] = (),
    authorize_reload: Callable[[web.Request], None] | None = None,
    reload_problems: Callable[[], Sequence[str]] = lambda: (),
    stopping: ReadyCheck = lambda: False,
    before_scrape: Callable[[], None] = lambda: None,
) -> web.Application:
    """Return the aiohttp application serving alertd's operational endpoints, plus
    ``routes`` (alert ingest, provider webhooks, acknowledge links). ``reload_problems``
    says why the last reload was rejected; ``stopping``, that not ready means stopping;
    ``before_scrape`` refreshes gauges read at scrape time (if it fails, they keep their
    last values and the scrape goes on)."""

    async def metrics(_: web.Request) -> web.Response:
        try:
            before_scrape()
        except Exception:
            log.exception("could not refresh the outbox gauges for /metrics")
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def is_ready(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="OK\n")
        return web.Response(status=503, text="stopping\n" if stopping() else "starting\n")

    async def do_reload(request: web.Request) -> web.Response:
        if authorize_reload is not None:
            authorize_reload(request)  # raises 401/403 once tokens are configured
        if await reload():
            return web.Response(text="config reloaded\n")
        why = "".join(f"{problem}\n" for problem in reload_problems())
        return web.Response(
            status=500, text=f"config rejected; still running the previous one\n{why}"
        )

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", is_ready)
    app.router.add_post("/-/reload", do_reload)
    app.router.add_routes(routes)
    return app


async def start_server(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Start serving ``app`` (over TLS with ``tls``); return the runner to clean up."""
    # lingering_time: a refused upload (413) is not drained for long by a slow client
    runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls)
    await site.start()
    return runner


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) from PEM files; raises ``OSError``/``SSLError``
    naming what is wrong."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
