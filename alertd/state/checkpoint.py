"""WAL checkpoints off the request path.

In WAL mode every commit appends pages to ``alertd.sqlite3-wal``; a checkpoint copies them
back into the database file (and fsyncs it). By default the connection whose commit takes the
WAL past 1,000 pages (4 MiB) runs the checkpoint inside that commit, so a storm paid for it
in the middle of answering a POST or recording a send, several times per 10,000 alerts.

Here a thread with a connection of its own runs a PASSIVE checkpoint (it never waits for and
never blocks a writer or a reader) once a second, and the state connections only checkpoint
themselves past ``AUTOCHECKPOINT_PAGES`` (40 MiB), a safety net for when no daemon runs this
thread (the CLI alone) or it falls behind. sqlite3 releases the GIL while it copies.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

AUTOCHECKPOINT_PAGES = 10_000  # set on every state connection (SQLite's default is 1,000)
EVERY = 1.0  # seconds between checkpoints


class Checkpointer:
    """A daemon thread checkpointing one state database every ``every`` seconds."""

    def __init__(self, db_path: Path, every: float = EVERY) -> None:
        self.db_path = db_path
        self.every = every
        self.checkpoints = 0  # completed, for tests and curiosity
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any (bounded: it is passive)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """Run one passive checkpoint: (busy, WAL frames, frames copied)."""
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(busy), int(frames), int(copied)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.db_path, timeout=1.0, check_same_thread=False)
        except sqlite3.Error as exc:  # the state connections' own checkpoints still run
            log.warning("WAL checkpoints stay in the commits: %s", exc)
            return
        try:
            while not self._stop.wait(self.every):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # e.g. the disk is full: try again later
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
