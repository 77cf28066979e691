"""End to end: ``python -m alertd run`` on a temp config, mail to a real SMTP server.

A memory threshold of 0% is crossed on any machine: the incident opens, the mail arrives, the
CLI sees and acknowledges it; a broken thresholds.yaml on SIGHUP keeps the daemon on its old
config; a threshold no machine can cross, on SIGHUP, resolves it with a "resolved" mail.
"""

from __future__ import annotations

import email
import email.policy
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SmtpServer, free_port
from tests.e2e.conftest import Daemon, run_command, wait_for, write_memory_config

pytestmark = pytest.mark.e2e


def write_config(cfg: Path, smtp: SmtpServer, major: float) -> None:
    channels = f"""\
channels:
  log: {{type: log}}
  mail:
    type: email
    host: {smtp.host}
    port: {smtp.port}
    starttls: false
    from: alertd@example.com
teams:
  oncall:
    members: [{{name: Alice, email: alice@example.com}}]
    channels: [mail, log]
routes:
  - notify: [oncall]
"""
    summary = '"Memory {{ value | round(1) }}% used on {{ labels.instance }}"'
    write_memory_config(cfg, major, "e2e-host", channels, summary)


def mails(smtp: SmtpServer) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(m.content, policy=email.policy.default)  # type: ignore[misc]
        for m in smtp.messages
    ]


def test_incident_opens_mails_acks_and_resolves_on_reload(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp_server, major=0)
    d = daemon_factory(cfg)

    # the CLI on this state directory reads this config by default
    assert (d.state / "config-dir").read_text().strip() == str(cfg.resolve())

    # 1. the threshold is crossed: an incident opens and a mail arrives
    wait_for("the 'opened' mail", lambda: len(smtp_server.messages) >= 1)
    opened = mails(smtp_server)[0]
    assert "OPENED" in opened["Subject"]
    assert "[P2]" in opened["Subject"]
    assert opened["To"] == "alice@example.com"
    assert smtp_server.messages[0].rcpt_tos == ("alice@example.com",)
    assert "e2e-host" in opened.get_body(preferencelist=("plain",)).get_content()

    listed = json.loads(d.cli("list", "--json"))
    assert len(listed) == 1
    incident = listed[0]
    assert (incident["state"], incident["priority"], incident["level"]) == ("open", "P2", "major")
    assert incident["labels"]["instance"] == "e2e-host"

    # 2. acknowledged from the CLI while the daemon runs: who is recorded
    d.cli("ack", str(incident["id"]), "--by", "alice", "--comment", "on it")
    shown = json.loads(d.cli("show", str(incident["id"]), "--json"))
    assert shown["state"] == "acknowledged"
    assert shown["acknowledged_by"] == "alice"
    assert any(t["kind"] == "acknowledged" and t["actor"] == "alice" for t in shown["timeline"])
    wait_for("incidents_open metric", lambda: d.metric('alertd_incidents_open{priority="P2"}') == 1)
    # the delivery worker process reports its counters to the daemon a moment later
    wait_for(
        "notifications_sent metric",
        lambda: (d.metric('alertd_notifications_sent_total{channel="mail"}') or 0) >= 1,
    )
    # KPIs exported too (computed in a thread: a moment after the evaluation)
    wait_for("kpi metric", lambda: d.metric('alertd_kpi_incidents{priority="P2"}') == 1)
    assert d.metric('alertd_kpi_team_sla_breaches{target="respond",team="oncall"}') == 0

    # 3. a broken thresholds.yaml on SIGHUP: the daemon keeps running the old config
    good = (cfg / "thresholds.yaml").read_text()
    (cfg / "thresholds.yaml").write_text(good.replace("above: {major: 0}", "above: {major: high}"))
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the reload rejection", lambda: "reload rejected" in d.log())
    assert "thresholds.yaml:5:" in d.log()  # file:line of the bad value
    assert d.proc.poll() is None
    assert d.metric("alertd_config_last_reload_successful") == 0
    assert d.post("/-/reload") == 500
    time.sleep(2.5)  # two more evaluation cycles on the old config: nothing resolves
    assert len(smtp_server.messages) == 1
    assert json.loads(d.cli("list", "--json"))[0]["state"] == "acknowledged"

    # 4. a threshold no machine can cross, on SIGHUP: the incident resolves with a mail
    write_config(cfg, smtp_server, major=100)
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the 'resolved' mail", lambda: len(smtp_server.messages) >= 2)
    resolved = mails(smtp_server)[1]
    assert "RESOLVED" in resolved["Subject"]
    assert d.metric("alertd_config_last_reload_successful") == 1

    def timeline_kinds() -> list[str]:
        shown = json.loads(d.cli("show", str(incident["id"]), "--json"))
        return [t["kind"] for t in shown["timeline"]]

    # the delivery outcome is recorded just after the server accepted the mail
    wait_for("both deliveries on the timeline", lambda: timeline_kinds().count("notification") >= 4)
    final = json.loads(d.cli("show", str(incident["id"]), "--json"))
    assert final["state"] == "resolved"
    assert final["resolved_at"] is not None
    kinds = [t["kind"] for t in final["timeline"]]
    assert kinds[0] == "opened"
    assert {"acknowledged", "resolved"} <= set(kinds)

    assert d.stop() == 0
    assert "Traceback" not in d.log(), d.log()


def test_restart_does_not_refire_or_duplicate(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp_server, major=0)
    first = daemon_factory(cfg)
    wait_for("the 'opened' mail", lambda: len(smtp_server.messages) >= 1)
    assert first.stop() == 0

    second = daemon_factory(cfg)
    wait_for(
        "two evaluations after restart",
        lambda: (second.metric("alertd_rule_evaluations_total") or 0) >= 3,
    )
    assert len(smtp_server.messages) == 1  # no second "opened" mail
    assert len(json.loads(second.cli("list", "--state", "all", "--json"))) == 1
    assert second.stop() == 0


def test_bad_config_at_start_exits_1_naming_the_line(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp_server, major=0)
    (cfg / "channels.yaml").write_text("routes:\n  - notify: [nobody]\n")
    out = subprocess.run(
        run_command(cfg, tmp_path / "st", free_port()),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert 'channels.yaml:2:14: routes[0].notify[0]: unknown team or channel "nobody"' in out.stderr
    assert "Traceback" not in out.stderr


def test_unacknowledged_incident_escalates_to_tier2_by_mail(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp_server, major=0)
    channels = (cfg / "channels.yaml").read_text()
    channels = channels.replace(
        "routes:\n  - notify: [oncall]\n",
        "  experts:\n    members: [{name: Bob, email: bob@example.com}]\n    channels: [mail]\n"
        "routes:\n  - escalate:\n      - {notify: [oncall]}\n"
        "      - {after: 3s, notify: [experts]}\n",
    )
    (cfg / "channels.yaml").write_text(channels)
    d = daemon_factory(cfg)
    wait_for("the escalation mail", lambda: len(smtp_server.messages) >= 2)
    first, second = mails(smtp_server)[:2]
    assert "OPENED" in first["Subject"]
    assert first["To"] == "alice@example.com"
    assert "ESCALATED" in second["Subject"]
    assert second["To"] == "bob@example.com"
    (incident,) = json.loads(d.cli("list", "--json"))
    shown = json.loads(d.cli("show", str(incident["id"]), "--json"))
    assert [t["detail"] for t in shown["timeline"] if t["kind"] == "escalated"] == [
        "step 2: experts paged (not acknowledged within 3s)"
    ]
    time.sleep(2.5)
    assert len(smtp_server.messages) == 2  # the last step pages once
    assert d.stop() == 0


def test_maintenance_window_from_the_cli_holds_the_page_until_it_ends(
    tmp_path: Path, smtp_server: SmtpServer, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, smtp_server, major=0)
    state = tmp_path / "state"

    def alertd(command: str, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "alertd", command, "--state-dir", str(state), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    added = alertd(
        "maintenance", "add", "--match", "instance=e2e-host", "--for", "1h", "--reason", "CHG-1234"
    )
    assert added.startswith("maintenance #1 added")
    d = daemon_factory(cfg)
    wait_for("the incident", lambda: len(json.loads(d.cli("list", "--json"))) == 1)
    time.sleep(2.5)  # two more cycles inside the window
    assert smtp_server.messages == []  # recorded, not paged
    (incident,) = json.loads(d.cli("list", "--json"))
    assert incident["suppressed_by"] == "maintenance #1 (CHG-1234)"

    assert alertd("maintenance", "remove", "1").startswith("maintenance #1 removed")
    wait_for("the page once the window is over", lambda: len(smtp_server.messages) >= 1)
    assert "OPENED" in mails(smtp_server)[0]["Subject"]
    shown = json.loads(d.cli("show", str(incident["id"]), "--json"))
    assert [t["kind"] for t in shown["timeline"]][:3] == ["opened", "suppressed", "unsuppressed"]
    assert d.stop() == 0
