"""End to end: a pushed alert reaches a webhook as Alertmanager would send it, with its own
annotations (description, runbook_url), generatorURL, startsAt, and on resolve the endsAt
Prometheus sent; and the mail shows the annotations and the source link."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SmtpServer
from tests.e2e.conftest import Daemon, wait_for
from tests.e2e.test_ingest_daemon import post_alerts, rfc3339

pytestmark = pytest.mark.e2e


class Bodies:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config_dir(tmp_path: Path, evaluation_interval: str, channels_yaml: str) -> Path:
    """A config directory with no rules and ``channels_yaml``."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "thresholds.yaml").write_text(f"evaluation_interval: {evaluation_interval}\nrules: []\n")
    (cfg / "channels.yaml").write_text(channels_yaml)
    return cfg


@pytest.fixture
def bodies() -> Iterator[Bodies]:
    b = Bodies()
    yield b
    b.close()


def test_a_pushed_alert_arrives_with_its_own_annotations_source_and_times(
    tmp_path: Path,
    bodies: Bodies,
    smtp_server: SmtpServer,
    daemon_factory: Callable[[Path], Daemon],
) -> None:
    cfg = config_dir(
        tmp_path,
        "1s",
        f"""\
channels:
  hook: {{type: webhook, url: "{bodies.url}"}}
  mail: {{type: email, host: {smtp_server.host}, port: {smtp_server.port}, starttls: false,
          from: alertd@example.com}}
teams:
  oncall:
    members: [{{name: Alice, email: alice@example.com}}]
    channels: [hook, mail]
routes:
  - notify: [oncall]
""",
    )
    d = daemon_factory(cfg)
    started = float(int(time.time()) - 3600)  # firing for an hour before alertd heard of it
    alert: dict[str, object] = {
        "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
        "annotations": {
            "summary": "disk 97% full on db1",
            "description": "/var is 97% full",
            "runbook_url": "https://runbooks.example/disk",
        },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=disk",
        "startsAt": rfc3339(started),
    }
    assert post_alerts(d, [alert], None)[0] == 200
    wait_for("the webhook", lambda: len(bodies.bodies) >= 1)
    (sent,) = bodies.bodies[0]["alerts"]
    assert sent["annotations"] == alert["annotations"]
    assert sent["generatorURL"] == alert["generatorURL"]
    assert sent["startsAt"] == rfc3339(started)
    assert sent["labels"] == alert["labels"]
    assert sent["status"] == "firing"
    wait_for("the mail", lambda: len(smtp_server.messages) >= 1)
    mail = smtp_server.messages[0].content.decode(errors="replace")
    assert "description: /var is 97% full" in mail
    assert "runbook_url: https://runbooks.example/disk" in mail
    assert "http://prometheus.example:9090/graph?g0.expr=disk" in mail
    assert "Value:" not in mail  # a pushed alert has none: no "Value: unknown"
    _, detail = d.get("/api/v1/incidents/1")
    assert "value unknown" not in detail

    ended = float(int(time.time()) - 10)  # Prometheus saw it end 10 s ago
    assert post_alerts(d, [{**alert, "endsAt": rfc3339(ended)}], None)[0] == 200
    wait_for("the resolved webhook", lambda: len(bodies.bodies) >= 2)
    (resolved,) = bodies.bodies[1]["alerts"]
    assert resolved["status"] == "resolved"
    assert resolved["endsAt"] == rfc3339(ended)
    assert bodies.bodies[1]["status"] == "resolved"


def test_group_wait_escalation_and_ends_at_come_due_between_evaluation_cycles(
    tmp_path: Path, bodies: Bodies, daemon_factory: Callable[[Path], Daemon]
) -> None:
    # an evaluation cycle an hour long: only the deadline loop can act within the test
    cfg = config_dir(
        tmp_path,
        "1h",
        f"""\
channels:
  hook: {{type: webhook, url: "{bodies.url}"}}
  boss: {{type: webhook, url: "{bodies.url}"}}
routes:
  - match: {{alertname: [PortDown]}}
    group_by: [instance]
    group_wait: 2s
    group_interval: 2s
    notify: [hook]
  - escalate:
      - {{notify: [hook]}}
      - {{after: 2s, notify: [boss]}}
""",
    )
    d = daemon_factory(cfg)
    started = float(int(time.time()) - 600)
    ports = [
        {
            "labels": {"alertname": "PortDown", "instance": "sw1", "port": str(i)},
            "annotations": {"summary": f"port {i} down", "runbook_url": "https://rb.example/p"},
            "generatorURL": f"http://prometheus.example:9090/graph?port={i}",
            "startsAt": rfc3339(started + i),
        }
        for i in (1, 2)
    ]
    assert post_alerts(d, ports, None)[0] == 200
    wait_for("the group's first page", lambda: any(b["receiver"] == "hook" for b in bodies.bodies))
    (grouped,) = [b for b in bodies.bodies if b["groupLabels"]]
    assert len(grouped["alerts"]) == 2  # both ports, held together by group_wait
    # each member as Prometheus sent it (user test: annotations {}, no generatorURL)
    by_port = {a["labels"]["port"]: a for a in grouped["alerts"]}
    for i, sent in ((1, ports[0]), (2, ports[1])):
        member = by_port[str(i)]
        assert member["annotations"] == sent["annotations"]
        assert member["generatorURL"] == sent["generatorURL"]
        assert member["startsAt"] == sent["startsAt"]
    assert grouped["commonAnnotations"] == {"runbook_url": "https://rb.example/p"}

    # a third port joins the paged group: one update within group_interval, listing all three
    third = {**ports[1], "labels": {**ports[1]["labels"], "port": "3"}}
    assert post_alerts(d, [third], None)[0] == 200

    def updates() -> list[dict[str, Any]]:
        return [b for b in bodies.bodies if b["incident"]["transition"] == "group_changed"]

    wait_for("the group's update", lambda: len(updates()) == 1)
    (update,) = updates()
    assert sorted(a["labels"]["port"] for a in update["alerts"]) == ["1", "2", "3"]
    assert update["incident"]["summary"].startswith("3 alert(s) firing")

    soon = float(int(time.time()) + 6)  # after the escalation step (2 s), not before it
    cpu = {
        "labels": {"alertname": "CpuHigh", "instance": "web1", "severity": "critical"},
        "endsAt": rfc3339(soon),  # Prometheus stops refreshing: it resolves at endsAt
    }
    assert post_alerts(d, [cpu], None)[0] == 200

    def about_web1(status: str, receiver: str) -> bool:
        return any(
            b["receiver"] == receiver
            and b["status"] == status
            and b["commonLabels"].get("instance") == "web1"
            for b in bodies.bodies
        )

    wait_for("the escalation to boss", lambda: about_web1("firing", "boss"))
    wait_for("the resolve at endsAt", lambda: about_web1("resolved", "hook"))
