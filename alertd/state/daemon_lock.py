"""One daemon per state directory.

Two daemons on one state database would each evaluate the rules, act on each escalation
deadline and page for it: a second start is refused instead, naming the first. The lock is
an ``flock`` on ``daemon.lock``, so it goes with its process, however that ends; the file
says which pid holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from alertd.errors import StoreError
from alertd.state.db import store_hint

DAEMON_LOCK_NAME = "daemon.lock"


def take_daemon_lock(state_dir: Path) -> IO[bytes]:
    """Hold the state directory's daemon lock for as long as the returned file stays open;
    raise ``StoreError`` if another process holds it, or it cannot be taken."""
    path = state_dir / DAEMON_LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        lock = path.open("a+b")
    except OSError as exc:
        raise StoreError(f"state directory {state_dir}: {exc}{store_hint(exc)}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read(32).decode(errors="replace").strip() or "unknown"
        lock.close()
        raise StoreError(
            f"another alertd (pid {holder}) runs on the state directory {state_dir}: stop it "
            "first, or give this one a --state-dir of its own"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n".encode())
    lock.flush()
    return lock
