"""The acknowledge page behind an email's ack link, served by aiohttp on 127.0.0.1.

A GET must never acknowledge (mail scanners follow links); the POST from its button does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import ClientResponse, test_utils, web

from alertd.notify.acklink import OnAck, ack_routes, make_ack_token

pytestmark = pytest.mark.integration

SECRET = b"s3cret-s3cret-s3cret"
NOW = 1_800_000_000.0
GOOD = make_ack_token(SECRET, 42, int(NOW) + 3600)

Client = test_utils.TestClient[web.Request, web.Application]
Serve = Callable[..., Awaitable[Client]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Return ``serve(on_ack, secret=SECRET)``: a client of the ack routes on a fresh server."""
    clients: list[Client] = []

    async def start(
        on_ack: OnAck, secret: bytes | None = SECRET, state: str | None = None
    ) -> Client:
        app = web.Application()
        app.add_routes(
            ack_routes(lambda: secret, on_ack, now=lambda: NOW, state_of=lambda _id: state)
        )
        client: Client = test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


class Acks:
    """Records the calls of ``on_ack``."""

    def __init__(self, answer: str = "acknowledged") -> None:
        self.calls: list[tuple[int, str]] = []
        self.answer = answer

    def __call__(self, incident_id: int, who: str) -> str:
        self.calls.append((incident_id, who))
        return self.answer


async def page(resp: ClientResponse) -> str:
    assert resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    return await resp.text()


async def test_get_shows_a_confirm_button_and_acknowledges_nothing(serve: Serve) -> None:
    acks = Acks()
    client = await serve(acks)

    for method in ("GET", "HEAD"):
        resp = await client.request(method, f"/ack/{GOOD}")
        assert resp.status == 200
    text = await page(await client.get(f"/ack/{GOOD}"))

    assert acks.calls == []
    assert '<form method="post">' in text
    assert "Acknowledge incident #42" in text


@pytest.mark.parametrize("state", ["acknowledged", "resolved"])
async def test_get_for_an_incident_handled_already_says_so_with_no_button(
    serve: Serve, state: str
) -> None:
    client = await serve(Acks(), state=state)
    text = await page(await client.get(f"/ack/{GOOD}"))
    assert f"Incident #42 is {state} already." in text
    assert "<form" not in text


async def test_post_acknowledges_and_shows_the_escaped_result(serve: Serve) -> None:
    acks = Acks(answer="acknowledged by <b>email link</b>")
    client = await serve(acks)

    resp = await client.post(f"/ack/{GOOD}")

    assert resp.status == 200
    assert acks.calls == [(42, "email link")]
    text = await page(resp)
    assert "acknowledged by &lt;b&gt;email link&lt;/b&gt;" in text
    assert "<b>" not in text


async def test_an_async_on_ack_is_awaited(serve: Serve) -> None:
    async def on_ack(incident_id: int, who: str) -> str:
        return f"#{incident_id} acknowledged via {who}"

    client = await serve(on_ack)
    resp = await client.post(f"/ack/{GOOD}")

    assert "#42 acknowledged via email link" in await page(resp)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("garbage", "malformed"),
        (GOOD.replace("v1.42.", "v1.43."), "bad signature"),
        (make_ack_token(b"other", 42, int(NOW) + 3600), "bad signature"),
        (make_ack_token(SECRET, 42, int(NOW) - 1), "expired"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_bad_token_gets_403(serve: Serve, token: str, why: str, method: str) -> None:
    acks = Acks()
    client = await serve(acks)

    resp = await client.request(method, f"/ack/{token}")

    assert resp.status == 403
    text = await page(resp)
    assert why in text
    assert token not in text
    assert acks.calls == []


async def test_without_a_secret_the_page_is_not_found(serve: Serve) -> None:
    acks = Acks()
    client = await serve(acks, secret=None)

    resp = await client.post(f"/ack/{GOOD}")

    assert resp.status == 404
    assert acks.calls == []


async def test_a_failing_on_ack_is_a_500_page(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    def on_ack(incident_id: int, who: str) -> str:
        raise RuntimeError("database is locked")

    client = await serve(on_ack)
    resp = await client.post(f"/ack/{GOOD}")

    assert resp.status == 500
    text = await page(resp)
    assert "Could not acknowledge" in text
    assert "database is locked" not in text
    assert "acknowledge incident #42 from an email link failed" in caplog.text
