"""``POST /api/v2/alerts`` on a real aiohttp server (127.0.0.1, ephemeral port).

Bodies are built the way the real senders build them: Prometheus' notifier (``endsAt`` set,
nanosecond times, generatorURL) and ``amtool alert add`` (go-openapi client: Go zero times
in RFC3339Millis, empty generatorURL).
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertd.ingest import external
from alertd.ingest.alertmanager import IngestLimits, PostedAlert
from alertd.ingest.backpressure import Backpressure
from alertd.ingest.http import ALERTS_PATH, alerts_routes
from alertd.model import AlertEvent, EventKind, Level
from alertd.state.db import connect

pytestmark = pytest.mark.integration

NOW = 1_787_220_000.0  # 2026-08-20T10:00:00Z
TOKEN = "s3cret-token"

PROMETHEUS_BODY = (
    b'[{"labels":{"alertname":"HostCpuHigh","instance":"sw-core-01:9100","job":"node",'
    b'"severity":"critical"},"annotations":{"summary":"CPU 92% on sw-core-01",'
    b'"runbook_url":"https://wiki/runbooks/cpu"},"startsAt":"2026-08-20T09:58:30.123456789Z",'
    b'"endsAt":"2026-08-20T10:04:00.123456789Z","generatorURL":'
    b'"http://prometheus:9090/graph?g0.expr=cpu_usage+%3E+90&g0.tab=1"}]'
)
AMTOOL_BODY = (
    b'[{"annotations":{"summary":"test from amtool"},"endsAt":"0001-01-01T00:00:00.000Z",'
    b'"generatorURL":"","labels":{"alertname":"TestAlert","severity":"warning"},'
    b'"startsAt":"0001-01-01T00:00:00.000Z"}]'
)


@dataclass
class Recorder:
    """The ``receive`` callback: records batches; can fail on demand."""

    batches: list[list[PostedAlert]] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, alerts: list[PostedAlert]) -> None:
        if self.fail:
            raise sqlite3.OperationalError("database is locked")
        self.batches.append(alerts)

    @property
    def alerts(self) -> list[PostedAlert]:
        return [a for batch in self.batches for a in batch]


def bearer(request: web.Request) -> None:
    header = request.headers.get("Authorization")
    if header is None:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    if header != f"Bearer {TOKEN}":
        raise web.HTTPForbidden()


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the routes on 127.0.0.1:0; return the base URL."""
    runners: list[web.AppRunner] = []

    async def start(
        receive: Any,
        limits: IngestLimits | None = None,
        authorize: Any = None,
        resolve_timeout: Any = None,
        backpressure: Backpressure | None = None,
    ) -> str:
        app = web.Application()
        app.add_routes(
            alerts_routes(
                receive,
                lambda: limits or IngestLimits(),
                authorize,
                resolve_timeout,
                clock=lambda: NOW,
                backpressure=backpressure,
            )
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def post(
    url: str, data: Any, content_type: str | None = "application/json", **headers: str
) -> tuple[int, Any]:
    """POST; return the status and the body (decoded JSON, text, or None when empty)."""
    if content_type is not None:
        headers["Content-Type"] = content_type
    if isinstance(data, bytes):
        data = io.BytesIO(data)  # sized (Content-Length is sent) and streamed
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session,
        session.post(url + ALERTS_PATH, data=data, headers=headers) as response,
    ):
        raw = await response.read()
        if not raw:
            return response.status, None
        if response.content_type == "application/json":
            return response.status, json.loads(raw)
        return response.status, raw.decode()


async def test_a_body_as_prometheus_sends_it(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    status, body = await post(
        url, PROMETHEUS_BODY, "application/json", **{"User-Agent": "Prometheus/3.5.0"}
    )
    assert (status, body) == (200, None)
    [alert] = recorder.alerts
    assert alert.rule == "HostCpuHigh"
    assert dict(alert.labels)["instance"] == "sw-core-01:9100"
    assert alert.level is Level.CRITICAL
    assert alert.summary == "CPU 92% on sw-core-01"
    assert alert.starts_at == pytest.approx(NOW - 90 + 0.123456789)
    assert alert.ends_at == pytest.approx(NOW + 240.123456789)
    assert alert.refreshable is False
    assert alert.generator_url.endswith("g0.expr=cpu_usage+%3E+90&g0.tab=1")


async def test_a_body_as_amtool_sends_it(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder, resolve_timeout=lambda: 600.0)
    assert await post(url, AMTOOL_BODY) == (200, None)
    [alert] = recorder.alerts
    assert (alert.rule, alert.level) == ("TestAlert", Level.MINOR)
    assert (alert.starts_at, alert.ends_at, alert.refreshable) == (NOW, NOW + 600.0, True)


async def test_charset_utf8_is_json_too(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    assert await post(url, AMTOOL_BODY, "application/json; charset=utf-8") == (200, None)
    assert len(recorder.alerts) == 1


async def test_a_sync_receive_is_called_too(serve: Serve) -> None:
    seen: list[PostedAlert] = []
    url = await serve(seen.extend)
    assert await post(url, AMTOOL_BODY) == (200, None)
    assert [a.rule for a in seen] == ["TestAlert"]


async def test_partial_accept_stores_valid_alerts_and_answers_400(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    alerts = [
        {"labels": {"alertname": "A"}},
        {"labels": {"alertname": "B"}, "startsAt": "2026-08-20T11:00:00Z"},
        {"labels": {"alertname": "C"}},
        {"labels": {"instance": "x"}},
    ]
    status, body = await post(url, json.dumps(alerts))
    assert status == 400
    assert body == (
        "alerts[1]: start time must be before end time; "
        "alerts[3]: invalid label set: alertname missing"
    )
    assert [a.rule for a in recorder.alerts] == ["A", "C"]


async def test_all_invalid_answers_400_and_receives_nothing(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    status, body = await post(url, json.dumps([{"labels": {}}, 5]))
    assert status == 400
    assert body == "alerts[0]: at least one label pair required; alerts[1]: must be a JSON object"
    assert recorder.batches == []


async def test_an_empty_list_is_ok_and_receives_nothing(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    assert await post(url, b"[]") == (200, None)
    assert recorder.batches == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "request body must be a JSON array of alerts"),
        (b'{"labels": {"alertname": "A"}}', "request body must be a JSON array of alerts"),
        (b'[{"labels": {"alertname": "\xff\xfe"}}]', "request body is not valid UTF-8 (byte 27)"),
        (b"[" * 100_000, "request body is nested too deeply"),
        (b"", "request body must be a JSON array of alerts"),
    ],
)
async def test_bodies_that_are_no_alert_list_answer_400(
    serve: Serve, data: bytes, message: str
) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    assert await post(url, data) == (400, message)
    assert recorder.batches == []


async def test_too_many_alerts_answer_400_before_any_is_received(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    data = b"[" + b",".join([b'{"labels":{"alertname":"a"}}'] * 100_000) + b"]"
    status, body = await post(url, data)
    assert (status, body) == (400, "too many alerts in one request (more than 10000)")
    assert recorder.batches == []


async def test_a_body_over_the_cap_by_content_length_is_413(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder, IngestLimits(max_body_bytes=1024))
    status, body = await post(url, b"[" + b" " * 5000 + b"]")
    assert (status, body) == (413, "request body larger than 1024 bytes")
    assert recorder.batches == []


async def test_a_huge_content_length_is_refused_before_any_body_arrives(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {ALERTS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000000\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()  # would be a 408 after body_timeout if it waited
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert recorder.batches == []


async def test_a_chunked_body_over_the_cap_is_413(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder, IngestLimits(max_body_bytes=100_000))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b"["
        for _ in range(20):
            yield b" " * 16_384
        yield b"]"

    status, body = await post(url, chunks())
    assert (status, body) == (413, "request body larger than 100000 bytes")
    assert recorder.batches == []


async def test_a_body_just_under_the_cap_is_fine(serve: Serve) -> None:
    recorder = Recorder()
    data = json.dumps([{"labels": {"alertname": "A"}}]).encode()
    url = await serve(recorder, IngestLimits(max_body_bytes=len(data)))
    assert await post(url, data) == (200, None)


async def test_a_huge_label_value_invalidates_only_its_alert(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    alerts = [{"labels": {"alertname": "A", "x": "v" * 1_000_000}}, {"labels": {"alertname": "B"}}]
    status, body = await post(url, json.dumps(alerts))
    assert status == 400
    assert body == 'alerts[0]: invalid label set: value of "x" too long (1000000 > 8192 bytes)'
    assert [a.rule for a in recorder.alerts] == ["B"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_a_wrong_content_type_is_415(serve: Serve, content_type: str | None) -> None:
    recorder = Recorder()
    url = await serve(recorder)
    status, body = await post(url, AMTOOL_BODY, content_type)
    assert (status, body) == (415, "Content-Type must be application/json")
    assert recorder.batches == []


async def test_missing_credentials_are_401_and_wrong_ones_403(serve: Serve) -> None:
    recorder = Recorder()
    url = await serve(recorder, authorize=bearer)
    status, _ = await post(url, AMTOOL_BODY)
    assert status == 401
    status, _ = await post(url, AMTOOL_BODY, Authorization="Bearer guess")
    assert status == 403
    assert recorder.batches == []
    assert await post(url, AMTOOL_BODY, Authorization=f"Bearer {TOKEN}") == (200, None)
    assert len(recorder.alerts) == 1


async def test_authorization_is_checked_before_the_body(serve: Serve) -> None:
    url = await serve(Recorder(), IngestLimits(max_body_bytes=10), authorize=bearer)
    status, _ = await post(url, b"x" * 1000, "text/plain")
    assert status == 401


async def test_a_failing_receive_is_503_so_prometheus_retries(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail=True)
    url = await serve(recorder)
    status, body = await post(url, PROMETHEUS_BODY)
    assert (status, body) == (503, "alerts could not be stored; retry later")
    assert "storing 1 alerts failed" in caplog.text
    assert "database is locked" in caplog.text


async def test_a_slow_body_is_408(serve: Serve) -> None:
    url = await serve(Recorder(), IngestLimits(body_timeout=0.2))
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {ALERTS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n[".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 408")


async def test_broken_chunked_encoding_is_400_not_500(serve: Serve) -> None:
    url = await serve(Recorder())
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {ALERTS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\nzz\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"400"  # aiohttp's parser answers before the handler


async def test_get_is_not_this_route(serve: Serve) -> None:
    url = await serve(Recorder())
    async with aiohttp.ClientSession() as session, session.get(url + ALERTS_PATH) as response:
        assert response.status == 405


async def test_bad_input_never_yields_a_5xx(serve: Serve) -> None:
    url = await serve(Recorder())
    bodies: list[bytes] = [
        b"null",
        b"[null]",
        b'[{"labels": null}]',
        b'[{"labels": {"alertname": {"x": 1}}}]',
        b'[{"labels": {"alertname": "A"}, "startsAt": 1e400}]',
        b'[{"labels": {"alertname": "A"}, "annotations": {"a": "\\ud800"}}]',
        b"[" + b"1" * 5000 + b"]",
        b'[{"labels": {"alertname": "A"}, "endsAt": "9999-12-31T23:59:59-23:59"}]',
        b"\x00" * 100,
        "[\u2028]".encode(),
    ]
    for data in bodies:
        status, _ = await post(url, data)
        assert status in (200, 400), data[:40]


async def test_end_to_end_with_the_tracker(serve: Serve, tmp_path: Path) -> None:
    """Wire receive to the tracker as the daemon will: fire, refresh, resolve."""
    conn = connect(tmp_path)
    events: list[AlertEvent] = []

    def receive(alerts: list[PostedAlert]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            events.extend(external.receive(conn, alerts, NOW))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    try:
        url = await serve(receive)
        assert await post(url, PROMETHEUS_BODY) == (200, None)
        assert await post(url, PROMETHEUS_BODY) == (200, None)
        resolved = json.loads(PROMETHEUS_BODY)
        resolved[0]["endsAt"] = "2026-08-20T09:59:59Z"
        assert await post(url, json.dumps(resolved)) == (200, None)
        assert [e.kind for e in events] == [EventKind.FIRING, EventKind.RESOLVED]
        assert events[0].summary == "CPU 92% on sw-core-01"
        assert external.active(conn) == []
    finally:
        conn.close()


async def test_a_post_waits_while_delivery_is_behind_then_is_stored(serve: Serve) -> None:
    recorder = Recorder()
    backlog = [900]
    looks: list[int] = []
    held: list[float] = []

    def count(cap: int) -> int:
        looks.append(cap)
        backlog[0] = max(0, backlog[0] - 200)  # the worker sends meanwhile
        return min(backlog[0], cap)

    url = await serve(recorder, backpressure=Backpressure(count, lambda: (500, 5.0), held.append))
    status, _ = await post(url, PROMETHEUS_BODY)
    assert status == 200
    assert [a.rule for a in recorder.alerts] == ["HostCpuHigh"]  # stored
    assert looks == [501, 501]  # 700: over the limit; then 500: at it, so it went on
    assert len(held) == 1
    assert held[0] > 0


async def test_a_backlog_that_does_not_shrink_holds_a_post_only_max_wait(serve: Serve) -> None:
    recorder = Recorder()
    held: list[float] = []
    url = await serve(
        recorder, backpressure=Backpressure(lambda cap: cap, lambda: (500, 0.05), held.append)
    )
    for _ in range(2):
        status, _ = await post(url, PROMETHEUS_BODY)
        assert status == 200
    assert len(recorder.alerts) == 2  # stored all the same, nothing refused
    assert len(held) == 2
    assert all(h >= 0.05 for h in held)


async def test_no_backlog_no_wait(serve: Serve) -> None:
    recorder = Recorder()
    held: list[float] = []
    url = await serve(
        recorder, backpressure=Backpressure(lambda cap: 3, lambda: (500, 5.0), held.append)
    )
    status, _ = await post(url, PROMETHEUS_BODY)
    assert status == 200
    assert held == []


async def test_a_backlog_that_cannot_be_read_never_costs_the_alerts(serve: Serve) -> None:
    recorder = Recorder()

    def broken(cap: int) -> int:
        raise sqlite3.OperationalError("database is locked")

    url = await serve(recorder, backpressure=Backpressure(broken, lambda: (500, 5.0)))
    status, _ = await post(url, PROMETHEUS_BODY)
    assert status == 200  # not a 400 that Prometheus would drop, nor a wait
    assert [a.rule for a in recorder.alerts] == ["HostCpuHigh"]
