#!/usr/bin/env python3
"""The pipeline's two halves in one process each, without HTTP intake: CPU per alert.

``bench_pipeline.py`` measures the whole thing against Alertmanager; on 2 shared cores its
total time is bound by the CPU all processes use together. This script measures the two
stages that spend alertd's share, one at a time, so a change to either shows in figures
that a busy machine moves much less:

* **ingest**: ``Inbound.receive_alerts`` (what ``POST /api/v2/alerts`` runs once the body is
  parsed) for N distinct alerts in batches of ``--batch``: external alert upsert, incident
  open, priority, routing, escalation deadlines, timeline, outbox intents, all committed
  to a fresh SQLite state file. Bodies are parsed before the clock starts.
* **delivery**: ``Delivery`` (what the delivery worker process runs) driving those N intents
  to ``bench/webhook_sink.py`` (a process of its own, so its CPU is not counted) through the
  real ``webhook`` channel: claim, send over kept-alive connections, record outcomes and
  timeline lines, until the outbox has nothing pending. On the worker's event loop (uvloop;
  ``ALERTD_EVENT_LOOP=asyncio`` for asyncio's).

Each stage reports CPU µs per alert (``time.process_time``: this process, all threads) and
wall seconds; medians over ``--runs``. ``--profile`` prints the top functions of one more
run of each stage.

    RESULT stages stage=ingest n=... cpu_us_per_alert=... wall_s=...
    RESULT stages stage=delivery n=... cpu_us_per_alert=... wall_s=... delivered=...

Usage: .venv/bin/python bench/bench_stages.py [--n 10000] [--runs 3] [--batch 64] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import Sink, alert
from benchlib import median, result, table
from prometheus_client import CollectorRegistry

from alertd import event_loop
from alertd.clock import SystemClock
from alertd.config.load import Config, load_config
from alertd.inbound import Inbound
from alertd.incidents.manager import IncidentManager
from alertd.ingest.alertmanager import IngestLimits, PostedAlert, parse_postable_alerts
from alertd.metrics import Metrics
from alertd.notify.configure import Links, configure
from alertd.notify.delivery import Delivery
from alertd.notify.outbox import Intent, OutboxStore
from alertd.notify.registry import build_notifiers
from alertd.state.db import connect
from alertd.state.incidents import IncidentStore

DRAIN_TIMEOUT = 120.0  # seconds one delivery run may take, at most


class NoDelivery:
    """The ingest stage alone: nobody is woken."""

    def wake(self) -> None:
        pass

    def fail_over(self, intent: Intent, recipients: tuple[str, ...], why: str, now: float) -> int:
        return 0


def config_dir(root: Path, hook_url: str) -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "thresholds.yaml").write_text("evaluation_interval: 1s\nrules: []\n")
    (config / "channels.yaml").write_text(
        f"channels:\n  hook:\n    type: webhook\n    url: {hook_url}\nroutes:\n  - notify: [hook]\n"
    )
    return config


def bodies(n: int, batch: int, tag: str) -> list[list[PostedAlert]]:
    """The alerts of each POST, parsed as the HTTP handler parses them."""
    limits = IngestLimits()
    out = []
    for start in range(0, n, batch):
        names = [f"{tag}-host{i:06d}" for i in range(start, min(n, start + batch))]
        body = json.dumps([alert(x) for x in names]).encode()
        parsed, errors = parse_postable_alerts(body, time.time(), limits, 300.0)
        if errors:
            raise RuntimeError(f"bench alerts refused: {errors[:3]}")
        out.append(parsed)
    return out


Profile = cProfile.Profile | None


def ingest(config: Config, state: Path, batches: list[list[PostedAlert]], prof: Profile) -> float:
    """Commit every batch; return the CPU seconds it took."""
    conn = connect(state)
    try:
        manager = IncidentManager(IncidentStore(conn), config.channels)
        outbox = OutboxStore(conn, prepare=Links(config, SystemClock()))
        inbound = Inbound(
            manager,
            outbox,
            NoDelivery(),
            lambda: config,
            time.time,
            lambda events: None,
            None,  # type: ignore[arg-type]  # no reloads here
        )
        t0 = time.process_time()
        if prof:
            prof.enable()
        for parsed in batches:
            inbound.receive_alerts(parsed)
        if prof:
            prof.disable()
        return time.process_time() - t0
    finally:
        conn.close()


async def drive(config: Config, state: Path, prof: Profile) -> tuple[float, float, dict[str, int]]:
    """Deliver everything pending; return CPU seconds, wall seconds and the outbox's counts."""
    conn = connect(state)
    clock = SystemClock()
    notifiers = build_notifiers(config.channels)
    delivery = Delivery(
        OutboxStore(conn, prepare=Links(config, clock)), {}, Metrics(CollectorRegistry()), clock
    )
    configure(delivery, config, notifiers)
    try:
        t0, w0 = time.process_time(), time.monotonic()
        if prof:
            prof.enable()
        task = asyncio.create_task(delivery.run())
        deadline = w0 + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            if not unfinished(conn):
                break
        cpu, wall = time.process_time() - t0, time.monotonic() - w0
        if prof:
            prof.disable()
        await delivery.stop(5.0)
        await task
        return cpu, wall, delivery.store.counts()
    finally:
        for notifier in notifiers.values():
            await notifier.close()
        conn.close()


def unfinished(conn: sqlite3.Connection) -> bool:
    """Anything pending or sending? (the partial index outbox_due: cheap to ask often)"""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending') LIMIT 1"
    ).fetchone()
    return row is not None


def one_run(
    root: Path,
    sink: Sink,
    n: int,
    batch: int,
    tag: str,
    profiles: dict[str, cProfile.Profile] | None,
) -> dict[str, float]:
    """Ingest N alerts into a fresh state file, then deliver them all; return the figures."""
    sink.reset()
    config = load_config(config_dir(root, sink.url))
    batches = bodies(n, batch, tag)
    state = root / "state"
    w0 = time.monotonic()
    ingest_cpu = ingest(config, state, batches, profiles["ingest"] if profiles else None)
    ingest_wall = time.monotonic() - w0
    profile = profiles["delivery"] if profiles else None
    cpu, wall, counts = event_loop.run(drive(config, state, profile))  # the worker's loop
    arrived = sink.wait(n, timeout=30.0)
    return {
        "ingest_cpu_us": ingest_cpu / n * 1e6,
        "ingest_wall_s": ingest_wall,
        "delivery_cpu_us": cpu / n * 1e6,
        "delivery_wall_s": wall,
        "delivered": float(counts.get("delivered", 0)),
        "arrived": float(arrived),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--profile", action="store_true", help="one more run of each under cProfile")
    ap.add_argument("--sort", default="tottime", help="profile order: tottime, cumulative")
    ap.add_argument("--top", type=int, default=30, help="profile lines")
    a = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="alertd-stages-"))
    sink = Sink(scratch)
    try:
        runs = []
        for r in range(a.runs):
            root = scratch / f"run{r}"
            figures = one_run(root, sink, a.n, a.batch, f"r{r}", None)
            print(
                f"# run {r + 1}/{a.runs}: ingest {figures['ingest_cpu_us']:.1f} µs/alert, "
                f"delivery {figures['delivery_cpu_us']:.1f} µs/alert "
                f"({figures['delivered']:.0f} delivered, {figures['arrived']:.0f} arrived)",
                flush=True,
            )
            runs.append(figures)
            shutil.rmtree(root)
        med = {k: median([f[k] for f in runs]) for k in runs[0]}
        for stage in ("ingest", "delivery"):
            result(
                "stages",
                stage=stage,
                n=a.n,
                cpu_us_per_alert=med[f"{stage}_cpu_us"],
                wall_s=med[f"{stage}_wall_s"],
                delivered=med["delivered"],
            )
        print()
        table(
            ["stage", "N", "CPU µs/alert", "wall s"],
            [
                [stage, a.n, round(med[f"{stage}_cpu_us"], 1), round(med[f"{stage}_wall_s"], 3)]
                for stage in ("ingest", "delivery")
            ],
        )
        if a.profile:
            profiles = {"ingest": cProfile.Profile(), "delivery": cProfile.Profile()}
            one_run(scratch / "profiled", sink, a.n, a.batch, "prof", profiles)
            for stage, prof in profiles.items():
                print(f"\n# {stage}, by {a.sort}")
                stats = pstats.Stats(prof, stream=sys.stdout)
                stats.sort_stats(a.sort).print_stats(a.top)
        failed = any(f["delivered"] < a.n or f["arrived"] < a.n for f in runs)
        return 1 if failed else 0
    finally:
        sink.child.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
