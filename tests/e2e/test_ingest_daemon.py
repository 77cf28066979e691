"""End to end: Prometheus-style alerts pushed to a running daemon become incidents and mail.

``POST /api/v2/alerts`` with Alertmanager's v2 body: a token with the ``ingest`` scope is
needed once tokens are configured; a firing alert opens an incident and its mail arrives; an
alert re-sent with ``endsAt`` in the past resolves it; one whose ``endsAt`` passes without a
refresh resolves by itself.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import SmtpServer
from tests.e2e.conftest import Daemon, wait_for

pytestmark = pytest.mark.e2e

INGEST_TOKEN = "prometheus-token-for-tests"
READ_TOKEN = "read-only-token-for-tests"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_config(cfg: Path, smtp: SmtpServer) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text(
        f"""\
channels:
  mail:
    type: email
    host: {smtp.host}
    port: {smtp.port}
    starttls: false
    from: alertd@example.com
teams:
  oncall:
    members: [{{name: Alice, email: alice@example.com}}]
    channels: [mail]
routes:
  - notify: [oncall]
"""
    )
    (cfg / "server.yaml").write_text(
        f"""\
tokens:
  prometheus: {{sha256: {sha(INGEST_TOKEN)}, scopes: [ingest]}}
  viewer: {{sha256: {sha(READ_TOKEN)}, scopes: [read]}}
"""
    )


def started(
    tmp_path: Path, smtp: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> tuple[Path, Daemon]:
    """A daemon on ``write_config``'s config in ``tmp_path/cfg``."""
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp)
    return cfg, daemon_factory(cfg)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def post_alerts(d: Daemon, alerts: list[dict[str, object]], token: str | None) -> tuple[int, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{d.port}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def alert(instance: str, ends_at: float | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "labels": {"alertname": "HostCpuHigh", "instance": instance, "severity": "critical"},
        "annotations": {"summary": f"CPU 92% on {instance}"},
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if ends_at is not None:
        body["endsAt"] = rfc3339(ends_at)
    return body


def test_pushed_alerts_open_and_resolve_incidents(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    _, d = started(tmp_path, smtp_server, daemon_factory)

    assert post_alerts(d, [alert("sw-core-01")], None)[0] == 401
    assert post_alerts(d, [alert("sw-core-01")], READ_TOKEN)[0] == 403
    assert post_alerts(d, [alert("sw-core-01")], "not-a-token")[0] == 401
    assert "sw-core-01" not in d.cli("list")  # refused requests changed nothing
    assert d.post("/-/reload") == 401  # with tokens configured, reload needs admin too

    status, body = post_alerts(d, [alert("sw-core-01"), {"labels": {}}], INGEST_TOKEN)
    assert status == 400  # partial accept: the valid one is stored, the invalid one named
    assert "alerts[1]" in body
    wait_for("the opened mail", lambda: len(smtp_server.messages) >= 1)
    listed = d.cli("list")
    assert "CPU 92% on sw-core-01" in listed
    assert "P2" in listed  # critical x the default impact (medium)
    assert "[P" in smtp_server.messages[0].content.decode(errors="replace")

    # Prometheus re-sends while firing: no second incident, no second mail
    assert post_alerts(d, [alert("sw-core-01")], INGEST_TOKEN)[0] == 200
    time.sleep(1.5)
    assert len(smtp_server.messages) == 1

    # resolved: the same labels with endsAt in the past
    assert post_alerts(d, [alert("sw-core-01", time.time() - 1)], INGEST_TOKEN)[0] == 200
    wait_for("the resolved mail", lambda: len(smtp_server.messages) >= 2)
    assert "RESOLVED" in smtp_server.messages[1].content.decode(errors="replace")
    assert "sw-core-01" not in d.cli("list")


def test_an_alert_whose_end_passes_without_a_refresh_resolves(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    _, d = started(tmp_path, smtp_server, daemon_factory)
    assert post_alerts(d, [alert("web-01", time.time() + 2)], INGEST_TOKEN)[0] == 200
    wait_for("the opened mail", lambda: len(smtp_server.messages) >= 1)
    wait_for("the resolved mail", lambda: len(smtp_server.messages) >= 2)
    assert "endsAt passed without a refresh" in d.cli("show", "1")


def test_a_resolve_from_the_cli_is_mailed_by_the_running_daemon(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg, d = started(tmp_path, smtp_server, daemon_factory)
    assert post_alerts(d, [alert("db-01")], INGEST_TOKEN)[0] == 200
    wait_for("the opened mail", lambda: len(smtp_server.messages) >= 1)
    out = d.cli("resolve", "1", "--by", "alice", "--config-dir", str(cfg))
    assert "resolved by alice; 1 notification(s) queued" in out
    wait_for("the resolved mail", lambda: len(smtp_server.messages) >= 2)
    assert "RESOLVED" in smtp_server.messages[1].content.decode(errors="replace")


def test_a_reload_applies_new_ingest_limits_and_default_level(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    """User test: the limits stayed at their start values while the log said reloaded."""
    cfg, d = started(tmp_path, smtp_server, daemon_factory)
    three = [alert(f"host-{i}") for i in range(3)]
    assert post_alerts(d, three, INGEST_TOKEN)[0] == 200

    server = (cfg / "server.yaml").read_text()
    (cfg / "server.yaml").write_text(
        server + "ingest: {max_alerts: 2, max_body_bytes: 2048, default_level: minor}\n"
    )
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: "config reloaded" in d.log())

    status, body = post_alerts(d, three, INGEST_TOKEN)
    assert (status, "more than 2" in body) == (400, True)
    big = alert("big")
    big["annotations"] = {"summary": "x" * 3000}
    assert post_alerts(d, [big], INGEST_TOKEN)[0] == 413
    plain = {"labels": {"alertname": "NoSeverity", "instance": "quiet-1"}}
    assert post_alerts(d, [plain], INGEST_TOKEN)[0] == 200
    wait_for("the incident", lambda: "quiet-1" in d.cli("list"))
    incidents = json.loads(d.cli("list", "--json"))
    (listed,) = [i for i in incidents if i["labels"]["instance"] == "quiet-1"]
    assert listed["level"] == "minor"
