"""The web board over the daemon's real parts, for integration and browser tests.

A config directory (channels, teams, priority targets, API tokens), a real state database,
and the real ``alertd.inbound.Inbound`` the daemon builds (incident manager, outbox,
delivery — never started, so nothing is sent: notifications stay pending in the outbox).
Incidents come in the way Prometheus sends them, through ``Inbound.receive_alerts``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.api.auth import Authorizer
from alertd.board.routes import board_routes, root_redirect
from alertd.clock import SystemClock
from alertd.config.load import Config, load_config
from alertd.inbound import Inbound
from alertd.incidents.manager import IncidentManager
from alertd.ingest.alertmanager import IngestLimits, parse_postable_alerts
from alertd.metrics import Metrics
from alertd.model import Incident
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import OutboxStore
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore, TimelineEntry

NOW = 1_787_220_000.0  # 2026-08-20T10:00:00Z
SECRET = b"board-session-secret-for-tests-0123456789"

# name -> (token, scopes)
TOKENS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alice-oncall": ("tok-alice-responder-7f3a", ("read", "respond")),
    "viewer": ("tok-viewer-read-only-91b2", ("read",)),
    "ops-admin": ("tok-admin-3c9d", ("read", "admin")),
    "prometheus": ("tok-prometheus-ingest-5e1f", ("ingest",)),
}

CHANNELS_YAML = """\
channels:
  mail:
    type: email
    host: 127.0.0.1
    port: 9
    starttls: false
    from: alertd@example.com
teams:
  netops:
    members: [{name: Alice, email: alice@example.com}]
    channels: [mail]
  dba:
    members: [{name: Bob, email: bob@example.com}]
    channels: [mail]
priorities:
  targets:
    P1: {respond_within: 5m, resolve_within: 1h}
    P2: {respond_within: 15m, resolve_within: 4h}
    P3: {respond_within: 1h, resolve_within: 1d}
routes:
  - match: {team: dba}
    notify: [dba]
  - notify: [netops]
maintenance:
  - name: CHG-1234
    match: {instance: [sw-edge-09]}
    start: 2026-08-20T09:00:00Z
    duration: 6h
    reason: core switch firmware upgrade
    owner: change-board
"""


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_config(cfg: Path, tokens: Mapping[str, tuple[str, Sequence[str]]]) -> None:
    """Write a config directory; ``tokens`` empty leaves the board open."""
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text(CHANNELS_YAML)
    lines = ["tokens:" if tokens else "tokens: {}"]
    for name, (token, scopes) in tokens.items():
        lines.append(f"  {name}: {{sha256: {sha(token)}, scopes: [{', '.join(scopes)}]}}")
    (cfg / "server.yaml").write_text("\n".join(lines) + "\n")


def alert(
    name: str, summary: str, severity: str = "critical", starts_at: float = NOW, **labels: str
) -> dict[str, object]:
    """One alert as Prometheus posts it (Alertmanager v2 shape)."""
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": summary},
        "startsAt": _rfc3339(starts_at),
        "endsAt": _rfc3339(NOW + 3600),
        "generatorURL": "",
    }


def _rfc3339(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Clock:
    """The daemon's wall clock, moved by the test."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class BoardStack:
    config: Config
    inbound: Inbound
    clock: Clock
    secret: bytes = SECRET
    base: str = ""  # where a test serves it
    authorizer: Authorizer = field(init=False)

    def __post_init__(self) -> None:
        self.authorizer = Authorizer(self.config.server.tokens)

    @property
    def store(self) -> IncidentStore:
        return self.inbound.manager.store

    def post_alerts(self, alerts: Sequence[Mapping[str, object]], at: float | None = None) -> None:
        """Receive alerts as ``POST /api/v2/alerts`` would, at ``at`` (default: the clock)."""
        now = self.clock.now if at is None else at
        saved, self.clock.now = self.clock.now, now
        try:
            posted, errors = parse_postable_alerts(
                json.dumps(list(alerts)).encode(), now, IngestLimits()
            )
            assert not errors, errors
            self.inbound.receive_alerts(posted)
        finally:
            self.clock.now = saved

    def incident(self, rule: str) -> Incident:
        (found,) = [i for i in self.store.find() if i.rule == rule]
        return found

    def timeline(self, incident_id: int) -> list[TimelineEntry]:
        return self.store.timeline(incident_id)

    def routes(self) -> list[web.RouteDef]:
        return [
            *board_routes(self.inbound, lambda: self.authorizer, lambda: self.secret),
            root_redirect(),
        ]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_routes(self.routes())
        return app


def build_stack(
    tmp_path: Path, tokens: Mapping[str, tuple[str, Sequence[str]]] = TOKENS
) -> BoardStack:
    """Return the board's parts over a fresh config and state directory in ``tmp_path``."""
    cfg = tmp_path / "config"
    write_config(cfg, tokens)
    config = load_config(cfg)
    conn = connect(tmp_path / "state")
    store = IncidentStore(conn)
    manager = IncidentManager(store, config.channels)
    outbox = OutboxStore(conn)
    clock = Clock()
    delivery = Delivery(outbox, {}, Metrics(CollectorRegistry()), SystemClock())

    async def reload() -> bool:
        return False

    inbound = Inbound(manager, outbox, delivery, lambda: config, clock, lambda events: None, reload)
    return BoardStack(config, inbound, clock)


def seed(stack: BoardStack) -> None:
    """Three open incidents: a P1 on a core switch (respond overdue), a P2 for the dba team
    and a P4 (no target)."""
    stack.post_alerts(
        [alert("CoreDown", "core switch down", instance="sw-core-01", criticality="high")],
        at=NOW - 12 * 60 - 300,  # opened 17 min ago: 12 min past its 5 min respond target
    )
    stack.post_alerts(
        [alert("DiskFull", "disk / 95% on db-02", "critical", instance="db-02", team="dba")],
        at=NOW - 300,
    )
    stack.post_alerts(
        [alert("LinkErrors", "errors on sw-acc-07 ge-0/0/1", "warning", instance="sw-acc-07")],
        at=NOW - 60,
    )
