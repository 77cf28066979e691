"""alertd's operational endpoints over a real socket: a rejected reload says why (file:line
of each problem), and readiness tells a stopping daemon from a starting one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import test_utils, web
from prometheus_client import CollectorRegistry

from alertd.server import build_web_app

pytestmark = pytest.mark.integration

Client = test_utils.TestClient[web.Request, web.Application]
PROBLEM = "thresholds.yaml:5:21: rules[0].above.major: not a number: 'high'"


class Daemon:
    def __init__(self) -> None:
        self.accept = False
        self.ready = False
        self.stopping = False
        self.problems: Sequence[str] = ()

    async def reload(self) -> bool:
        self.problems = () if self.accept else (PROBLEM,)
        return self.accept


@pytest.fixture
async def client() -> AsyncIterator[tuple[Client, Daemon]]:
    daemon = Daemon()
    app = build_web_app(
        CollectorRegistry(),
        daemon.reload,
        lambda: daemon.ready,
        reload_problems=lambda: daemon.problems,
        stopping=lambda: daemon.stopping,
    )
    c: Client = test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1"))
    await c.start_server()
    try:
        yield c, daemon
    finally:
        await c.close()


async def test_a_rejected_reload_answers_with_its_problems(
    client: tuple[Client, Daemon],
) -> None:
    c, daemon = client
    resp = await c.post("/-/reload")
    assert resp.status == 500
    text = await resp.text()
    assert "still running the previous one" in text
    assert PROBLEM in text
    daemon.accept = True
    resp = await c.post("/-/reload")
    assert (resp.status, await resp.text()) == (200, "config reloaded\n")


async def test_ready_says_starting_then_ok_then_stopping(client: tuple[Client, Daemon]) -> None:
    c, daemon = client
    resp = await c.get("/-/ready")
    assert (resp.status, await resp.text()) == (503, "starting\n")
    daemon.ready = True
    resp = await c.get("/-/ready")
    assert (resp.status, await resp.text()) == (200, "OK\n")
    daemon.ready, daemon.stopping = False, True
    resp = await c.get("/-/ready")
    assert (resp.status, await resp.text()) == (503, "stopping\n")
