"""End to end with a real net-snmp agent: the daemon polls it, opens "device unreachable"
when it stops answering, resolves it when it answers again, and never logs the community."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SmtpServer
from tests.e2e.conftest import Daemon, wait_for
from tests.snmp_agent import SnmpAgent, agent_or_skip, require_net_snmp

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX, IF_DESCR = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.2"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    a = agent_or_skip(workdir=tmp_path / "snmpd", sys_name="edge-sw7")
    a.start()
    try:
        yield a
    finally:
        a.close()


def write_config(cfg: Path, agent: SnmpAgent, smtp: SmtpServer) -> None:
    (cfg / "collectors").mkdir(parents=True)
    shutil.copytree(REPO / "collectors" / "profiles", cfg / "collectors" / "profiles")
    (cfg / "community.txt").write_text(agent.community + "\n")
    host, port = agent.address
    (cfg / "collectors" / "net.yaml").write_text(
        f"""\
snmp:
  - address: {host}
    port: {port}
    instance: edge-sw7
    community_file: community.txt
    interval: 1s
    timeout: 0.3s
    retries: 0
    unreachable_after: 2
    labels: {{site: lab, criticality: high}}
    profiles: [system, if-mib]
"""
    )
    (cfg / "thresholds.yaml").write_text(
        """\
evaluation_interval: 1s
rules:
  - metric: alertd_target_up
    name: target_down
    below: {major: 1}
    summary: "{{ labels.instance }} unreachable"
"""
    )
    (cfg / "channels.yaml").write_text(
        f"""\
channels:
  mail: {{type: email, host: {smtp.host}, port: {smtp.port}, starttls: false,
          from: alertd@example.com, to: [noc@example.com]}}
routes:
  - notify: [mail]
"""
    )


def test_unreachable_device_opens_and_recovers(
    tmp_path: Path,
    agent: SnmpAgent,
    smtp_server: SmtpServer,
    daemon_factory: Callable[[Path], Daemon],
) -> None:
    cfg = tmp_path / "cfg"
    write_config(cfg, agent, smtp_server)
    d = daemon_factory(cfg)
    collector = 'collector="snmp:edge-sw7"'
    wait_for(
        "two good polls",
        lambda: (d.metric(f"alertd_samples_collected_total{{{collector}}}") or 0) > 20,
    )
    assert d.metric('alertd_incidents_open{priority="P2"}') == 0

    agent.pause()  # the switch stops answering
    wait_for("the 'opened' mail", lambda: len(smtp_server.messages) >= 1)
    incidents = json.loads(d.cli("list", "--json"))
    assert [(i["rule"], i["priority"], i["labels"]["instance"]) for i in incidents] == [
        ("target_down", "P2", "edge-sw7")
    ]
    assert (d.metric(f"alertd_collection_errors_total{{{collector}}}") or 0) >= 2

    agent.resume()
    wait_for("the 'resolved' mail", lambda: len(smtp_server.messages) >= 2)
    assert json.loads(d.cli("list", "--state", "resolved", "--json"))[0]["rule"] == "target_down"
    assert d.stop() == 0
    log = d.log()
    assert "Traceback" not in log
    assert agent.community not in log  # the secret never reaches the logs


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_link_down_trap_opens_and_link_up_resolves(
    tmp_path: Path,
    agent: SnmpAgent,
    smtp_server: SmtpServer,
    daemon_factory: Callable[[Path], Daemon],
) -> None:
    require_net_snmp("snmptrap")
    cfg = tmp_path / "cfg"
    write_config(cfg, agent, smtp_server)
    trap_port = free_udp_port()
    trap_community = "t" + agent.community
    with (cfg / "collectors" / "net.yaml").open("a") as f:
        f.write(f"traps:\n  listen: 127.0.0.1:{trap_port}\n  communities: [{trap_community}]\n")
    d = daemon_factory(cfg)
    wait_for(
        "the trap listener", lambda: f"receiving SNMP traps on 127.0.0.1:{trap_port}" in d.log()
    )

    def trap(oid: str, community: str | None = None) -> None:
        result = agent.cli(
            "snmptrap",
            "-v",
            "2c",
            "-c",
            community or trap_community,
            f"127.0.0.1:{trap_port}",
            "",
            oid,
            f"{IF_INDEX}.3",
            "i",
            "3",
            f"{IF_DESCR}.3",
            "s",
            "uplink-3",
        )
        assert result.returncode == 0, result.stderr

    trap(LINK_DOWN)
    wait_for("the linkDown mail", lambda: len(smtp_server.messages) >= 1)
    (incident,) = json.loads(d.cli("list", "--json"))
    assert incident["rule"] == "snmp_trap_link_down"
    assert incident["labels"]["instance"] == "edge-sw7"  # the trap came from a known target
    assert incident["labels"]["ifIndex"] == "3"
    assert incident["priority"] == "P2"  # criticality high x major

    trap(LINK_DOWN, community="wrong-community")  # dropped and counted, nothing opens
    wait_for(
        "the bad-credentials drop",
        lambda: (d.metric('alertd_snmp_traps_dropped_total{reason="bad_credentials"}') or 0) >= 1,
    )
    trap(LINK_UP)
    wait_for("the linkUp mail", lambda: len(smtp_server.messages) >= 2)
    shown = json.loads(d.cli("show", str(incident["id"]), "--json"))
    assert shown["state"] == "resolved"
    assert len(json.loads(d.cli("list", "--state", "all", "--json"))) == 1

    # a reload that changes the trap config rebinds the same port with the new community
    net_yaml = cfg / "collectors" / "net.yaml"
    new_community = "n" + trap_community
    net_yaml.write_text(net_yaml.read_text().replace(trap_community, new_community))
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: d.log().count("config reloaded") == 1)
    assert f"receiving SNMP traps on 127.0.0.1:{trap_port}" in d.log().split("config reloaded")[0]
    assert d.metric("alertd_config_last_reload_successful") == 1
    trap_community = new_community
    trap(COLD_START)  # recorded as a device event, not an incident

    def device_events() -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "alertd", "events", "--state-dir", str(d.state), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return list(json.loads(out.stdout))

    wait_for(
        "the cold start event", lambda: any(e["kind"] == "cold_start" for e in device_events())
    )
    assert device_events()[0]["instance"] == "edge-sw7"
    assert len(json.loads(d.cli("list", "--state", "all", "--json"))) == 1
    assert d.stop() == 0
    log = d.log()
    assert "Traceback" not in log
    assert trap_community not in log
