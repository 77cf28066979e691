"""The Alertmanager v2 API beyond ingest on a real aiohttp server (127.0.0.1, ephemeral port)
over a real state directory and the daemon's real ``Inbound``: JSON shapes, filters, the
silence lifecycle, matcher semantics and token scopes.

Expected shapes and the fingerprint below were taken from Alertmanager 0.25 (Debian's
``prometheus-alertmanager``) answering the same requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.api.amv2 import am_v2_routes
from alertd.api.auth import Authorizer
from alertd.clock import FakeClock
from alertd.config.load import Config, load_config
from alertd.inbound import Inbound
from alertd.incidents.maintenance import from_config, from_rows
from alertd.incidents.manager import IncidentManager
from alertd.ingest.alertmanager import IngestLimits
from alertd.ingest.http import alerts_routes
from alertd.metrics import Metrics
from alertd.model import AlertEvent, EventKind, Level, fingerprint, make_labels
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import OutboxStore
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import add_window, stored_windows

pytestmark = pytest.mark.integration

T0 = 1_787_220_000.0  # 2026-08-20T10:00:00Z
T0_TEXT = "2026-08-20T10:00:00.000Z"
HOUR = 3600.0
TOKENS = {"reader": ["read"], "admin": ["read", "admin"], "pusher": ["ingest"]}
DISK_FULL = {"alertname": "DiskFull", "instance": "web1", "severity": "critical"}
DISK_FULL_AM_FINGERPRINT = "b24ed1c59cc0e2bc"  # Alertmanager 0.25's, for DISK_FULL

CHANNELS = """\
channels:
  ops-log: {type: log}
  mail: {type: email, host: 127.0.0.1, port: 9, starttls: false, from: alertd@example.com}
teams:
  oncall:
    members: [{name: Alice, email: alice@example.com}]
    channels: [mail]
routes:
  - match: {severity: critical}
    notify: [oncall]
    group_by: [instance]
  - notify: [ops-log]
maintenance:
  - name: CHG-7
    match: {instance: db9}
    start: "2026-08-20T09:00:00Z"
    duration: 4h
    reason: disk swap
"""


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token(name: str) -> str:
    return f"{name}-token-for-tests"


class Stack:
    """The daemon's parts the API needs, on a state dir, with a clock the test moves."""

    def __init__(self, tmp_path: Path) -> None:
        cfg = tmp_path / "cfg"
        cfg.mkdir()
        (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
        (cfg / "channels.yaml").write_text(CHANNELS)
        lines = [
            f"  {name}: {{sha256: {sha(token(name))}, scopes: [{', '.join(scopes)}]}}"
            for name, scopes in TOKENS.items()
        ]
        (cfg / "server.yaml").write_text("tokens:\n" + "\n".join(lines) + "\n")
        self.config: Config = load_config(cfg)
        self.clock = FakeClock(T0)
        self.conn = connect(tmp_path / "state")
        self.store = IncidentStore(self.conn)
        self.manager = IncidentManager(self.store, self.config.channels)
        self.manager.windows = lambda now: [
            *from_config(self.config.channels),
            *from_rows(stored_windows(self.conn, now)),
        ]
        outbox = OutboxStore(self.conn)
        delivery = Delivery(outbox, {}, Metrics(CollectorRegistry()), self.clock)

        async def reload() -> bool:
            return True

        self.inbound = Inbound(
            self.manager,
            outbox,
            delivery,
            lambda: self.config,
            self.clock.now,
            lambda events: None,
            reload,
        )

    def routes(self) -> list[web.RouteDef]:
        authorizer = Authorizer(self.config.server.tokens)

        def ingest(request: web.Request) -> None:
            authorizer.require(request, "ingest")

        routes = alerts_routes(
            self.inbound.receive_alerts, IngestLimits, authorize=ingest, clock=self.clock.now
        )
        return routes + am_v2_routes(
            self.inbound, lambda: authorizer, version="0.1.0", started_at=T0 - HOUR
        )

    def threshold_incident(self, rule: str, instance: str) -> None:
        labels = make_labels({"instance": instance})
        event = AlertEvent(
            EventKind.FIRING,
            rule,
            "cpu",
            labels,
            Level.MAJOR,
            None,
            97.0,
            f"{rule} on {instance}",
            self.clock.now(),
            fingerprint(rule, labels),
        )
        with self.store.transaction():
            self.manager.apply([event], self.clock.now())


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        who: str | None = "admin",
        body: Any = None,
        params: Any = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token(who)}"} if who else {}
        async with self.session.request(
            method, self.base + path, json=body, params=params, headers=headers
        ) as r:
            text = await r.text()
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, text

    async def get(self, path: str, params: Any = None, who: str | None = "reader") -> Any:
        status, body = await self.call("GET", path, who, params=params)
        assert status == 200, body
        return body

    async def push(self, *labels: dict[str, str], ends_at: str | None = None) -> None:
        end = {"endsAt": ends_at} if ends_at else {}
        alerts = [{"labels": ls, "annotations": {"summary": "s"}, **end} for ls in labels]
        status, body = await self.call("POST", "/api/v2/alerts", "pusher", alerts)
        assert status == 200, body

    async def silence(self, *matchers: tuple[str, str, str], **extra: Any) -> str:
        body = silence_body(*matchers, **extra)
        status, body = await self.call("POST", "/api/v2/silences", body=body)
        assert status == 200, body
        assert set(body) == {"silenceID"}
        return str(body["silenceID"])

    async def states(self) -> dict[str, str]:
        """instance -> the alert's state."""
        alerts = await self.get("/api/v2/alerts")
        return {a["labels"]["instance"]: a["status"]["state"] for a in alerts}


OPS = {"=": (False, True), "!=": (False, False), "=~": (True, True), "!~": (True, False)}


def silence_body(*matchers: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    return {
        "matchers": [
            {"name": n, "value": v, "isRegex": OPS[op][0], "isEqual": OPS[op][1]}
            for n, op, v in matchers
        ],
        "startsAt": "2026-08-20T10:00:00Z",
        "endsAt": "2026-08-20T12:00:00Z",
        "createdBy": "alice",
        "comment": "CHG-1234",
        **extra,
    }


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    app = web.Application()
    app.router.add_routes(stack.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session, f"http://{host}:{port}")
    finally:
        await runner.cleanup()


# -- alerts -------------------------------------------------------------------------------------


async def test_pushed_alert_in_alertmanagers_shape(api: Api) -> None:
    await api.push(DISK_FULL)
    assert await api.get("/api/v2/alerts") == [
        {
            "annotations": {"summary": "s"},
            "endsAt": "2026-08-20T10:05:00.000Z",  # now + resolve_timeout
            "fingerprint": DISK_FULL_AM_FINGERPRINT,
            "receivers": [{"name": "oncall"}],
            "startsAt": T0_TEXT,
            "status": {"inhibitedBy": [], "mutedBy": [], "silencedBy": [], "state": "active"},
            "updatedAt": T0_TEXT,
            "labels": DISK_FULL,
        }
    ]


async def test_own_incidents_show_as_alerts_and_resolved_alerts_do_not(
    api: Api, stack: Stack
) -> None:
    stack.threshold_incident("cpu_high", "web7")
    await api.push({"alertname": "Gone", "instance": "web8"})
    await api.push({"alertname": "Gone", "instance": "web8"}, ends_at="2026-08-20T10:00:00Z")
    (alert,) = await api.get("/api/v2/alerts")
    incident = next(i for i in stack.store.find() if i.rule == "cpu_high")
    assert alert["labels"] == {"alertname": "cpu_high", "instance": "web7"}
    assert alert["annotations"] == {
        "summary": "cpu_high on web7",
        "incident": str(incident.id),
        "priority": incident.priority,
    }
    assert (alert["startsAt"], alert["endsAt"]) == (T0_TEXT, "0001-01-01T00:00:00.000Z")
    assert alert["receivers"] == [{"name": "ops-log"}]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["alertname=DiskFull"], {"web1", "web2"}),
        (['alertname="DiskFull"', 'instance="web2"'], {"web2"}),
        (['{instance=~"web[0-9]"}'], {"web1", "web2"}),
        (["instance=~web"], set()),  # anchored at both ends
        (['instance!="web1"'], {"web2", "db1"}),
        (['instance!~"web.*"'], {"db1"}),
        (['team=""'], {"web1", "web2"}),  # an empty = also accepts a missing label
        (['team!=""'], {"db1"}),  # an empty != accepts any present value
        (['team=~"db|"'], {"web1", "web2", "db1"}),
        ([" severity = critical "], {"web1", "db1"}),
    ],
)
async def test_alert_filters(api: Api, filters: list[str], expected: set[str]) -> None:
    await api.push(
        DISK_FULL,
        {"alertname": "DiskFull", "instance": "web2", "severity": "warning"},
        {"alertname": "Slow", "instance": "db1", "severity": "critical", "team": "db"},
    )
    found = await api.get("/api/v2/alerts", params=[("filter", f) for f in filters])
    assert {a["labels"]["instance"] for a in found} == expected


async def test_receiver_filter_and_bad_parameters(api: Api) -> None:
    await api.push(DISK_FULL, {"alertname": "Slow", "instance": "db1"})
    only = await api.get("/api/v2/alerts", params={"receiver": "on.*"})
    assert [a["labels"]["instance"] for a in only] == ["web1"]
    assert await api.get("/api/v2/alerts", params={"receiver": "on"}) == []
    for params, message in [
        ({"filter": "instance~web"}, "bad matcher format: instance~web"),
        ({"filter": 'instance="a"b"'}, "unescaped double quote"),
        ({"filter": 'instance=~"(?=x)"'}, "invalid regex"),
        ({"active": "maybe"}, 'active in query must be of type boolean: "maybe"'),
        ({"receiver": "("}, "failed to parse receiver param"),
    ]:
        status, body = await api.call("GET", "/api/v2/alerts", "reader", params=params)
        assert status == 400
        assert isinstance(body, str)  # Alertmanager's errors are JSON strings
        assert message in body


async def test_alert_groups_follow_routes(api: Api) -> None:
    await api.push(DISK_FULL, {"alertname": "Slow", "instance": "web1", "severity": "critical"})
    await api.push({"alertname": "Slow", "instance": "db1"})
    groups = await api.get("/api/v2/alerts/groups")
    summary = [
        (g["receiver"]["name"], g["labels"], sorted(a["labels"]["alertname"] for a in g["alerts"]))
        for g in groups
    ]
    assert summary == [
        ("oncall", {"instance": "web1"}, ["DiskFull", "Slow"]),  # group_by: [instance]
        ("ops-log", {"alertname": "Slow", "instance": "db1"}, ["Slow"]),  # every label
    ]
    assert set(groups[0]["alerts"][0]) >= {"fingerprint", "status", "receivers", "startsAt"}


async def test_maintenance_windows_mute_alerts(api: Api) -> None:
    await api.push(
        {"alertname": "Slow", "instance": "db9"}, {"alertname": "Slow", "instance": "db8"}
    )
    found = {a["labels"]["instance"]: a["status"] for a in await api.get("/api/v2/alerts")}
    assert found["db9"] == {
        "inhibitedBy": [],
        "mutedBy": ["CHG-7"],
        "silencedBy": [],
        "state": "suppressed",
    }
    assert found["db8"]["state"] == "active"
    hidden = await api.get("/api/v2/alerts", params={"active": "false"})
    assert [a["labels"]["instance"] for a in hidden] == ["db9"]


# -- silences -----------------------------------------------------------------------------------


async def test_silence_lifecycle(api: Api, stack: Stack) -> None:
    sid = await api.silence(("instance", "=", "web1"), ("alertname", "=~", "Disk.*"))
    assert sid == "a1e7d000-0000-4000-8000-000000000001"
    expected = {
        "id": sid,
        "status": {"state": "active"},
        "updatedAt": T0_TEXT,
        "comment": "CHG-1234",
        "createdBy": "alice",
        "endsAt": "2026-08-20T12:00:00.000Z",
        "matchers": [
            {"name": "instance", "value": "web1", "isRegex": False, "isEqual": True},
            {"name": "alertname", "value": "Disk.*", "isRegex": True, "isEqual": True},
        ],
        "startsAt": T0_TEXT,
    }
    assert await api.get(f"/api/v2/silence/{sid}") == expected
    assert await api.get("/api/v2/silence/1") == expected  # the row id works too
    assert await api.get("/api/v2/silences") == [expected]

    # an alertd silence: the CLI lists it, and an incident it covers is quiet and says why
    (window,) = from_rows(stored_windows(stack.conn, T0))
    assert window.describe().startswith('silence #1: instance="web1", alertname=~"Disk.*"')
    # (not DISK_FULL: its route groups by instance, and a group incident has no alertname)
    await api.push(
        {"alertname": "DiskFull", "instance": "web1"}, {"alertname": "DiskFull", "instance": "web2"}
    )
    states = {a["labels"]["instance"]: a["status"] for a in await api.get("/api/v2/alerts")}
    assert states["web1"]["silencedBy"] == [sid]
    assert states["web1"]["state"] == "suppressed"
    assert states["web2"]["state"] == "active"
    quiet = {i.label_map["instance"]: i.suppressed_by for i in stack.store.find()}
    assert quiet == {"web1": "silence #1 (CHG-1234)", "web2": None}
    shown = await api.get("/api/v2/alerts", params={"silenced": "false"})
    assert [a["labels"]["instance"] for a in shown] == ["web2"]

    stack.clock.advance(60)
    status, _ = await api.call("DELETE", f"/api/v2/silence/{sid}")
    assert status == 200
    expired = await api.get(f"/api/v2/silence/{sid}")
    assert expired["status"] == {"state": "expired"}
    assert expired["endsAt"] == expired["updatedAt"] == "2026-08-20T10:01:00.000Z"
    assert await api.states() == {"web1": "active", "web2": "active"}
    assert stored_windows(stack.conn, stack.clock.now()) == []
    status, _ = await api.call("DELETE", f"/api/v2/silence/{sid}")
    assert status == 200  # expiring an expired silence changes nothing
    assert (await api.get(f"/api/v2/silence/{sid}"))["endsAt"] == "2026-08-20T10:01:00.000Z"

    stack.clock.advance(5 * 86400)
    assert await api.get("/api/v2/silences") == []  # past the retention
    assert (await api.get(f"/api/v2/silence/{sid}"))["status"] == {"state": "expired"}


@pytest.mark.parametrize(
    ("matcher", "silenced"),
    [
        (("instance", "=", "web1"), {"web1"}),
        (("instance", "!=", "web1"), {"web10", "db1"}),
        (("instance", "=~", "web1.*"), {"web1", "web10"}),
        (("instance", "=~", "web"), set()),  # ^(?:web)$
        (("instance", "=~", "web1|db1"), {"web1", "db1"}),
        (("instance", "!~", "web.*"), {"db1"}),
        (("team", "=", ""), {"web1", "web10"}),  # a missing label is ""
        (("team", "!=", ""), {"db1"}),
        (("team", "=~", "(?i)DB"), {"db1"}),
    ],
)
async def test_silence_matchers(
    api: Api, stack: Stack, matcher: tuple[str, str, str], silenced: set[str]
) -> None:
    extra = [] if matcher[0] == "alertname" else [("alertname", "=~", "Disk.*")]
    await api.silence(matcher, *extra)
    await api.push(
        {"alertname": "DiskFull", "instance": "web1"},
        {"alertname": "DiskFull", "instance": "web10"},
        {"alertname": "DiskFull", "instance": "db1", "team": "db"},
    )
    states = await api.states()
    assert {i for i, s in states.items() if s == "suppressed"} == silenced
    quiet = {i.label_map["instance"] for i in stack.store.find() if i.suppressed_by}
    assert quiet == silenced  # the incidents agree with the API


async def test_pending_silence_and_expiring_it(api: Api) -> None:
    sid = await api.silence(
        ("instance", "=", "web1"),
        startsAt="2026-08-20T11:00:00Z",
        endsAt="2026-08-20T12:00:00Z",
    )
    await api.push(DISK_FULL)
    assert (await api.get(f"/api/v2/silence/{sid}"))["status"] == {"state": "pending"}
    assert await api.states() == {"web1": "active"}
    assert (await api.call("DELETE", f"/api/v2/silence/{sid}"))[0] == 200
    gone = await api.get(f"/api/v2/silence/{sid}")
    assert (gone["status"]["state"], gone["startsAt"], gone["endsAt"]) == (
        "expired",
        T0_TEXT,
        T0_TEXT,
    )


async def test_silence_start_in_the_past_starts_now(api: Api) -> None:
    sid = await api.silence(("instance", "=", "web1"), startsAt="2026-08-20T08:00:00Z")
    assert (await api.get(f"/api/v2/silence/{sid}"))["startsAt"] == T0_TEXT


async def test_updating_a_silence_expires_it_and_creates_another(api: Api) -> None:
    first = await api.silence(("instance", "=", "web1"))
    second = await api.silence(("instance", "=", "web2"), id=first, comment="moved")
    assert second != first
    old, new = await api.get(f"/api/v2/silence/{first}"), await api.get(f"/api/v2/silence/{second}")
    assert old["status"]["state"] == "expired"
    assert (new["status"]["state"], new["comment"]) == ("active", "moved")
    assert new["matchers"][0]["value"] == "web2"
    status, body = await api.call(
        "POST", "/api/v2/silences", body=silence_body(("a", "=", "b"), id=silence_uuid_of(99))
    )
    assert (status, body) == (404, "not found")


def silence_uuid_of(row_id: int) -> str:
    return f"a1e7d000-0000-4000-8000-{row_id:012d}"


async def test_silence_filters(api: Api) -> None:
    await api.silence(("instance", "=", "web1"), ("alertname", "=~", "Disk.*"))
    other = await api.silence(("instance", "!=", "web1"), ("job", "=", "node"))
    for filters, expected in [
        (['instance="web1"'], 1),
        (["instance=web1", 'alertname=~"Disk.*"'], 1),
        (['alertname="Disk.*"'], 0),  # same name and value, not the same operator
        (['instance!="web1"'], 1),
        (['job="node"', 'instance!="web1"'], 1),
        ([], 2),
    ]:
        found = await api.get("/api/v2/silences", params=[("filter", f) for f in filters])
        assert len(found) == expected, filters
    (only,) = await api.get("/api/v2/silences", params={"filter": 'instance!="web1"'})
    assert only["id"] == other


async def test_silences_made_with_the_cli_show_in_alertmanager_form(api: Api, stack: Stack) -> None:
    add_window(
        stack.conn,
        kind="silence",
        matchers={"instance": ["web1", "web.2"], "job": ["node"]},
        start=T0,
        end=T0 + HOUR,
        reason="patching",
        owner="bob",
        now=T0,
    )
    add_window(
        stack.conn,
        kind="maintenance",
        matchers={"instance": ["db1"]},
        start=T0,
        end=T0 + HOUR,
        reason="not a silence",
        owner="bob",
        now=T0,
    )
    (silence,) = await api.get("/api/v2/silences")
    assert silence["matchers"] == [
        {"name": "instance", "value": "web1|web\\.2", "isRegex": True, "isEqual": True},
        {"name": "job", "value": "node", "isRegex": False, "isEqual": True},
    ]
    assert (silence["createdBy"], silence["comment"]) == ("bob", "patching")
    status, _ = await api.call("GET", "/api/v2/silence/2")
    assert status == 404  # a maintenance window is not a silence
    await api.push({"alertname": "X", "instance": "web.2", "job": "node"})
    (alert,) = await api.get("/api/v2/alerts")
    assert alert["status"]["silencedBy"] == [silence["id"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "silence in body must be of type object"),
        ({"matchers": []}, "startsAt in body is required"),
        (silence_body(), "matchers in body should have at least 1 items"),
        (silence_body(("job", "=~", "(a")), "invalid regex"),
        (silence_body(("job", "=~", "(?!a)b")), "invalid regex"),
        (silence_body(("job", "=~", ".*")), "at least one matcher must not match the empty"),
        (silence_body(("job", "!=", "x")), "at least one matcher must not match the empty"),
        (silence_body(("job", "=", "x"), endsAt="2026-08-20T09:00:00Z"), "before end time"),
        (
            silence_body(
                ("job", "=", "x"), startsAt="2026-08-20T08:00:00Z", endsAt="2026-08-20T09:00:00Z"
            ),
            "end time can't be in the past",
        ),
        (silence_body(("job", "=", "x"), endsAt="tomorrow"), "endsAt in body must be of type date"),
        (silence_body(("job", "=", "x"), comment=None), "comment in body must be of type string"),
        (silence_body(("job", "=", "x"), id=7), "id in body must be of type string"),
        ({**silence_body(), "matchers": [{"name": "a", "value": "b"}]}, "isRegex in body is"),
        ({**silence_body(), "matchers": [{"name": "", "value": "b", "isRegex": False}]}, "name"),
    ],
)
async def test_invalid_silences_are_refused(
    api: Api, stack: Stack, body: Any, message: str
) -> None:
    status, answer = await api.call("POST", "/api/v2/silences", body=body)
    assert status == 400
    assert isinstance(answer, str)
    assert message in answer
    assert stored_windows(stack.conn, T0, expired=True) == []


async def test_bad_and_unknown_silence_ids(api: Api) -> None:
    for method in ("GET", "DELETE"):
        assert (await api.call(method, "/api/v2/silence/not-a-uuid"))[0] == 400
        status, body = await api.call(method, f"/api/v2/silence/{silence_uuid_of(5)}")
        assert status == 404
        assert isinstance(body, str)
    status, _ = await api.call("POST", "/api/v2/silences", body=None)
    assert status == 400


# -- status, receivers, scopes ------------------------------------------------------------------


async def test_status(api: Api) -> None:
    status = await api.get("/api/v2/status")
    assert status["cluster"] == {"status": "disabled", "peers": []}
    assert status["versionInfo"]["version"] == "0.1.0"
    assert set(status["versionInfo"]) == {
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    }
    assert status["uptime"] == "2026-08-20T09:00:00.000Z"
    config = yaml.safe_load(status["config"]["original"])
    assert config["route"]["receiver"] == "alertd"
    assert config["route"]["routes"] == [
        {
            "receiver": "oncall",
            "matchers": ['severity="critical"'],
            "group_by": ["instance"],
            "group_wait": "0s",
        },
        {"receiver": "ops-log"},
    ]
    assert [r["name"] for r in config["receivers"]] == ["alertd", "oncall", "ops-log", "mail"]
    assert "# maintenance window CHG-7: disk swap" in status["config"]["original"]
    assert "alertd@example.com" not in status["config"]["original"]  # no channel settings


async def test_receivers(api: Api) -> None:
    assert await api.get("/api/v2/receivers") == [
        {"name": "alertd"},
        {"name": "oncall"},
        {"name": "ops-log"},
        {"name": "mail"},
    ]


READS = [
    "/api/v2/alerts",
    "/api/v2/alerts/groups",
    "/api/v2/silences",
    "/api/v2/status",
    "/api/v2/receivers",
    f"/api/v2/silence/{silence_uuid_of(1)}",
]


async def test_scopes(api: Api) -> None:
    sid = await api.silence(("instance", "=", "web1"))
    for path in READS:
        assert (await api.call("GET", path, None))[0] == 401, path
        assert (await api.call("GET", path, "pusher"))[0] == 403, path
        assert (await api.call("GET", path, "reader"))[0] == 200, path
    body = silence_body(("instance", "=", "web2"))
    for who, expected in [(None, 401), ("reader", 403), ("pusher", 403)]:
        assert (await api.call("POST", "/api/v2/silences", who, body))[0] == expected
        assert (await api.call("DELETE", f"/api/v2/silence/{sid}", who))[0] == expected
    assert (await api.get(f"/api/v2/silence/{sid}"))["status"]["state"] == "active"
    assert len(await api.get("/api/v2/silences")) == 1
    assert (await api.call("DELETE", f"/api/v2/silence/{sid}", "admin"))[0] == 200
