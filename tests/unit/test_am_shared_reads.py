"""Identical Alertmanager GETs share one computation, but never across a write or for more
than a second."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alertd.api import amv2
from alertd.state.db import connect


class Ops:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


async def test_concurrent_identical_reads_share_and_writes_invalidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connect(tmp_path)
    calls: list[str] = []

    async def fake_off_loop(ops: Any, work: Any) -> str:
        calls.append("x")
        await asyncio.sleep(0.01)
        return f"answer {len(calls)}"

    monkeypatch.setattr(amv2, "_off_loop", fake_off_loop)
    shared = amv2._SharedReads(Ops(conn))  # type: ignore[arg-type]
    key = ("alerts", "filter=a")
    first = await asyncio.gather(*(shared.get(key, lambda r: "") for _ in range(5)))
    assert first == ["answer 1"] * 5
    assert len(calls) == 1
    assert await shared.get(("alerts", "other"), lambda r: "") == "answer 2"  # another query
    conn.execute("INSERT INTO hook_replays (token, ts) VALUES ('t', 0)")  # a write
    assert await shared.get(key, lambda r: "") == "answer 3"
    monkeypatch.setattr(amv2, "SHARE_FOR", 0.0)  # and never older than SHARE_FOR
    assert await shared.get(key, lambda r: "") == "answer 4"
    conn.close()
