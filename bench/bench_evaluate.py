#!/usr/bin/env python3
"""Cost of the threshold evaluator at scale: N series, 50 rules with overrides.

Builds 50 ``above`` rules (``for: 2m``, ``clear: 5``, three overrides each: one
``{instance: ...}``, one ``{role: batch}``, one ``{site: ..., role: db}``) over 50 metrics and
N series spread evenly over them (labels instance, site, role, criticality, device). About 2 %
of the series are "active": they breach on a schedule (steady breaches that fire and later
escalate, short breaches that stay pending, values oscillating at the threshold that only
hysteresis keeps firing, with an occasional dip that resolves them). The rest stay normal.

Measured, in ms (median and p95):

  first_evaluate   a fresh Evaluator's first ``evaluate`` after ingesting N samples
                   (binds every series to its rule, resolves overrides, fingerprints)
  steady_evaluate  ``evaluate(now)`` per cycle, now += 15 s, after the active ~2 % got new
                   samples via ``ingest``; ``for`` and hysteresis state in play
  delta_ingest     that per-cycle ``ingest`` of the ~2 % new samples
  ingest_full      ``ingest`` of N pre-built samples into an evaluator that knows them
                   (one collector round)
  ingest_first     ``ingest`` of N samples into a fresh evaluator (creates the series)
  sample_build     constructing N ``Sample`` objects (labels pre-built)
  persist_changes  writing each steady cycle's ``take_changes()`` to a scratch SQLite state
                   database with ``save_rule_state`` in one transaction, as the daemon does
  gc_full_collect  one full ``gc.collect()`` with the evaluator and a batch of N samples alive
                   (a generation-2 pass, which allocation-heavy ingest rounds trigger now
                   and then)
  baseline_loop    ``for v in values: if v > t: ...`` over N floats: the floor
  baseline_chased  the same comparison through two objects (holder.series.value > trigger),
                   the shape of the evaluator's per-series loop

Goal: steady_evaluate of 100k series <= 50 ms on a 2-core machine. Above it, a cProfile of
extra cycles is printed (``--profile`` forces it).

Usage: .venv/bin/python bench/bench_evaluate.py [--series 10000,100000] [--rules 50]
       [--cycles 20] [--warmup 8]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import pstats
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from benchlib import median, pct, result, table

from alertd.config.load import RuleSource
from alertd.config.thresholds import Rule
from alertd.evaluate.evaluator import Evaluator
from alertd.evaluate.thresholds import Thresholds, resolve
from alertd.model import Labels, Sample, StateRecord, make_labels
from alertd.state.db import connect
from alertd.state.rule_state import save_rule_state

T = TypeVar("T")
STEP = 15.0  # seconds between evaluation cycles (the default evaluation_interval)
T0 = 1_800_000_000.0
GOAL_MS = 50.0
DEVICES_PER_HOST = 4
SITES = ("site-a", "site-b", "site-c", "site-d", "site-e")
ROLES = ("web", "db", "batch", "cache", "web", "app")
CRITICALITIES = ("high", "medium", "low")
ACTIVE_EVERY = 50  # 1 in 50 series is active: 2 %


def metric_name(m: int) -> str:
    return f"bench_metric_{m:02d}"


def host_name(h: int) -> str:
    return f"host{h:05d}"


def build_rules(n_rules: int, n_hosts: int) -> list[RuleSource]:
    rules = []
    for m in range(n_rules):
        rule = Rule.model_validate(
            {
                "metric": metric_name(m),
                "above": {"critical": 95, "major": 85, "minor": 75},
                "for": "2m",
                "clear": 5,
                "summary": "{{ labels.device }} at {{ value | round(1) }} on {{ labels.instance }}",
                "overrides": [
                    {
                        "match": {"instance": host_name((m * 7) % n_hosts)},
                        "above": {"critical": 99, "major": 97, "minor": 90},
                    },
                    {
                        "match": {"role": "batch"},
                        "above": {"critical": 98, "major": 92},
                        "for": "5m",
                    },
                    {"match": {"site": "site-b", "role": "db"}, "for": "1m", "clear": 2},
                ],
            }
        )
        rules.append(RuleSource(rule, "bench"))
    return rules


@dataclass(slots=True)
class Spec:
    """One series: what it is and how its value moves."""

    metric: str
    labels: Labels
    th: Thresholds
    normal: float
    kind: str  # "normal", "fire", "pending", "boundary"
    phase: int  # cycle at which an active series starts breaching


def build_specs(n_series: int, rules: list[RuleSource], span: int) -> list[Spec]:
    n_rules = len(rules)
    per_metric = max(1, n_series // n_rules)
    n_hosts = max(1, math.ceil(per_metric / DEVICES_PER_HOST))
    host_labels = [
        {
            "instance": host_name(h),
            "site": SITES[h % len(SITES)],
            "role": ROLES[(h // len(SITES)) % len(ROLES)],
            "criticality": CRITICALITIES[h % len(CRITICALITIES)],
        }
        for h in range(n_hosts)
    ]
    specs: list[Spec] = []
    k = 0  # index among active series
    for i in range(n_series):
        m, j = i % n_rules, i // n_rules
        host = j // DEVICES_PER_HOST
        label_map = dict(host_labels[host % n_hosts])
        label_map["device"] = f"dev{j % DEVICES_PER_HOST}"
        lm = make_labels(label_map)
        th = resolve(rules[m].rule, label_map)
        assert th is not None
        normal = th.trigger - 40 + (i % 20)
        kind, phase = "normal", 0
        if i % ACTIVE_EVERY == 7:
            kind = (
                ("fire", "fire", "fire", "pending", "pending", "pending")[k % 10]
                if k % 10 < 6
                else "boundary"
            )
            phase = (k * 7919) % span
            k += 1
        specs.append(Spec(metric_name(m), lm, th, normal, kind, phase))
    return specs


def value_at(s: Spec, cycle: int) -> float:
    """The value series ``s`` reports at evaluation cycle ``cycle`` (0 = first evaluate)."""
    if s.kind == "normal" or cycle < s.phase:
        return s.normal
    th, c = s.th, cycle - s.phase
    trigger, worst = th.trigger, th.levels[0][1]
    for_cycles = math.ceil(th.for_ / STEP)
    if s.kind == "fire":  # steady breach: fires after `for`, escalates to the worst level later
        return worst + 1 if c >= for_cycles + 4 else trigger + 3
    if s.kind == "pending":  # breaches 3 cycles (45 s < for), then drops back: always pending
        return trigger - th.clear - 1 if c % 4 == 3 else trigger + 1
    # boundary: breach until it fires, then hover at the threshold (at, just above, inside the
    # clear margin) where only hysteresis holds it; one dip past the margin resolves it.
    period = for_cycles + 1 + 8 + 1
    c %= period
    if c <= for_cycles:
        return trigger + 1
    c -= for_cycles + 1
    if c < 8:
        return (trigger, trigger - th.clear / 2, trigger + 0.5, trigger - th.clear / 2)[c % 4]
    return trigger - th.clear - 1


class _Box:
    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


class _Holder:
    __slots__ = ("series", "trigger")

    def __init__(self, series: _Box, trigger: float) -> None:
        self.series = series
        self.trigger = trigger


def persist(conn: sqlite3.Connection, changes: dict[str, StateRecord | None]) -> None:
    """Write one cycle's state changes the way the daemon does (one IMMEDIATE transaction)."""
    if not changes:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        save_rule_state(conn, changes)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1e3, out


def bench_one(
    n_series: int, n_rules: int, cycles: int, warmup: int, reps: int, profile: bool
) -> bool:
    """Run every measurement for one N; return whether steady evaluate met the goal."""
    span = warmup + cycles
    t_setup = time.perf_counter()
    rules = build_rules(n_rules, max(1, math.ceil(n_series / n_rules / DEVICES_PER_HOST)))
    specs = build_specs(n_series, rules, span)
    active = [s for s in specs if s.kind != "normal"]
    kinds = Counter(s.kind for s in active)
    setup_s = time.perf_counter() - t_setup
    print(
        f"## N={n_series} series, {n_rules} rules, {len(active)} active "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); setup {setup_s:.1f} s",
        flush=True,
    )

    # (d) Sample construction of N samples
    samples: list[Sample] = []
    pairs = [(s.metric, s.labels, value_at(s, 0)) for s in specs]
    build_ms = []
    for _ in range(reps):
        ms, samples = timed(lambda: [Sample(m, lb, v, T0) for m, lb, v in pairs])
        build_ms.append(ms)

    # (a) first evaluate (and first ingest) on fresh evaluators
    first_ms, ingest_first_ms = [], []
    first_events = 0
    for _ in range(reps):
        ev = Evaluator(rules)
        ms, _ = timed(partial(ev.ingest, samples))
        ingest_first_ms.append(ms)
        ms, first_out = timed(partial(ev.evaluate, T0))
        first_ms.append(ms)
        first_events = len(first_out)
        ev.take_changes()
    del ev
    first_profile: cProfile.Profile | None = None
    if profile:
        fresh = Evaluator(rules)
        fresh.ingest(samples)
        first_profile = cProfile.Profile()
        first_profile.enable()
        fresh.evaluate(T0)
        first_profile.disable()
        del fresh

    # fresh evaluator for the steady run
    evaluator = Evaluator(rules)
    evaluator.ingest(samples)
    evaluator.evaluate(T0)
    evaluator.take_changes()

    # (c) full-batch ingest into an evaluator that already knows every series
    ingest_full_ms = []
    for _ in range(reps):
        ms, _ = timed(lambda: evaluator.ingest(samples))
        ingest_full_ms.append(ms)

    # (b) steady-state cycles; (e) persisting each cycle's state changes as the daemon does
    steady_ms: list[float] = []
    delta_ms: list[float] = []
    persist_ms: list[float] = []
    events_per_cycle: list[int] = []
    changes_per_cycle: list[int] = []
    kinds_seen: Counter[str] = Counter()
    gen2_in_evaluate = 0
    with tempfile.TemporaryDirectory(prefix="alertd-bench-") as tmp:
        conn = connect(Path(tmp))
        try:
            for cycle in range(1, span + 1):
                now = T0 + cycle * STEP
                delta = [Sample(s.metric, s.labels, value_at(s, cycle), now) for s in active]
                ms_i, _ = timed(partial(evaluator.ingest, delta))
                gen2 = gc.get_stats()[2]["collections"]
                ms_e, events = timed(partial(evaluator.evaluate, now))
                gen2 = gc.get_stats()[2]["collections"] - gen2
                changes = evaluator.take_changes()
                ms_p, _ = timed(partial(persist, conn, changes))
                if cycle > warmup:
                    steady_ms.append(ms_e)
                    gen2_in_evaluate += gen2
                    delta_ms.append(ms_i)
                    persist_ms.append(ms_p)
                    events_per_cycle.append(len(events))
                    changes_per_cycle.append(len(changes))
                    kinds_seen.update(e.kind.value for e in events)
        finally:
            conn.close()
    states_at_end = len(evaluator.export_state())  # pending or firing
    firing_at_end = sum(1 for r in evaluator.export_state() if r.firing is not None)

    # baseline: a bare comparison loop over N latest values, same run
    values = [v for _, _, v in pairs]
    threshold = 75.0

    def bare() -> int:
        n = 0
        for v in values:
            if v > threshold:
                n += 1
        return n

    base_ms = [timed(bare)[0] for _ in range(max(reps, 11))]

    # the same comparison reached the way the evaluator reaches it: object -> series -> value
    holders = [_Holder(_Box(v), threshold) for v in values]

    def chased() -> int:
        n = 0
        for h in holders:
            if h.series.value > h.trigger:
                n += 1
        return n

    chased_ms = [timed(chased)[0] for _ in range(max(reps, 11))]

    # a full (generation 2) garbage collection with the evaluator and one batch of N samples
    # alive (the bench's own copies dropped): what a cycle pays whenever the collector's
    # thresholds trip during an ingest or evaluate
    for big in (pairs, values, holders, specs):
        big.clear()
    gc_ms = [timed(gc.collect)[0] for _ in range(3)]
    tracked = len(gc.get_objects())

    steady_p50 = median(steady_ms)
    ok = steady_p50 <= GOAL_MS
    print(
        f"events per measured cycle: {events_per_cycle} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kinds_seen.items()))}); "
        f"{states_at_end} live states at the end, {firing_at_end} firing",
        flush=True,
    )
    rows = [
        ("first_evaluate", median(first_ms), pct(first_ms, 95), len(first_ms)),
        ("steady_evaluate", steady_p50, pct(steady_ms, 95), len(steady_ms)),
        ("delta_ingest (~2%)", median(delta_ms), pct(delta_ms, 95), len(delta_ms)),
        ("ingest_full", median(ingest_full_ms), pct(ingest_full_ms, 95), len(ingest_full_ms)),
        ("ingest_first", median(ingest_first_ms), pct(ingest_first_ms, 95), len(ingest_first_ms)),
        ("sample_build", median(build_ms), pct(build_ms, 95), len(build_ms)),
        ("persist_changes", median(persist_ms), pct(persist_ms, 95), len(persist_ms)),
        ("gc_full_collect", median(gc_ms), pct(gc_ms, 95), len(gc_ms)),
        ("baseline_loop", median(base_ms), pct(base_ms, 95), len(base_ms)),
        ("baseline_chased", median(chased_ms), pct(chased_ms, 95), len(chased_ms)),
    ]
    table(
        ["N=" + str(n_series), "median ms", "p95 ms", "ns/series", "runs"],
        [(name, p50, p95, p50 * 1e6 / n_series, runs) for name, p50, p95, runs in rows],
    )
    common = {"series": n_series, "rules": n_rules}
    result(
        "evaluate_first",
        **common,
        p50_ms=median(first_ms),
        p95_ms=pct(first_ms, 95),
        events=first_events,
    )
    result(
        "evaluate_steady",
        **common,
        p50_ms=steady_p50,
        p95_ms=pct(steady_ms, 95),
        max_ms=max(steady_ms),
        cycles=len(steady_ms),
        gc_gen2_during=gen2_in_evaluate,
        events_total=sum(events_per_cycle),
        events_max=max(events_per_cycle, default=0),
        cycles_with_events=sum(1 for e in events_per_cycle if e),
        live_states=states_at_end,
        firing=firing_at_end,
        goal_ms=GOAL_MS,
        meets_goal="yes" if ok else "no",
    )
    result(
        "ingest_delta",
        **common,
        samples=len(active),
        p50_ms=median(delta_ms),
        p95_ms=pct(delta_ms, 95),
    )
    result("ingest_full", **common, p50_ms=median(ingest_full_ms), p95_ms=pct(ingest_full_ms, 95))
    result(
        "ingest_first", **common, p50_ms=median(ingest_first_ms), p95_ms=pct(ingest_first_ms, 95)
    )
    result("sample_build", series=n_series, p50_ms=median(build_ms), p95_ms=pct(build_ms, 95))
    result(
        "persist_changes",
        **common,
        p50_ms=median(persist_ms),
        p95_ms=pct(persist_ms, 95),
        changes_p50=median(changes_per_cycle),
        events_p50=median(events_per_cycle),
    )
    result("gc_full_collect", series=n_series, p50_ms=median(gc_ms), tracked_objects=tracked)
    result("baseline_loop", series=n_series, p50_ms=median(base_ms), p95_ms=pct(base_ms, 95))
    result("baseline_chased", series=n_series, p50_ms=median(chased_ms), p95_ms=pct(chased_ms, 95))
    if not ok:
        print(
            f"!! steady-state evaluate of {n_series} series takes {steady_p50:.1f} ms (median), "
            f"above the {GOAL_MS:.0f} ms goal ({steady_p50 / median(base_ms):.1f}x the bare loop)",
            flush=True,
        )
    if profile or not ok:
        profile_cycles(evaluator, active, span, n_series)
    if first_profile is not None:
        print_profile(first_profile, f"cProfile of the first evaluate, N={n_series}")
    return ok


def profile_cycles(evaluator: Evaluator, active: list[Spec], start: int, n_series: int) -> None:
    """cProfile a few more steady cycles and print where the time goes."""
    prof = cProfile.Profile()
    n = 5
    for cycle in range(start + 1, start + 1 + n):
        now = T0 + cycle * STEP
        evaluator.ingest([Sample(s.metric, s.labels, value_at(s, cycle), now) for s in active])
        prof.enable()
        evaluator.evaluate(now)
        prof.disable()
        evaluator.take_changes()
    print_profile(prof, f"cProfile of {n} steady evaluate cycles, N={n_series}")


def print_profile(prof: cProfile.Profile, title: str) -> None:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(12)
    print(f"## {title} (sorted by own time)")
    lines = out.getvalue().splitlines()
    start_at = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    print("\n".join(ln for ln in lines[start_at:] if ln.strip()), flush=True)
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--series", default="10000,100000", help="comma-separated N (default 10000,100000)"
    )
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=20, help="measured steady cycles")
    ap.add_argument("--warmup", type=int, default=8, help="steady cycles run before measuring")
    ap.add_argument("--reps", type=int, default=5, help="repeats of the one-off measurements")
    ap.add_argument("--profile", action="store_true", help="cProfile steady cycles even if fast")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.series.split(",") if x.strip()]
    print(
        f"# alertd evaluator bench: python {sys.version.split()[0]}, gc "
        f"{'on' if gc.isenabled() else 'off'}, cycle step {STEP:g} s, goal {GOAL_MS:g} ms at 100k",
        flush=True,
    )
    for n in sizes:
        bench_one(n, a.rules, a.cycles, a.warmup, a.reps, a.profile)
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
