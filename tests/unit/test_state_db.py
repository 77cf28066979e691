"""Unit tests of ``alertd.state.db``: migrations, pragmas, newer schemas, two writers."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from alertd.config.channels import ChannelsFile
from alertd.errors import StoreError
from alertd.incidents.actions import acknowledge, add_comment
from alertd.incidents.escalation import paged_so_far
from alertd.model import Incident, IncidentState, Level, StateRecord, make_labels
from alertd.state.db import (
    DB_NAME,
    MIGRATIONS,
    StateConnection,
    connect,
    migrate,
    require_writable,
    write_transaction,
)
from alertd.state.incidents import IncidentStore
from alertd.state.rule_state import load_rule_state, save_rule_state

from .conftest import T0

LATEST = max(v for v, _ in MIGRATIONS)


def draft(fingerprint: str = "f1") -> Incident:
    return Incident(
        id=0,
        fingerprint=fingerprint,
        rule="cpu",
        metric="cpu",
        labels=make_labels({"instance": "web1"}),
        level=Level.MAJOR,
        priority="P2",
        state=IncidentState.OPEN,
        summary="cpu is 90 on web1",
        value=90.0,
        opened_at=T0,
        updated_at=T0,
    )


def open_before(conn: sqlite3.Connection, d: Incident) -> Incident:
    """Insert ``d`` as a release before the newest columns did (``IncidentStore.open``
    writes those), and return it with its id."""
    times = (d.opened_at, d.updated_at)
    cur = conn.execute(
        "INSERT INTO incidents (fingerprint, rule, metric, labels, level, priority, state, "
        "summary, value, opened_at, updated_at) VALUES (?, ?, ?, '[]', ?, ?, 'open', ?, ?, ?, ?)",
        (d.fingerprint, d.rule, d.metric, int(d.level), d.priority, d.summary, d.value, *times),
    )
    assert cur.lastrowid is not None
    return replace(d, id=cur.lastrowid, labels=())


def versions(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


def test_migrations_run_once_and_record_the_version(conn: sqlite3.Connection) -> None:
    assert versions(conn) == [v for v, _ in MIGRATIONS]
    assert {"incidents", "timeline", "rule_state", "schema_migrations"} <= tables(conn)
    applied_at = conn.execute("SELECT applied_at FROM schema_migrations").fetchall()
    assert migrate(conn) == LATEST
    assert migrate(conn) == LATEST
    assert conn.execute("SELECT applied_at FROM schema_migrations").fetchall() == applied_at


def test_connecting_twice_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    first = connect(tmp_path)
    IncidentStore(first).open(draft())
    first.close()
    second = connect(tmp_path)
    try:
        assert versions(second) == [v for v, _ in MIGRATIONS]
        assert [i.fingerprint for i in IncidentStore(second).find()] == ["f1"]
    finally:
        second.close()
    assert (tmp_path / DB_NAME).is_file()


def test_connect_creates_the_state_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "lib" / "alertd"
    conn = connect(state_dir)
    conn.close()
    assert (state_dir / DB_NAME).is_file()


def test_pragmas(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # short: alertd's writers take turns by the lock file; this waits for outsiders only, on
    # the event loop
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_foreign_keys_reject_timeline_of_missing_incident(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        IncidentStore(conn).add_timeline(999, T0, "comment", "nobody home")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (LATEST + 1, T0)
    )
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        connect(tmp_path)


def test_unusable_state_directory_is_a_store_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StoreError, match=DB_NAME):
        connect(not_a_dir)


def test_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite, just some text " * 100)
    with pytest.raises(StoreError, match=DB_NAME):
        connect(tmp_path)


def test_a_full_disk_says_so_and_leaves_no_transaction_open(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on a full disk; a ROLLBACK of our own then failed with "no
    # transaction is active", which was the only error anyone saw
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    def fill() -> None:
        with write_transaction(conn):
            conn.execute("CREATE TABLE filler (x TEXT)")
            for _ in range(100):
                conn.execute("INSERT INTO filler VALUES (?)", ("x" * 3000,))

    with pytest.raises(sqlite3.OperationalError, match="full"):
        fill()
    assert not conn.in_transaction
    conn.execute(f"PRAGMA max_page_count = {2**30}")
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'filler'").fetchone() is None
    with write_transaction(conn):  # the connection is still of use
        conn.execute("CREATE TABLE after_the_full_disk (x TEXT)")
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'after_the_full_disk'").fetchone()


def test_a_database_opened_read_only_fails_the_write_probe_with_what_to_check(
    tmp_path: Path,
) -> None:
    connect(tmp_path).close()
    ro = sqlite3.connect(
        f"file:{tmp_path / DB_NAME}?mode=ro",
        uri=True,
        isolation_level=None,
        factory=StateConnection,
    )
    with pytest.raises(StoreError, match=r"cannot write.*readonly.*owner and mode"):
        require_writable(ro, tmp_path)
    assert not ro.in_transaction
    writable = connect(tmp_path)
    require_writable(writable, tmp_path)  # and leaves nothing behind
    assert (
        writable.execute("SELECT COUNT(*) FROM schema_migrations WHERE version < 0").fetchone()[0]
        == 0
    )


def test_a_start_waits_for_an_outside_lock_then_says_who_to_look_for(tmp_path: Path) -> None:
    connect(tmp_path).close()
    outsider = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    conn = connect(tmp_path)
    try:
        outsider.execute("BEGIN EXCLUSIVE")
        threading.Timer(0.5, lambda: outsider.execute("ROLLBACK")).start()
        require_writable(conn, tmp_path, locked_for=30.0)  # waited, then wrote
        outsider.execute("BEGIN EXCLUSIVE")  # and now for good
        with pytest.raises(StoreError, match=r"database is locked \(another program holds it"):
            require_writable(conn, tmp_path, locked_for=0.0)
    finally:
        outsider.close()
        conn.close()


def test_rule_state_upsert_and_delete(conn: sqlite3.Connection) -> None:
    record = StateRecord(
        fingerprint="fp",
        rule="cpu",
        metric="cpu",
        labels=make_labels({"instance": "web1", "site": "上海"}),
        firing=None,
        firing_since=None,
        since=(T0, None, None),
    )
    save_rule_state(conn, {"fp": record})
    assert load_rule_state(conn) == [record]
    firing = StateRecord(
        "fp", "cpu", "cpu", record.labels, Level.CRITICAL, T0 + 60, (T0, T0 + 1.5, T0 + 2)
    )
    save_rule_state(conn, {"fp": firing})
    assert load_rule_state(conn) == [firing]
    save_rule_state(conn, {"fp": None, "unknown": None})
    assert load_rule_state(conn) == []


# -- daemon + CLI ---------------------------------------------------------------------------
def test_two_connections_write_alternately(tmp_path: Path) -> None:
    daemon, cli = connect(tmp_path), connect(tmp_path)
    try:
        dstore, cstore = IncidentStore(daemon), IncidentStore(cli)
        for i in range(20):
            with dstore.transaction():
                opened = dstore.open(draft(f"f{i}"))
                dstore.add_timeline(opened.id, T0 + i, "opened", "opened")
            seen = cstore.get(opened.id)
            assert seen is not None
            assert "acknowledged by cli" in acknowledge(cstore, seen, "cli", None, T0 + i, "cli")
            add_comment(cstore, seen, "cli", "note", T0 + i)
        assert len(dstore.find([IncidentState.ACKNOWLEDGED])) == 20
        assert [t.kind for t in dstore.timeline(1)] == ["opened", "acknowledged", "comment"]
    finally:
        daemon.close()
        cli.close()


def test_reader_in_a_transaction_does_not_block_a_writer(tmp_path: Path) -> None:
    daemon, cli = connect(tmp_path), connect(tmp_path)
    try:
        cli.execute("BEGIN")
        assert cli.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 0
        store = IncidentStore(daemon)
        with store.transaction():
            store.open(draft())
        # the reader keeps its snapshot until its transaction ends (WAL)
        assert cli.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 0
        cli.execute("COMMIT")
        assert cli.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 1
    finally:
        daemon.close()
        cli.close()


def test_second_writer_waits_for_the_first_instead_of_failing(tmp_path: Path) -> None:
    daemon = connect(tmp_path)
    errors: list[BaseException] = []
    started = threading.Event()

    def cli_writes() -> None:  # its own connection: sqlite3 connections stay in one thread
        cli = connect(tmp_path)
        try:
            store = IncidentStore(cli)
            started.set()
            with store.transaction():  # waits on the daemon's write lock (busy_timeout)
                store.open(draft("from-cli"))
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            cli.close()

    try:
        daemon.execute("BEGIN IMMEDIATE")
        IncidentStore(daemon).open(draft("from-daemon"))
        worker = threading.Thread(target=cli_writes)
        worker.start()
        assert started.wait(5)
        time.sleep(0.2)  # let the CLI run into the lock
        daemon.execute("COMMIT")
        worker.join(15)
        assert not worker.is_alive()
        assert errors == []
        names = {i.fingerprint for i in IncidentStore(daemon).find()}
        assert names == {"from-daemon", "from-cli"}
    finally:
        daemon.close()


def test_open_returns_the_draft_as_stored_every_field_kept(conn: sqlite3.Connection) -> None:
    from dataclasses import fields, replace

    full = replace(draft("fp-all"), value=1.5, updated_at=T0 + 1, suppressed_by="parent sw1")
    opened = IncidentStore(conn).open(full)
    assert opened.id > 0
    assert replace(opened, id=0) == full
    assert IncidentStore(conn).get(opened.id) == opened  # what a read gives back, field for field
    assert len(fields(Incident)) == 18  # a new field: keep IncidentStore.open's copy of it


def test_after_migration_12_new_intents_keep_their_body_apart_and_old_ones_still_load(
    tmp_path: Path,
) -> None:
    from alertd.model import Notification, Transition
    from alertd.notify.outbox import OutboxStore, _message, dump_notification
    from alertd.state.db import _statements

    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, sql in MIGRATIONS:
        if version < 12:  # a state directory written by the previous release
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, T0))
    incident = open_before(conn, draft())
    n = Notification(incident, Transition.OPENED, "mail", ("a@example.com",), key="k1")
    conn.execute(
        "INSERT INTO outbox (key, incident_id, transition, channel, team, recipients, message, "
        "payload, state, created_at, next_at, updated_at) "
        "VALUES ('k1', ?, 'opened', 'mail', '', '[\"a@example.com\"]', ?, ?, 'pending', ?, ?, ?)",
        (incident.id, _message(n), dump_notification(n), T0, T0, T0),
    )
    assert migrate(conn) == LATEST
    store = OutboxStore(conn)
    (old,) = store.due(T0 + 1, 10)  # an intent from before: its payload is in its row
    assert old.notification == n
    new = Notification(incident, Transition.RESOLVED, "mail", ("a@example.com",), key="k2")
    store.enqueue([new], T0 + 2)
    assert [i.notification for i in store.due(T0 + 3, 10)] == [n, new]
    assert conn.execute("SELECT message, payload FROM outbox WHERE key = 'k2'").fetchone() == (
        "",
        "",
    )  # the row stays narrow; the body is in outbox_body
    assert conn.execute("SELECT message FROM outbox_body").fetchone() == (_message(new),)
    narrowed = store.narrow(old, ())
    assert store.due(T0 + 3, 10)[0].notification == narrowed.notification
    conn.close()


def test_migration_15_starts_paged_step_at_the_step_already_paged(tmp_path: Path) -> None:
    # an incident escalated to tier-3 before the upgrade: its resolve still reaches tier-3
    from alertd.state.db import _statements
    from alertd.state.incidents import EscalationStore

    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, sql in MIGRATIONS:
        if version < 15:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, T0))
    escalated = open_before(conn, draft("fp-escalated"))
    quiet = open_before(conn, draft("fp-quiet"))
    conn.execute("UPDATE incidents SET escalation_step = 2 WHERE id = ?", (escalated.id,))
    assert migrate(conn) == LATEST
    state = EscalationStore(conn).get(escalated.id)
    assert state is not None
    assert state.paged_step == 2
    assert EscalationStore(conn).get(quiet.id).paged_step == 0  # type: ignore[union-attr]
    # who was paged is not known for it (migration 16): the steps of its route tell
    assert state.paged == ()
    config = ChannelsFile.model_validate(
        {
            "channels": {"log": {"type": "log"}},
            "teams": {t: {"channels": ["log"]} for t in ("t1", "t2", "t3")},
            "routes": [
                {
                    "escalate": [
                        {"notify": ["t1"]},
                        {"after": "5m", "notify": ["t2"]},
                        {"after": "10m", "notify": ["t3"]},
                    ]
                }
            ],
        }
    )
    assert paged_so_far(EscalationStore(conn), escalated, config) == ("t1", "t2", "t3")
    conn.close()


def test_who_resolved_by_hand_is_kept_until_it_reopens(conn: sqlite3.Connection) -> None:
    store = IncidentStore(conn)
    opened = store.open(draft("fp-hand"))
    assert store.resolve(opened, T0 + 5, by="wang").resolved_by == "wang"
    assert store.get(opened.id).resolved_by == "wang"  # type: ignore[union-attr]
    store.reopen(store.get(opened.id), T0 + 10)  # type: ignore[arg-type]
    assert store.get(opened.id).resolved_by is None  # type: ignore[union-attr]
    assert store.resolve(store.get(opened.id), T0 + 20).resolved_by is None  # type: ignore[arg-type]
