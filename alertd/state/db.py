"""The SQLite state file: connection settings and schema migrations.

WAL lets the CLI read and write while the daemon runs; writers take turns by a lock file
(``writers_turn``), and ``busy_timeout`` waits briefly for a program outside alertd.
Migrations are numbered and applied in order inside one transaction each;
``schema_migrations`` records which ran, so an old file is upgraded on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

from alertd.errors import StoreError

DB_NAME = "alertd.sqlite3"
WRITER_LOCK_NAME = "alertd.sqlite3.writer-lock"

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE incidents (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            fingerprint     TEXT    NOT NULL,
            rule            TEXT    NOT NULL,
            metric          TEXT    NOT NULL,
            labels          TEXT    NOT NULL,   -- JSON object
            level           INTEGER NOT NULL,   -- 1 minor, 2 major, 3 critical
            priority        TEXT    NOT NULL,
            state           TEXT    NOT NULL,   -- open, acknowledged, resolved
            summary         TEXT    NOT NULL,
            value           REAL,
            opened_at       REAL    NOT NULL,
            updated_at      REAL    NOT NULL,
            acknowledged_at REAL,
            acknowledged_by TEXT,
            resolved_at     REAL
        );
        -- dedup: at most one unresolved incident per fingerprint, enforced by the database
        CREATE UNIQUE INDEX incidents_active_fingerprint
            ON incidents(fingerprint) WHERE state != 'resolved';
        CREATE INDEX incidents_state ON incidents(state, opened_at);
        CREATE TABLE timeline (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            ts          REAL    NOT NULL,
            kind        TEXT    NOT NULL,
            actor       TEXT    NOT NULL,      -- "alertd", a person, or a channel
            detail      TEXT    NOT NULL
        );
        CREATE INDEX timeline_incident ON timeline(incident_id, id);
        CREATE TABLE rule_state (
            fingerprint    TEXT PRIMARY KEY,
            rule           TEXT NOT NULL,
            metric         TEXT NOT NULL,
            labels         TEXT NOT NULL,
            firing         INTEGER,
            firing_since   REAL,
            since_minor    REAL,
            since_major    REAL,
            since_critical REAL
        );
        """,
    ),
    (
        2,
        """
        -- device events that are not incidents: coldStart/warmStart, unknown trap OIDs
        CREATE TABLE events (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            ts       REAL    NOT NULL,
            source   TEXT    NOT NULL,   -- sender's IP address
            instance TEXT    NOT NULL,
            kind     TEXT    NOT NULL,   -- cold_start, warm_start, unknown_trap
            level    INTEGER,            -- 1 minor, 2 major, 3 critical; NULL informational
            trap_oid TEXT    NOT NULL,
            detail   TEXT    NOT NULL
        );
        CREATE INDEX events_ts ON events(ts);
        """,
    ),
    (
        3,
        """
        -- escalation: which step has been paged, and when the next step / re-page is due;
        -- deadlines live here so a restart re-arms them and fires none twice
        ALTER TABLE incidents ADD COLUMN escalation_step INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE incidents ADD COLUMN next_escalation_at REAL;
        ALTER TABLE incidents ADD COLUMN next_repeat_at REAL;
        ALTER TABLE incidents ADD COLUMN resolve_escalated INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX incidents_escalation ON incidents(state, next_escalation_at);
        """,
    ),
    (
        4,
        """
        -- why an incident does not page although it is open (e.g. "parent core-sw1")
        ALTER TABLE incidents ADD COLUMN suppressed_by TEXT;
        """,
    ),
    (
        5,
        """
        -- maintenance windows and silences added from the CLI (YAML ones live in channels.yaml)
        CREATE TABLE maintenance (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            kind       TEXT NOT NULL,     -- maintenance, silence
            matchers   TEXT NOT NULL,     -- JSON object: label -> [values]
            start      REAL NOT NULL,
            end        REAL NOT NULL,
            reason     TEXT NOT NULL,
            owner      TEXT NOT NULL,
            created_at REAL NOT NULL,
            removed_at REAL
        );
        CREATE INDEX maintenance_end ON maintenance(end);
        """,
    ),
    (
        6,
        """
        -- per-event lookups must not scan every incident ever stored (bench_incidents.py)
        CREATE INDEX incidents_open_metric ON incidents(metric) WHERE state != 'resolved';
        CREATE INDEX incidents_resolved_fingerprint ON incidents(fingerprint, resolved_at)
            WHERE state = 'resolved';
        CREATE INDEX incidents_open_suppressed ON incidents(suppressed_by)
            WHERE state != 'resolved' AND suppressed_by IS NOT NULL;
        CREATE INDEX incidents_open_priority ON incidents(priority) WHERE state != 'resolved';
        """,
    ),
    (
        7,
        """
        -- grouping: the alerts that joined one incident (a route's group_by), and when a new
        -- group's first page is due (its group_wait; NULL once paged or when not waiting)
        ALTER TABLE incidents ADD COLUMN first_page_at REAL;
        CREATE INDEX incidents_first_page ON incidents(first_page_at)
            WHERE first_page_at IS NOT NULL;
        CREATE TABLE incident_alerts (
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            fingerprint TEXT    NOT NULL,   -- the member alert's own fingerprint
            rule        TEXT    NOT NULL,
            labels      TEXT    NOT NULL,   -- JSON, as incidents.labels
            level       INTEGER NOT NULL,   -- 1 minor, 2 major, 3 critical
            state       TEXT    NOT NULL,   -- firing, resolved
            since       REAL    NOT NULL,
            PRIMARY KEY (incident_id, fingerprint)
        );
        CREATE INDEX incident_alerts_fingerprint ON incident_alerts(fingerprint)
            WHERE state = 'firing';
        -- the worst firing member of a group, per event, without scanning 10,000 members
        CREATE INDEX incident_alerts_firing ON incident_alerts(incident_id, level)
            WHERE state = 'firing';
        """,
    ),
    (
        8,
        """
        -- the durable outbox: every notification's intent is committed with the incident
        -- change that caused it, before any provider is called; workers drive it from here,
        -- and on start every unfinished intent is driven again
        CREATE TABLE outbox (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            key             TEXT    NOT NULL UNIQUE,    -- idempotency key
            incident_id     INTEGER NOT NULL REFERENCES incidents(id),
            transition      TEXT    NOT NULL,
            channel         TEXT    NOT NULL,
            team            TEXT    NOT NULL,           -- '' when routed to the channel itself
            recipients      TEXT    NOT NULL,           -- JSON list of addresses
            message         TEXT    NOT NULL,           -- one line: what it says
            payload         TEXT    NOT NULL,           -- JSON: the notification as committed
            -- pending, sending, held, digested, delivered, failed
            state           TEXT    NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      REAL    NOT NULL,
            next_at         REAL    NOT NULL,           -- when a pending intent is due
            updated_at      REAL    NOT NULL,
            digest_id       INTEGER REFERENCES outbox(id),  -- the digest a held intent went out in
            failover_of     INTEGER REFERENCES outbox(id),  -- the intent this one stands in for
            provider_id     TEXT,                       -- e.g. Twilio's MessageSid
            provider_status TEXT,                       -- from status callbacks; never regresses
            last_error      TEXT
        );
        CREATE INDEX outbox_due ON outbox(next_at) WHERE state IN ('pending', 'sending');
        CREATE INDEX outbox_held ON outbox(channel, id) WHERE state = 'held';
        CREATE INDEX outbox_digest ON outbox(digest_id) WHERE digest_id IS NOT NULL;
        CREATE INDEX outbox_provider ON outbox(provider_id) WHERE provider_id IS NOT NULL;
        CREATE INDEX outbox_incident ON outbox(incident_id);
        CREATE TABLE outbox_attempts (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            outbox_id INTEGER NOT NULL REFERENCES outbox(id),
            ts        REAL    NOT NULL,
            outcome   TEXT    NOT NULL,   -- ok, retryable, permanent, ambiguous
            detail    TEXT    NOT NULL
        );
        CREATE INDEX outbox_attempts_row ON outbox_attempts(outbox_id, id);
        -- inbound webhooks already handled (e.g. I-Twilio-Idempotency-Token): replays are no-ops
        CREATE TABLE hook_replays (
            token TEXT PRIMARY KEY,
            ts    REAL NOT NULL
        );
        """,
    ),
    (
        9,
        """
        -- alerts pushed by Prometheus (POST /api/v2/alerts): the firing ones resolve when
        -- their endsAt passes without a refresh, also across a restart
        CREATE TABLE external_alerts (
            fingerprint   TEXT PRIMARY KEY,
            rule          TEXT NOT NULL,     -- the alertname label
            labels        TEXT NOT NULL,     -- JSON object
            annotations   TEXT NOT NULL,     -- JSON object
            level         INTEGER NOT NULL,  -- 1 minor, 2 major, 3 critical (from severity)
            starts_at     REAL NOT NULL,
            ends_at       REAL NOT NULL,
            generator_url TEXT NOT NULL,
            updated_at    REAL NOT NULL,
            state         TEXT NOT NULL      -- firing, resolved
        );
        CREATE INDEX external_alerts_firing ON external_alerts(ends_at) WHERE state = 'firing';
        """,
    ),
    (
        10,
        """
        -- what a held intent waits for: '' the channel's own limit, else the one recipient whose
        -- limit is used up (their digest goes to them alone; the others are not held)
        ALTER TABLE outbox ADD COLUMN held_for TEXT NOT NULL DEFAULT '';
        DROP INDEX outbox_held;
        CREATE INDEX outbox_held ON outbox(channel, held_for, id) WHERE state = 'held';
        """,
    ),
    (
        11,
        """
        -- one channel's due intents, oldest first: while a stalled channel has all the sends
        -- it may have in flight, the others are claimed past its backlog, not behind it
        CREATE INDEX outbox_channel_due ON outbox(channel, next_at)
            WHERE state IN ('pending', 'sending');
        """,
    ),
    (
        12,
        """
        -- an intent's rendered message and payload, written once: the outbox row, updated at
        -- each claim and outcome, stays narrow (bench/README.md). New rows leave
        -- outbox.message and outbox.payload empty; rows from before keep theirs (no DROP
        -- COLUMN: SQLite before 3.35 has none, and no table is rewritten at the upgrade)
        CREATE TABLE outbox_body (
            id      INTEGER PRIMARY KEY REFERENCES outbox(id),
            message TEXT    NOT NULL,
            payload TEXT    NOT NULL
        );
        """,
    ),
    (
        13,
        """
        -- when a member alert of a grouped incident resolved (the webhook's endsAt); NULL
        -- while it fires, and for members resolved before this column existed
        ALTER TABLE incident_alerts ADD COLUMN resolved_at REAL;
        """,
    ),
    (
        14,
        """
        -- when a resolved incident last fired again (reopen_within): its resolve target
        -- counts from then, not from when it first opened; NULL if it never reopened
        ALTER TABLE incidents ADD COLUMN reopened_at REAL;
        """,
    ),
    (
        15,
        """
        -- the furthest escalation step paged since the incident (re)opened: a lapsed
        -- acknowledgement starts escalation over at step 0, but the tiers paged before
        -- still hear of the resolve
        ALTER TABLE incidents ADD COLUMN paged_step INTEGER NOT NULL DEFAULT 0;
        UPDATE incidents SET paged_step = escalation_step WHERE escalation_step > 0;
        """,
    ),
    (
        16,
        """
        -- every team (or channel) paged about the incident since it (re)opened, comma-joined:
        -- its news reaches them all even after a level change moved it to another route,
        -- whose steps are not the ones paged. '' for incidents from before (paged_step then)
        ALTER TABLE incidents ADD COLUMN paged_targets TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        17,
        """
        -- a grouped incident's update (its route's group_interval): due when alerts joined or
        -- left it since its last page; NULL when none is waiting
        ALTER TABLE incidents ADD COLUMN group_update_at REAL;
        CREATE INDEX incidents_group_update ON incidents(group_update_at)
            WHERE group_update_at IS NOT NULL;
        """,
    ),
    (
        18,
        """
        -- who resolved an incident by hand (API, CLI, SMS, board); NULL when its source
        -- recovered, so a notification tells a closed-by-hand incident from a recovery
        ALTER TABLE incidents ADD COLUMN resolved_by TEXT;
        """,
    ),
)


class StateConnection(sqlite3.Connection):
    """A connection to the state database that also holds the writers' lock file.

    Two processes write the state (the daemon, its delivery worker; the CLI now and then).
    SQLite's own busy handler is not fair: a waiting writer sleeps 1, 2, 5 ... 100 ms between
    tries, so a process that writes back to back (the daemon taking a storm of alerts) can
    starve the other for seconds. Every ``write_transaction`` therefore first takes an
    exclusive ``flock`` on a file beside the database: the kernel wakes a waiter the moment
    the holder lets go. SQLite's lock (and ``busy_timeout``) still guard every write; past
    ``LOCK_WAIT`` a writer goes on without its turn (a frozen holder must not freeze us).
    ``turns`` counts the nested holders in this process: the lock goes at the last exit.
    ``on_turn``, if set, hears of each turn: the seconds it waited for the lock, and held it.
    """

    writer_lock: int | None = None
    turns: int = 0
    locked: bool = False  # this connection holds the flock now
    on_turn: Callable[[float, float], None] | None = None
    _waited: float = 0.0  # of the turn under way: how long it waited, and since when it holds
    _taken_at: float = 0.0
    # inside a ``write_transaction``: what ``after_commit`` was given, run once it commits
    _after_commit: list[Callable[[], None]] | None = None

    def close(self) -> None:
        if self.writer_lock is not None:
            os.close(self.writer_lock)
            self.writer_lock = None
        super().close()


LOCK_WAIT = 10.0  # seconds a writer waits for its turn (off the event loop, in a thread)
# seconds a write waits for SQLite's own lock. alertd's writers take turns by LOCK_WAIT's
# lock first, so this wait is for a program outside alertd (``sqlite3`` at a prompt), and it
# happens on the caller's thread: the event loop. Short, so such a lock costs the daemon a
# 503 or a cycle kept for the next try, not a loop frozen past systemd's watchdog.
BUSY_TIMEOUT = 2.0
START_LOCK_WAIT = 60.0  # seconds a starting daemon waits for another program's lock


def _flock_waiting(fd: int) -> Future[None]:
    """Wait for the flock in a thread: a daemon thread, so a wait given up on never holds
    up the process's exit (executor threads are joined at exit)."""
    done: Future[None] = Future()

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    _WAITERS.run(wait)
    return done


class _DaemonThreads:
    """Daemon threads kept for the next wait: starting one per wait (a storm waits a few
    hundred times a second) cost the delivery worker 6 % of its CPU in ``Thread.start``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` in an idle thread, or in a new one if all are busy (a wait given up
        on keeps its thread until the lock comes)."""
        with self._lock:
            jobs = self._idle.pop() if self._idle else None
        if jobs is None:
            jobs = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(jobs,), name="alertd-writer-lock", daemon=True
            ).start()
        jobs.put(job)

    def _serve(self, jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            job = jobs.get()
            try:
                job()
            except Exception:  # a bug, not a wait: the thread stays of use
                log.exception("writer lock: a wait failed")
            with self._lock:
                self._idle.append(jobs)


_WAITERS = _DaemonThreads()


def _try_lock(fd: int) -> bool:
    """Take the flock if it is free (or already this file description's)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _give_back_once_taken(waiting: Future[None], conn: StateConnection, fd: int) -> None:
    """A wait given up on may get the lock after all: then give it back, unless a turn of
    this connection holds it by then."""

    def taken(f: Future[None]) -> None:
        got_it = not f.cancelled() and f.exception() is None
        if got_it and conn.writer_lock == fd and conn.turns == 0:
            fcntl.flock(fd, fcntl.LOCK_UN)

    waiting.add_done_callback(taken)


@contextmanager
def writers_turn(conn: sqlite3.Connection) -> Iterator[None]:
    """Hold the writers' lock for one or more transactions (waiting at most ``LOCK_WAIT``)."""
    if not isinstance(conn, StateConnection) or conn.writer_lock is None:
        yield
        return
    if conn.turns == 0:
        start = time.monotonic()
        conn.locked = _take_waiting(conn, conn.writer_lock)
        _taken(conn, start)
    conn.turns += 1
    try:
        yield
    finally:
        _release(conn)


def _take_waiting(conn: StateConnection, fd: int) -> bool:
    if _try_lock(fd):
        return True
    # a thread waits, so the wait is bounded (flock has no timeout) and still woken at once
    waiting = _flock_waiting(fd)
    try:
        waiting.result(timeout=LOCK_WAIT)
    except FutureTimeout:
        _give_back_once_taken(waiting, conn, fd)
        log.warning(
            "another alertd process has held the state's writer lock for %gs; "
            "writing without waiting for it",
            LOCK_WAIT,
        )
        return False
    return True


@asynccontextmanager
async def writers_turn_async(conn: sqlite3.Connection) -> AsyncIterator[None]:
    """``writers_turn`` for an event loop: if another process holds the lock, wait for it in
    a thread, so the loop goes on (sends, answers) meanwhile."""
    if not isinstance(conn, StateConnection) or conn.writer_lock is None:
        yield
        return
    if conn.turns == 0:
        fd = conn.writer_lock
        start = time.monotonic()
        # checked again on the loop after each wait: a turn taken and ended on the loop
        # meanwhile (same file description) may have let the lock go again
        while not _try_lock(fd):
            await _flock_in_thread(conn, fd)
        conn.locked = True
        _taken(conn, start)
    conn.turns += 1
    try:
        yield
    finally:
        _release(conn)


async def _flock_in_thread(conn: StateConnection, fd: int) -> None:
    waiting = _flock_waiting(fd)
    try:
        await asyncio.shield(asyncio.wrap_future(waiting))
    except asyncio.CancelledError:
        _give_back_once_taken(waiting, conn, fd)  # the thread takes the lock all the same
        raise


def observe_write_turns(conn: sqlite3.Connection, on_turn: Callable[[float, float], None]) -> None:
    """Have ``on_turn`` hear of each of ``conn``'s turns with the writer lock: the seconds
    it waited for the lock, and held it (metrics)."""
    if isinstance(conn, StateConnection):
        conn.on_turn = on_turn


def _taken(conn: StateConnection, start: float) -> None:
    """A turn may write from now on (waiting for it started at ``start``)."""
    conn._taken_at = time.monotonic()
    conn._waited = conn._taken_at - start


def _release(conn: StateConnection) -> None:
    conn.turns -= 1
    if conn.turns:
        return
    if conn.locked and conn.writer_lock is not None:
        conn.locked = False
        fcntl.flock(conn.writer_lock, fcntl.LOCK_UN)
    if conn.on_turn is not None:
        conn.on_turn(conn._waited, time.monotonic() - conn._taken_at)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One atomic write on a connection in autocommit mode: BEGIN IMMEDIATE (take the write
    lock now, not at the first write) ... COMMIT, rolled back on any error, also a failed
    COMMIT (busy or I/O), so the transaction is never left open. Writers take turns
    (``StateConnection``)."""
    with writers_turn(conn):
        _begin(conn)
        pending: list[Callable[[], None]] = []
        if isinstance(conn, StateConnection):
            conn._after_commit = pending
        try:
            try:
                yield
            except BaseException:
                _roll_back(conn)
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise
        finally:
            if isinstance(conn, StateConnection):
                conn._after_commit = None
    for action in pending:  # committed
        action()


def after_commit(conn: sqlite3.Connection, action: Callable[[], None]) -> None:
    """Run ``action`` once the ``write_transaction`` under way on ``conn`` commits (at once if
    none is), never if it rolls back: a log line saying an incident opened must not be
    written for a write that then rolls back (a full disk logged the same "opened" every
    cycle)."""
    pending = conn._after_commit if isinstance(conn, StateConnection) else None
    if pending is None:
        action()
    else:
        pending.append(action)


def _begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE. With the writers' turn held, SQLite's lock is free unless a program
    outside alertd holds it (``sqlite3`` at a prompt): the time waiting for it here counts as
    waiting for the lock, not as holding it, so the metrics blame the right process."""
    began = time.monotonic()
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:  # also when it waited out busy_timeout and failed
        if isinstance(conn, StateConnection) and conn.turns:
            waited = time.monotonic() - began
            conn._waited += waited
            conn._taken_at += waited


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already: after a full disk or an I/O
    error it rolls back by itself, and a ROLLBACK then would fail with "no transaction is
    active", hiding the error that says what went wrong."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _open_writer_lock(state_dir: Path) -> int | None:
    try:
        return os.open(state_dir / WRITER_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError as exc:  # e.g. created by root's CLI: SQLite's own lock still guards
        log.warning("cannot use %s (%s): writers will not take turns", WRITER_LOCK_NAME, exc)
        return None


def connect(state_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) the state database in ``state_dir`` and migrate it."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            state_dir / DB_NAME,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,
            factory=StateConnection,
        )
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(_unusable(state_dir, exc)) from exc
    try:
        conn.writer_lock = _open_writer_lock(state_dir)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except (sqlite3.Error, StoreError, OSError) as exc:
        conn.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(_unusable(state_dir, exc)) from exc
    return conn


def require_writable(
    conn: sqlite3.Connection, state_dir: Path, locked_for: float = START_LOCK_WAIT
) -> None:
    """Raise ``StoreError`` now if this process cannot write the state database. SQLite opens
    a file it may not write read-only without a word, and a daemon started on one would take
    alerts and answer each with a 503, paging nobody. (A write rolled back: nothing stays.)
    A database another program holds locked is waited for, up to ``locked_for`` seconds:
    nothing is served yet, and a restart loop would not make it come sooner."""
    deadline = time.monotonic() + locked_for
    said = False
    while True:
        try:
            with contextlib.suppress(_RolledBack), write_transaction(conn):
                conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (-1, 0)")
                raise _RolledBack  # it could write: take it back
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise StoreError(_unusable(state_dir, exc, "cannot write: ")) from exc
            if not said:
                log.warning(
                    "state database %s is locked by another program; waiting up to %gs",
                    state_dir / DB_NAME,
                    locked_for,
                )
                said = True
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(_unusable(state_dir, exc, "cannot write: ")) from exc


class _RolledBack(Exception):
    """Ends a probe write with a rollback."""


def _unusable(state_dir: Path, exc: BaseException, doing: str = "") -> str:
    return f"state database {state_dir / DB_NAME}: {doing}{exc}{store_hint(exc)}"


def store_hint(exc: BaseException) -> str:
    """What to check, when SQLite's words for a problem with the state do not say so."""
    text = str(exc)
    if "readonly" in text or "unable to open" in text or isinstance(exc, PermissionError):
        return (
            f" (this process, uid {os.geteuid()}, must be able to write the directory and "
            "the files in it: check their owner and mode)"
        )
    if "disk is full" in text or "disk I/O error" in text:
        return " (check the free space of the file system the state directory is on)"
    if "locked" in text:
        return " (another program holds it locked: `fuser` on the file says which)"
    return ""


async def read_in_thread(conn: sqlite3.Connection, read: Callable[[sqlite3.Connection], T]) -> T:
    """Run a heavy ``read`` in a thread, on a read-only connection of its own to ``conn``'s
    file, so the event loop goes on meanwhile (a connection belongs to the thread that made
    it; in WAL mode the reader does not hold up the loop's writes)."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]

    def run() -> T:
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            return read(reader)
        finally:
            reader.close()

    return await asyncio.to_thread(run)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration not yet applied; return the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    latest = max(MIGRATIONS)[0]
    if done and max(done) > latest:
        raise StoreError(f"state database schema {max(done)} is newer than this alertd ({latest})")
    for version, sql in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-check inside the write lock: another process may have just migrated
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise
    return latest


def _statements(sql: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
