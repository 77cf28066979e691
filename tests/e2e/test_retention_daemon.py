"""End to end: the running daemon forgets what is past server.yaml's retention, and only that."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alertd.state.db import connect
from alertd.state.events import DeviceEvent, record_device_event
from tests.e2e.conftest import Daemon, wait_for
from tests.open_incidents import open_incidents

pytestmark = pytest.mark.e2e

DAY = 86400.0


def test_the_daemon_purges_old_resolved_incidents_and_events_and_keeps_the_rest(
    tmp_path: Path, daemon_factory: Callable[[Path], Daemon]
) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (cfg / "channels.yaml").write_text(
        "channels:\n  log: {type: log}\nroutes:\n  - notify: [log]\n"
    )
    (cfg / "server.yaml").write_text("retention: {incidents: 90d, events: 7d}\n")
    now = time.time()
    conn = connect(tmp_path / "state")
    old, recent, still_open = open_incidents(conn, 3)
    for incident, resolved_at in ((old, now - 100 * DAY), (recent, now - 80 * DAY)):
        conn.execute(
            "UPDATE incidents SET state = 'resolved', resolved_at = ? WHERE id = ?",
            (resolved_at, incident.id),
        )
    for ts in (now - 8 * DAY, now - DAY):
        record_device_event(conn, DeviceEvent(ts, "10.0.0.1", "sw1", "restart", "", "reboot"))
    conn.close()

    d = daemon_factory(cfg)
    wait_for("the purge", lambda: "retention: 1 resolved incident(s)" in d.log())
    assert "and 1 device event(s) forgotten" in d.log()
    listed = [line.split()[0] for line in d.cli("list", "--state", "all").splitlines()[1:]]
    assert sorted(listed) == sorted([str(recent.id), str(still_open.id)])
