"""``alertd incidents``: where ``--state-dir`` may go, and a resolve by hand that would notify
nobody only when asked to (``--no-notify``), never because its config did not load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.api.views import incident_detail_json
from alertd.cli import main
from alertd.config.load import load_config
from alertd.ingest.external import EXTERNAL_METRIC
from alertd.state.daemon_lock import record_config_dir
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore
from tests.open_incidents import open_incidents


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state_dir = tmp_path / "state"
    conn = connect(state_dir)
    open_incidents(conn, 1)
    conn.close()
    return state_dir


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "thresholds.yaml").write_text("evaluation_interval: 10s\nrules: []\n")
    (config_dir / "channels.yaml").write_text(
        "channels:\n  log: {type: log}\nroutes:\n  - notify: [log]\n"
    )
    return config_dir


def rows(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    conn = connect(state_dir)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["incidents", "--state-dir", "{state}", "list"],
        ["incidents", "list", "--state-dir", "{state}"],
        ["incidents", "show", "1", "--state-dir", "{state}"],
    ],
)
def test_state_dir_goes_before_or_after_the_action(
    state: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(state=state) for a in argv]) == 0
    assert "cpu high on h0" in capsys.readouterr().out


def test_a_resolve_whose_config_does_not_load_is_refused_and_changes_nothing(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    argv = ["incidents", "resolve", "1", "--state-dir", str(state), "--config-dir", str(empty)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "not resolved" in err
    assert "--no-notify" in err
    assert rows(state, "SELECT state FROM incidents") == [("open",)]
    assert rows(state, "SELECT COUNT(*) FROM outbox") == [(0,)]


def test_a_resolve_with_no_notify_says_so_on_the_timeline(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["incidents", "resolve", "1", "--state-dir", str(state), "--no-notify", "--by", "dave"]
    assert main(argv) == 0
    assert rows(state, "SELECT state FROM incidents") == [("resolved",)]
    (line,) = rows(state, "SELECT detail FROM timeline WHERE kind = 'resolved'")
    assert "nobody notified" in str(line[0])
    assert rows(state, "SELECT COUNT(*) FROM outbox") == [(0,)]


def test_a_resolve_queues_what_the_config_routes(
    state: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["incidents", "resolve", "1", "--state-dir", str(state), "--config-dir", str(config)]
    assert main([*argv, "--by", "zhao"]) == 0
    assert "1 notification(s) queued" in capsys.readouterr().out
    assert rows(state, "SELECT transition, channel, state FROM outbox") == [
        ("resolved", "log", "pending")
    ]
    assert main(["incidents", "show", "1", "--state-dir", str(state)]) == 0
    shown = capsys.readouterr().out
    assert "by hand, by zhao" in shown  # not as if it recovered


def test_the_config_dir_of_a_resolve_defaults_to_alertd_config_dir(
    state: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTD_CONFIG_DIR", str(config))
    assert main(["incidents", "resolve", "1", "--state-dir", str(state)]) == 0
    assert rows(state, "SELECT channel FROM outbox") == [("log",)]


def test_without_a_config_dir_a_resolve_reads_the_config_of_the_daemon_on_that_state(
    state: Path, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On-call user test: run from a checkout (the example config in the working directory),
    a resolve told that config's team, not the people the daemon had paged."""
    monkeypatch.delenv("ALERTD_CONFIG_DIR", raising=False)
    elsewhere = tmp_path / "checkout"
    elsewhere.mkdir()
    (elsewhere / "thresholds.yaml").write_text("rules: []\n")
    (elsewhere / "channels.yaml").write_text(
        "channels:\n  other: {type: log}\nroutes:\n  - notify: [other]\n"
    )
    monkeypatch.chdir(elsewhere)
    record_config_dir(state, config)  # as the daemon does at start
    assert main(["incidents", "resolve", "1", "--state-dir", str(state)]) == 0
    assert rows(state, "SELECT channel FROM outbox") == [("log",)]  # the daemon's config


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    # ``alertd incidents list | head -1``: more rows than a pipe holds, and the reader leaves
    state_dir = tmp_path / "many"
    conn = connect(state_dir)
    open_incidents(conn, 3000)
    conn.close()
    argv = ["incidents", "list", "--state", "all", "--limit", "3000", "--state-dir", str(state_dir)]
    with subprocess.Popen(
        [sys.executable, "-m", "alertd", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert b"SUMMARY" in proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in err


def test_show_says_unknown_for_an_incident_without_a_value(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = connect(state)
    conn.execute("UPDATE incidents SET value = NULL")
    conn.commit()
    conn.close()
    assert main(["incidents", "show", "1", "--state-dir", str(state)]) == 0
    assert "value unknown" in capsys.readouterr().out
    # a pushed alert has no value by nature: nothing to call unknown (as mail and the log)
    conn = connect(state)
    conn.execute("UPDATE incidents SET metric = ?", (EXTERNAL_METRIC,))
    conn.commit()
    conn.close()
    assert main(["incidents", "show", "1", "--state-dir", str(state)]) == 0
    assert "value" not in capsys.readouterr().out.split("rule:")[1].splitlines()[0]


def test_an_action_with_nothing_to_do_fails_as_the_apis_409_does(
    state: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolve = ["incidents", "resolve", "1", "--state-dir", str(state), "--config-dir", str(config)]
    assert main(resolve) == 0
    capsys.readouterr()
    assert main(resolve) == 1  # again: nothing to do, and nothing queued twice
    assert "already resolved" in capsys.readouterr().err
    assert rows(state, "SELECT COUNT(*) FROM outbox") == [(1,)]
    assert main(["incidents", "ack", "1", "--state-dir", str(state)]) == 1
    assert "is resolved; nothing to acknowledge" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("action", "done_by_someone_else", "says"),
    [
        ("ack", ["ack", "1", "--by", "li"], "is already acknowledged by li"),
        ("resolve", ["resolve", "1", "--no-notify"], "already resolved"),
    ],
)
def test_an_action_that_someone_else_did_a_moment_before_fails_too(
    state: Path,
    config: Path,
    action: str,
    done_by_someone_else: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the CLI reads the incident while it is open; someone acts before its write lock
    open_copy = IncidentStore(connect(state)).get(1)
    assert main(["incidents", *done_by_someone_else, "--state-dir", str(state)]) == 0
    capsys.readouterr()
    reads = iter([open_copy])
    real_get = IncidentStore.get
    monkeypatch.setattr(
        IncidentStore, "get", lambda self, i: next(reads, None) or real_get(self, i)
    )
    argv = ["incidents", action, "1", "--state-dir", str(state)]
    if action == "resolve":
        argv += ["--config-dir", str(config)]
    assert main(argv) == 1
    assert says in capsys.readouterr().err
    assert rows(state, "SELECT COUNT(*) FROM outbox") == [(0,)]  # nothing queued


def test_a_list_cut_at_its_limit_says_there_are_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # user-test finding: 300 incidents listed 200 with no word about the rest
    state_dir = tmp_path / "many"
    conn = connect(state_dir)
    open_incidents(conn, 3)
    conn.close()
    argv = ["incidents", "list", "--state-dir", str(state_dir)]
    assert main([*argv, "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    assert "more incidents than the 2 shown" in err
    assert "cpu high on h2" in out
    assert "cpu high on h0" not in out  # the newest first
    assert main([*argv, "--limit", "3"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--limit", "0"]) == 0  # no limit
    out, err = capsys.readouterr()
    assert "cpu high on h0" in out
    assert err == ""


def test_a_report_without_the_config_says_to_pass_config_dir(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "not-a-config"
    empty.mkdir()
    assert main(["report", "--state-dir", str(state), "--config-dir", str(empty)]) == 1
    assert "pass --config-dir" in capsys.readouterr().err


def test_show_says_an_acknowledgement_lapsed(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # verification finding: after a lapse (open again) it still read "acked: ... by wang"
    assert main(["incidents", "ack", "1", "--state-dir", str(state), "--by", "wang"]) == 0
    store = IncidentStore(connect(state))
    incident = store.get(1)
    assert incident is not None
    with store.transaction():
        store.unacknowledge(incident, incident.updated_at + 60)
    capsys.readouterr()
    assert main(["incidents", "show", "1", "--state-dir", str(state)]) == 0
    assert "by wang (lapsed)" in capsys.readouterr().out


def test_the_json_of_list_and_show_is_the_apis(
    state: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config / "channels.yaml").write_text(
        "channels:\n  log: {type: log}\nteams:\n  ops: {channels: [log]}\n"
        "priorities:\n  targets:\n    P2: {respond_within: 30m, resolve_within: 8h}\n"
        "routes:\n  - notify: [ops]\n"
    )
    where = ["--state-dir", str(state), "--config-dir", str(config)]
    assert main(["incidents", "show", "1", "--json", *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    conn = connect(state)
    try:
        incident = IncidentStore(conn).get(1)
        assert incident is not None
        api = incident_detail_json(conn, incident, load_config(config).channels)
    finally:
        conn.close()
    assert shown == json.loads(json.dumps(api))
    assert (shown["opened_at"], shown["respond_by"]) == (
        "1970-01-01T00:16:40.000Z",
        "1970-01-01T00:46:40.000Z",
    )
    assert shown["teams"] == ["ops"]

    assert main(["incidents", "list", "--json", *where]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed == {k: v for k, v in shown.items() if k in listed}
    assert "timeline" not in listed


def test_the_json_without_a_config_leaves_teams_out_and_says_so(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = str(tmp_path / "nowhere")
    argv = ["incidents", "show", "1", "--json", "--state-dir", str(state), "--config-dir", nowhere]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)  # stdout stays JSON
    assert (shown["teams"], shown["respond_by"], shown["state"]) == ([], None, "open")
    assert "pass the daemon's --config-dir" in err


def test_the_list_marks_held_back_incidents_and_keeps_each_to_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On-call user test: an incident in a silence read as a plain "open", and a
    300-character summary wrapped the table."""
    state_dir = tmp_path / "state"
    conn = connect(state_dir)
    quiet, long = open_incidents(conn, 2)
    store = IncidentStore(conn)
    with store.transaction():
        store.set_suppressed(quiet, "silence #1 (vendor ticket)")
        conn.execute("UPDATE incidents SET summary = ? WHERE id = ?", ("x" * 300, long.id))
    conn.close()
    assert main(["incidents", "list", "--state-dir", str(state_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if line.split()[0] == str(quiet.id)]
    assert " open* " in row
    assert lines[-1].startswith("* held back")
    (wide,) = [line for line in lines if line.split()[0] == str(long.id)]
    assert wide.endswith("x" * 99 + "…")
