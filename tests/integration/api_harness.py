"""A JSON API to test against: the real ``Inbound`` (incident manager, outbox, delivery) over
a real SQLite state directory, with ``/api/v1`` routes on an aiohttp server on 127.0.0.1
(port picked at run time), config loaded from YAML written to a temp directory.

Seeded incidents (``seed``): a P1 and a P2 CPU incident on routes that escalate to two teams,
a P3 disk one routed to a channel only, a grouped incident of two link-down alerts (site
lab), and a resolved one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from alertd.api.auth import Authorizer
from alertd.api.v1 import api_v1_routes
from alertd.clock import FakeClock
from alertd.config.load import Config, load_config
from alertd.inbound import Inbound
from alertd.incidents.maintenance import from_config, from_rows
from alertd.incidents.manager import IncidentManager
from alertd.metrics import Metrics
from alertd.model import AlertEvent, EventKind, Level, fingerprint, make_labels
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import OutboxStore
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import stored_windows

T0 = 1_787_220_000.0  # 2026-08-20T10:00:00Z

TOKENS = {  # name -> (token, scopes)
    "reader": ("reader-token-0123456789", ["read"]),
    "responder": ("responder-token-0123456789", ["read", "respond"]),
    "admin": ("admin-token-0123456789", ["read", "respond", "admin"]),
    "prometheus": ("ingest-token-0123456789", ["ingest"]),
}

CHANNELS_YAML = """\
channels:
  log: {type: log}
  pager: {type: log}
teams:
  netops:
    members:
      - {name: Alice, email: alice@example.com, phone: "+15550100001"}
      - {name: Bob, im: bob-im}
    channels: [log]
  oncall2:
    members: [{name: Carol, phone: "+15550100002"}]
    channels: [pager]
priorities:
  targets:
    P1: {respond_within: 5m, resolve_within: 1h}
    P2: {respond_within: 15m, resolve_within: 4h}
routes:
  - match: {rule: [ifdown]}
    group_by: [site]
    notify: [netops]
  - match: {priority: [P1, P2]}
    escalate:
      - notify: [netops]
      - {after: 10m, notify: [oncall2]}
  - notify: [log]
maintenance:
  - name: CHG-1
    match: {site: [lab]}
    weekly: {days: [sun], at: "02:00", duration: 2h}
    reason: weekly patching
    owner: netops
"""


def write_config(directory: Path, tokens: Mapping[str, tuple[str, list[str]]] = TOKENS) -> Path:
    """Write a config directory (no rules: incidents come from ``fire``); return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "thresholds.yaml").write_text("evaluation_interval: 15s\nrules: []\n")
    (directory / "channels.yaml").write_text(CHANNELS_YAML)
    lines = ["tokens:"] + [
        f"  {name}: {{sha256: {hashlib.sha256(token.encode()).hexdigest()}, "
        f"scopes: [{', '.join(scopes)}]}}"
        for name, (token, scopes) in tokens.items()
    ]
    (directory / "server.yaml").write_text("\n".join(lines) + "\n")
    return directory


@dataclass
class Harness:
    """The daemon's inbound side, without its collectors, evaluator or delivery workers."""

    config: Config
    inbound: Inbound
    clock: FakeClock
    reloads: list[bool] = field(default_factory=list)
    reload_result: bool = True
    reload_problems: tuple[str, ...] = ()  # why a rejected reload was rejected

    @property
    def store(self) -> IncidentStore:
        return self.inbound.manager.store

    def fire(
        self,
        rule: str,
        labels: Mapping[str, str],
        level: Level | None,
        value: float = 97.0,
        at: float | None = None,
    ) -> None:
        """Apply one alert event (``level`` None: resolved) as the daemon does: incident
        changes and their notifications in one transaction."""
        now = self.clock.now() if at is None else at
        ls = make_labels(labels)
        event = AlertEvent(
            kind=EventKind.FIRING if level is not None else EventKind.RESOLVED,
            rule=rule,
            metric=rule,
            labels=ls,
            level=level,
            previous_level=None if level is not None else Level.CRITICAL,
            value=value,
            summary=f"{rule} is {value:g} on {labels.get('instance', '?')}",
            ts=now,
            fingerprint=fingerprint(rule, ls),
        )
        manager = self.inbound.manager
        with manager.store.transaction():
            notes = manager.apply([event], now)
            self.inbound.outbox.enqueue(notes, now)

    def incident_id(self, instance: str) -> int:
        # the newest incident whose labels hold the instance (read as JSON: not its spelling)
        for incident_id, labels in self.store.conn.execute(
            "SELECT id, labels FROM incidents ORDER BY id DESC"
        ):
            if ["instance", instance] in json.loads(labels):
                return int(incident_id)
        raise AssertionError(f"no incident for instance {instance}")


def build(state_dir: Path, config_dir: Path, now: float = T0) -> Harness:
    """Build the real ``Inbound`` over a fresh state database."""
    config = load_config(config_dir)
    conn = connect(state_dir)
    store = IncidentStore(conn)
    manager = IncidentManager(store, config.channels)
    configured = from_config(config.channels)
    manager.windows = lambda at: [*configured, *from_rows(stored_windows(conn, at))]
    outbox = OutboxStore(conn)
    clock = FakeClock(now)
    delivery = Delivery(outbox, {}, Metrics(CollectorRegistry()), clock)
    holder: list[Harness] = []

    async def reloader() -> bool:
        h = holder[0]
        h.reloads.append(h.reload_result)
        return h.reload_result

    inbound = Inbound(
        manager,
        outbox,
        delivery,
        lambda: config,
        clock.now,
        lambda events: None,
        reloader,
        lambda: holder[0].reload_problems,
    )
    harness = Harness(config, inbound, clock)
    holder.append(harness)
    return harness


def seed(h: Harness) -> None:
    """Open the incidents the tests and schemathesis work on (one minute apart)."""
    t = h.clock.now() - 3600
    h.fire("cpu", {"instance": "web1", "criticality": "high", "job": "node"}, Level.CRITICAL, at=t)
    h.fire("cpu", {"instance": "web2", "job": "node"}, Level.CRITICAL, at=t + 60)
    h.fire("disk", {"instance": "db1", "job": "node"}, Level.MAJOR, 8.0, at=t + 120)
    h.fire(
        "ifdown", {"instance": "sw1", "site": "lab", "job": "snmp"}, Level.MAJOR, 1.0, at=t + 180
    )
    h.fire(
        "ifdown", {"instance": "sw2", "site": "lab", "job": "snmp"}, Level.MAJOR, 1.0, at=t + 240
    )
    h.fire("cpu", {"instance": "web3", "job": "node"}, Level.CRITICAL, at=t + 300)
    h.fire("cpu", {"instance": "web3", "job": "node"}, None, 12.0, at=t + 360)


def app_for(h: Harness) -> web.Application:
    """The aiohttp application with the ``/api/v1`` routes (limits as the daemon's)."""
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_routes(
        api_v1_routes(h.inbound, lambda: Authorizer(h.inbound.current_config().server.tokens))
    )
    return app


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 at a port picked now; return the runner and base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
