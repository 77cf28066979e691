"""One daemon per state directory.

Two daemons on one state database would each evaluate the rules, act on each escalation
deadline and page for it: a second start is refused instead, naming the first. The lock is
an ``flock`` on ``daemon.lock``, so it goes with its process, however that ends; the file
says which pid holds it.

The daemon also leaves its config directory in ``config-dir`` beside it: the CLI on the same
state directory reads that config by default, so a resolve by hand tells the people the
daemon paged, not those of whatever config is in the working directory (user test).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from alertd.errors import StoreError
from alertd.state.db import store_hint

DAEMON_LOCK_NAME = "daemon.lock"
CONFIG_DIR_NAME = "config-dir"


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


def record_config_dir(state_dir: Path, config_dir: Path) -> None:
    """Say which config the daemon on ``state_dir`` runs on (its absolute path)."""
    (state_dir / CONFIG_DIR_NAME).write_text(f"{config_dir.resolve()}\n", encoding="utf-8")


def recorded_config_dir(state_dir: Path) -> Path | None:
    """The config directory the last daemon on ``state_dir`` ran on, if it is still there."""
    try:
        text = (state_dir / CONFIG_DIR_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    path = Path(text)
    return path if text and path.is_dir() else None
