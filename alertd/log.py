"""Logging set-up: timestamps on a terminal, none under systemd (journald adds its own)."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys


def setup_logging(level: str = "INFO") -> None:
    under_journal = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journal:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_failure(logger: logging.Logger, message: str, exc: BaseException) -> None:
    """Log ``message`` for work that failed with ``exc``: in one line when the state
    database refused (locked by another program, a full disk: no bug, and a traceback each
    cycle buries the log), with the traceback otherwise."""
    if isinstance(exc, sqlite3.OperationalError):
        logger.error("%s: the state database refused: %s", message, exc)
    else:
        logger.error("%s", message, exc_info=exc)
