#!/usr/bin/env python3
"""The daemon's KPI refresh (once a minute) over a month of incidents: CPU per refresh.

Writes ``--n`` incidents spread over the 30-day window into a fresh SQLite state file (80 %
acknowledged, those opened over 2 h ago resolved, 2-4 timeline lines each), then times what
``App._refresh_kpis`` runs: reading the facts and computing the KPIs. Three ways to read:

* ``full``: ``incident_facts``, every incident in the window (the CLI's ``alertd report``);
* ``cached first``: ``FactsCache.facts`` the first time (it reads everything too);
* ``cached again``: the next refreshes, which read only the open and recently resolved ones.

Medians of ``--runs`` (CPU seconds, ``time.process_time``):

    RESULT kpi n=... read=full facts_s=... compute_s=...

Usage: .venv/bin/python bench/bench_kpi.py [--n 10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from benchlib import median, result, table

from alertd.config.channels import ChannelsFile
from alertd.config.load import load_config
from alertd.incidents.kpi import IncidentFacts, compute_kpis
from alertd.incidents.kpi_facts import FactsCache, incident_facts
from alertd.state.db import connect

REPO = Path(__file__).resolve().parent.parent
WINDOW = 30 * 86400.0
SETTLE = 2 * 3600.0 + 600.0  # 2 x max_age (1 h) + 10 min, as the daemon sets it


def write_month(conn: sqlite3.Connection, n: int, now: float) -> None:
    """``n`` incidents opened evenly over the window before ``now``, with their timelines."""
    rng = random.Random(1)
    since = now - WINDOW
    incidents, timeline = [], []
    for i in range(1, n + 1):
        opened = since + i / n * WINDOW
        acked = opened + rng.uniform(30, 900) if rng.random() < 0.8 else None
        resolved = opened + rng.uniform(600, 7200) if opened + 7200 < now else None
        state = "resolved" if resolved else ("acknowledged" if acked else "open")
        labels = f'[["instance","h{i % 500}"],["job","node"]]'
        incidents.append(
            (i, f"{i:016x}", f"rule{i % 50}", "cpu", labels, 2, "P2", state, "cpu high", 95.0,
             opened, opened, acked, "alice" if acked else None, resolved)
        )  # fmt: skip
        timeline.append((i, opened, "notification", "hook", "opened via hook: sent"))
        if acked:
            timeline.append((i, acked, "acknowledged", "alice", "acknowledged via cli: ok"))
        if resolved:
            timeline.append((i, resolved, "resolved", "alertd", "back to normal"))
            timeline.append((i, resolved, "notification", "hook", "resolved via hook: sent"))
    with conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO incidents (id, fingerprint, rule, metric, labels, level, priority, "
            "state, summary, value, opened_at, updated_at, acknowledged_at, acknowledged_by, "
            "resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            incidents,
        )
        conn.executemany(
            "INSERT INTO timeline (incident_id, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            timeline,
        )


def read_facts(
    way: str, conn: sqlite3.Connection, since: float, now: float, channels: ChannelsFile
) -> tuple[float, list[IncidentFacts]]:
    """Read the facts one ``way``; return the CPU seconds it took, and the facts."""
    cache = FactsCache(settle=SETTLE)
    if way == "cached again":
        cache.facts(conn, since, channels, now)  # the refresh a minute before
    t0 = time.process_time()
    if way == "full":
        facts = incident_facts(conn, since, channels)
    else:
        facts = cache.facts(conn, since, channels, now)
    return time.process_time() - t0, facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", default="10000,100000", help="incidents in the window, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    channels = load_config(REPO).channels  # the repo's example config: its routes and teams
    rows = []
    for n in (int(x) for x in a.n.split(",")):
        with tempfile.TemporaryDirectory(prefix="alertd-kpi-") as scratch:
            conn = connect(Path(scratch))
            now = time.time()
            since = now - WINDOW
            write_month(conn, n, now)
            for way in ("full", "cached first", "cached again"):
                facts_s, compute_s = [], []
                for _ in range(a.runs):
                    cpu, facts = read_facts(way, conn, since, now, channels)
                    if len(facts) != n:
                        print(f"# {way}: {len(facts)} facts, expected {n}", file=sys.stderr)
                        return 1
                    t0 = time.process_time()
                    compute_kpis(facts, channels.priorities.targets, since, now)
                    facts_s.append(cpu)
                    compute_s.append(time.process_time() - t0)
                f, c = median(facts_s), median(compute_s)
                result("kpi", n=n, read=way, facts_s=round(f, 4), compute_s=round(c, 4))
                rows.append((n, way, round(f, 3), round(c, 3), round(f + c, 3)))
            conn.close()
    print()
    table(["incidents", "read", "facts s", "compute s", "refresh s"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
