"""End to end: the real ``amtool`` (Debian's ``prometheus-alertmanager`` 0.25) against a running
alertd, unchanged: add an alert, query it with a matcher, silence it, see it silenced (and the
silence in ``alertd silence list``), expire the silence, and show the configuration.

amtool sends a bearer token from its ``--http.config.file``, so the daemon runs with tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Daemon

pytestmark = pytest.mark.e2e

TOKEN = "amtool-token-for-tests"
READER = "reader-token-for-tests"
SILENCE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def require_peer(tool: str, package: str) -> str:
    """Return the path of ``tool``; skip the test if it is missing, or fail it when
    ``ALERTD_REQUIRE_PEERS=1`` (CI)."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} not installed (apt-get install {package})"
        if os.environ.get("ALERTD_REQUIRE_PEERS") == "1":
            pytest.fail(f"ALERTD_REQUIRE_PEERS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_config(cfg: Path) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text(
        """\
channels:
  ops-log: {type: log}
routes:
  - match: {team: db}
    notify: [ops-log]
    repeat: 1h
  - notify: [ops-log]
"""
    )
    (cfg / "server.yaml").write_text(
        f"""\
tokens:
  amtool: {{sha256: {sha(TOKEN)}, scopes: [read, admin, ingest]}}
  viewer: {{sha256: {sha(READER)}, scopes: [read]}}
"""
    )


class Amtool:
    def __init__(self, binary: str, d: Daemon, home: Path) -> None:
        self.binary = binary
        self.url = f"http://127.0.0.1:{d.port}"
        home.mkdir(exist_ok=True)
        self.env = {**os.environ, "HOME": str(home)}  # no ~/.config/prometheus/amtool.yml
        self.http_configs = {}
        for name, token in (("admin", TOKEN), ("viewer", READER)):
            path = home / f"{name}.yml"
            path.write_text(f"authorization:\n  type: Bearer\n  credentials: {token}\n")
            self.http_configs[name] = path

    def run(self, *args: str, who: str | None = "admin") -> subprocess.CompletedProcess[str]:
        auth = [f"--http.config.file={self.http_configs[who]}"] if who else []
        return subprocess.run(
            [self.binary, f"--alertmanager.url={self.url}", *auth, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"amtool {' '.join(args)}: {done.stderr}"
        return done.stdout


def alert_rows(output: str) -> list[tuple[str, str]]:
    """amtool's simple alert table: (alertname, state) per row, sorted."""
    rows = [line.split() for line in output.splitlines()[1:] if line.strip()]
    return sorted((row[0], row[-1]) for row in rows)


def test_amtool_against_alertd(tmp_path: Path, daemon_factory: Callable[[Path], Daemon]) -> None:
    binary = require_peer("amtool", "prometheus-alertmanager")
    cfg = tmp_path / "cfg"
    write_config(cfg)
    d = daemon_factory(cfg)
    status, _ = d.get("/api/v2/status")
    assert status == 401, "the Alertmanager v2 routes are not wired into the daemon"
    am = Amtool(binary, d, tmp_path / "home")

    # alert add: zero startsAt/endsAt, the server fills them in
    am.ok("alert", "add", "alertname=DiskFull", "instance=web1", "--annotation=summary=disk 99%")
    am.ok("alert", "add", "CpuHigh", "instance=web2", "team=db")  # first arg: the alertname
    assert alert_rows(am.ok("alert", "query")) == [("CpuHigh", "active"), ("DiskFull", "active")]
    only = am.ok("alert", "query", "alertname=DiskFull")
    assert alert_rows(only) == [("DiskFull", "active")]
    assert "disk 99%" in only
    assert alert_rows(am.ok("alert", "query", 'instance=~"web[0-9]"', "team!=db")) == [
        ("DiskFull", "active")
    ]
    extended = am.ok("-o", "extended", "alert", "query", "CpuHigh")
    assert 'alertname="CpuHigh" instance="web2" team="db"' in extended
    assert "DiskFull" not in extended
    assert "disk 99%" in d.cli("list")  # it is an alertd incident

    # silence add -> query -> the alert shows as silenced
    added = am.ok("silence", "add", "alertname=DiskFull", "-c", "CHG-42 disk swap", "-d", "1h")
    silence_id = added.strip()
    assert SILENCE_ID.match(silence_id), added
    listed = am.ok("silence", "query")
    assert silence_id in listed
    assert 'alertname="DiskFull"' in listed
    assert "CHG-42 disk swap" in listed
    assert am.ok("silence", "query", "-q", "alertname=DiskFull").split() == [silence_id]
    assert alert_rows(am.ok("alert", "query")) == [("CpuHigh", "active")]  # active only
    assert alert_rows(am.ok("alert", "query", "--silenced")) == [("DiskFull", "suppressed")]
    as_json = json.loads(am.ok("-o", "json", "alert", "query", "--silenced"))
    assert [a["status"]["silencedBy"] for a in as_json] == [[silence_id]]

    # an alertd silence: the CLI lists it, and a new alert it covers is quiet
    cli_list = subprocess.run(
        [sys.executable, "-m", "alertd", "silence", "--state-dir", str(d.state), "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "silence #1: alertname=DiskFull" in cli_list
    assert "CHG-42 disk swap" in cli_list
    am.ok("alert", "add", "alertname=DiskFull", "instance=web3")
    incidents = json.loads(d.cli("list", "--json"))
    web3 = [i for i in incidents if i["labels"].get("instance") == "web3"]
    assert [i["suppressed_by"] for i in web3] == ["silence #1 (CHG-42 disk swap)"]

    # a read-only token may look but not silence
    viewer = am.run("silence", "add", "alertname=CpuHigh", "-c", "no", who="viewer")
    assert viewer.returncode != 0
    assert "403" in viewer.stderr or "Forbidden" in viewer.stderr
    assert am.run("alert", "query", who=None).returncode != 0  # no token at all

    # expire: gone from the query, listed as expired, the alerts are active again
    am.ok("silence", "expire", silence_id)
    assert silence_id not in am.ok("silence", "query")
    assert silence_id in am.ok("silence", "query", "--expired")
    assert alert_rows(am.ok("alert", "query", "DiskFull")) == [("DiskFull", "active")] * 2
    assert am.run("silence", "expire", "a1e7d000-0000-4000-8000-000000000099").returncode != 0

    # regex silences are alertd silences too
    regex_id = am.ok("silence", "add", 'instance=~"web[23]"', "-c", "regex").strip()
    assert alert_rows(am.ok("alert", "query", "--silenced")) == [
        ("CpuHigh", "suppressed"),  # web2
        ("DiskFull", "suppressed"),  # web3; web1 is active
    ]
    am.ok("silence", "expire", regex_id)

    # config show: channels.yaml as an Alertmanager config, which amtool itself accepts
    shown = am.ok("config", "show")
    assert "receiver: alertd" in shown
    assert "receiver: ops-log" in shown
    assert "repeat_interval: 1h" in shown
    rendered = tmp_path / "rendered.yml"
    rendered.write_text(shown)
    checked = subprocess.run(
        [binary, "check-config", str(rendered)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
