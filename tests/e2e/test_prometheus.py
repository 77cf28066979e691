"""End to end: a real Prometheus (Debian's ``prometheus``) with alertd as its Alertmanager.

Its rule fires at once (``vector(1)``, ``for: 0s``, evaluated every second) and Prometheus
pushes the alert to ``/api/v2/alerts`` with an ``ingest`` token: it becomes an alertd
incident. Then the rules file is rewritten so the rule no longer matches and Prometheus is
reloaded (SIGHUP): it keeps the alert's state across the reload, sees it resolved, and sends
it with ``endsAt`` = the resolution time, which resolves the incident.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import Daemon, wait_for
from tests.e2e.test_amtool import require_peer

pytestmark = pytest.mark.e2e

TOKEN = "prometheus-ingest-token-for-tests"
FIRING = "vector(1)"
NOT_FIRING = "vector(1) == 0"  # an empty result: the alert resolves


def rules(expr: str) -> str:
    return f"""\
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: PrometheusE2E
        expr: {expr}
        for: 0s
        labels: {{severity: critical, team: e2e}}
        annotations: {{summary: fired by a real Prometheus}}
"""


def write_alertd_config(cfg: Path) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text("channels:\n  ops-log: {type: log}\n")
    sha = hashlib.sha256(TOKEN.encode()).hexdigest()
    (cfg / "server.yaml").write_text(
        f"tokens:\n  prometheus: {{sha256: {sha}, scopes: [ingest]}}\n"
    )


class Prometheus:
    def __init__(self, binary: str, workdir: Path, alertd_port: int) -> None:
        workdir.mkdir()
        self.rules = workdir / "rules.yml"
        self.rules.write_text(rules(FIRING))
        config = workdir / "prometheus.yml"
        config.write_text(
            f"""\
global:
  evaluation_interval: 1s
rule_files: [{self.rules}]
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{credentials: {TOKEN}}}
      static_configs:
        - targets: ["127.0.0.1:{alertd_port}"]
"""
        )
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--rules.alert.resend-delay=5s",  # endsAt = now + 4 x 5s
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alerts(self) -> list[dict[str, object]]:
        """Prometheus' own view of its alerts (``/api/v1/alerts``)."""
        try:
            url = f"http://127.0.0.1:{self.port}/api/v1/alerts"
            with urllib.request.urlopen(url, timeout=5) as r:
                return list(json.load(r)["data"]["alerts"])
        except OSError:
            return []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    binary = require_peer("prometheus", "prometheus")
    started: list[Prometheus] = []

    def start(alertd_port: int) -> Prometheus:
        p = Prometheus(binary, tmp_path / f"prometheus{len(started)}", alertd_port)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def incidents(d: Daemon) -> list[dict[str, object]]:
    found = json.loads(d.cli("list", "--state", "all", "--json"))
    return [i for i in found if i["rule"] == "PrometheusE2E"]


def test_a_prometheus_alert_opens_and_resolves_an_incident(
    tmp_path: Path,
    daemon_factory: Callable[[Path], Daemon],
    prometheus_factory: Callable[[int], Prometheus],
) -> None:
    cfg = tmp_path / "cfg"
    write_alertd_config(cfg)
    d = daemon_factory(cfg)
    prom = prometheus_factory(d.port)

    wait_for("Prometheus to fire", lambda: prom.alerts() != [] or prom.proc.poll() is not None)
    assert prom.proc.poll() is None, prom.log()
    wait_for("the alert to become an alertd incident", lambda: len(incidents(d)) == 1)
    (incident,) = incidents(d)
    assert incident["state"] == "open"
    assert incident["summary"] == "fired by a real Prometheus"
    assert incident["labels"] == {
        "alertname": "PrometheusE2E",
        "severity": "critical",
        "team": "e2e",
    }
    assert incident["level"] == "critical"

    prom.rules.write_text(rules(NOT_FIRING))
    prom.proc.send_signal(signal.SIGHUP)
    wait_for("Prometheus to resolve its alert", lambda: prom.alerts() == [])
    wait_for("the incident to resolve", lambda: incidents(d)[0]["state"] == "resolved")
    (resolved,) = incidents(d)  # the same incident, resolved (not a second one)
    assert resolved["id"] == incident["id"]
    # resolved by Prometheus' resolved alert, not by its endsAt (now + 4 x 5s) passing
    assert "endsAt passed without a refresh" not in d.cli("show", str(incident["id"]))
