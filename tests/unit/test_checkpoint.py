"""WAL checkpoints run in the Checkpointer's thread, not in the commits."""

import time
from pathlib import Path

from alertd.state.checkpoint import AUTOCHECKPOINT_PAGES, Checkpointer
from alertd.state.db import DB_NAME, connect, write_transaction


def write_rows(conn, count: int) -> None:  # type: ignore[no-untyped-def]
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO hook_replays (token, ts) VALUES (?, ?)",
            [(f"{i:06d}" + "x" * 500, float(i)) for i in range(count)],
        )


def test_state_connections_checkpoint_only_past_the_safety_net(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
        write_rows(conn, 2000)  # ~1 MiB: SQLite's default would not have checkpointed either
        busy, frames, copied = Checkpointer(tmp_path / DB_NAME).checkpoint(conn)
        assert busy == 0
        assert frames > 0
        assert copied == frames  # nobody reads an older snapshot: all of it went back
    finally:
        conn.close()


def test_the_thread_copies_what_commits_left_into_the_file_and_stops(tmp_path: Path) -> None:
    conn = connect(tmp_path)
    db_file = tmp_path / DB_NAME
    checkpointer = Checkpointer(db_file, every=0.02)
    try:
        write_rows(conn, 2000)
        left_in_wal = db_file.stat().st_size
        assert left_in_wal < 500_000  # the commit did not checkpoint: the rows are in the WAL
        checkpointer.start()
        deadline = time.monotonic() + 10.0
        while checkpointer.checkpoints < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpointer.checkpoints >= 1
        assert db_file.stat().st_size > left_in_wal + 1_000_000  # now in the database file
    finally:
        checkpointer.stop()
        conn.close()
    assert checkpointer._thread is not None
    assert not checkpointer._thread.is_alive()
