#!/usr/bin/env python3
"""Cost of the incident engine: alert events -> incidents in SQLite, escalation, memory.

Everything runs in-process against a real state file (``alertd.state.db.connect``: WAL,
``synchronous=NORMAL``) in a temporary directory, with the daemon's calls in the daemon's
order. One evaluation cycle is what ``AlertdApp._apply`` does::

    with store.transaction():            # BEGIN IMMEDIATE ... COMMIT
        save_rule_state(conn, changes)
        notifications = manager.apply(events, now)
        notifications += manager.escalate(now)
    store.count_open_by_priority()       # the incidents_open gauge

The config is a ``ChannelsFile`` with 2 log channels, 2 teams, the default priority matrix
with response targets, ``reopen_within: 10m`` and ``ack_expires_after: 4h`` as in the repo's
channels.yaml, two routes with a 3-step escalation each (at once, +15m, later; P1/P2
also re-page every 10m), and maintenance windows that cover nothing: a one-off window in
force for an instance that does not exist, a weekly window (time zone) for a site that does
not exist, and one silence stored in the database as ``alertd silence add`` would. The
manager's ``windows`` is the daemon's: configured windows plus ``stored_windows(conn, now)``.
Logging is the daemon's (INFO, one line per opened incident or escalation), written to a
file in the temporary directory (``--log-level off`` to drop it).

The alert events and rule-state records come from a real ``Evaluator`` (20 ``above`` rules,
``for: 1m``) over 10,000 distinct series that all breach: FIRING at critical, major and minor
over criticality high/medium/low, so every priority P1-P4 occurs.

Measured:

  storm         10,000 FIRING events in one cycle (one ``apply``): wall time split into
                save_rule_state / apply / escalate / COMMIT / count, notifications produced,
                then the same storm under cProfile (own time by area); the storm again with
                a ``parent`` label on every series (each new incident then asks
                ``store.down_targets`` again)
  idle_cycles   the next ``--idle-cycles`` cycles with no events and nothing due (15 s apart),
                i.e. the per-cycle query cost with 10,000 open incidents; and the single
                queries behind it (``active``, ``down_targets``, ``windows``,
                ``suppressed_by_window``, ``due``, ``count_open_by_priority``)
  all_due       one cycle 15 min after the storm: every incident's next step is due
  history       the storm then clears in one cycle (10,000 RESOLVED), and ``--history-storm``
                FIRING events for new series arrive on that file: with ``reopen_within`` set,
                each new incident first asks ``store.recently_resolved``; compared with the
                same events on an empty file
  throughput    N FIRING events (N = 1k, 10k) for distinct series fed in batches of 1, 100
                and N, one cycle per batch (``now`` advances 1 ms per cycle, so nothing
                comes due), then the same N RESOLVED in the same batches: events/s, ms per
                1,000 events, and the split. At most ``--max-cycles`` cycles are timed: for
                batch 1 at N = 10k, the first 9,500 FIRING go in one untimed cycle and the
                last 500 are timed one by one (open 9,500 -> 10,000); RESOLVED times the
                first 500 (10,000 -> 9,500) and clears the rest untimed
  memory        VmRSS before and after: an Evaluator holding 10,000 firing series (with the
                cycle's events and records), the storm applied with its notifications held,
                and after they are dropped; the SQLite file and WAL sizes

Usage: .venv/bin/python bench/bench_incidents.py [--sizes 1000,10000] [--batches 1,100,all]
       [--storm 10000] [--storm-reps 3] [--idle-cycles 20] [--history-storm 1000]
       [--max-cycles 500]
       [--log-level info|warning|off] [--max-seconds 100]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from benchlib import median, pct, proc_rss_kib, result, table

from alertd.config.channels import ChannelsFile
from alertd.config.load import RuleSource
from alertd.config.thresholds import Rule
from alertd.evaluate.evaluator import Evaluator
from alertd.incidents.maintenance import from_config, from_rows
from alertd.incidents.manager import IncidentManager
from alertd.model import (
    TARGET_UP_METRIC,
    AlertEvent,
    Labels,
    Notification,
    Sample,
    StateRecord,
    fingerprint,
    make_labels,
    merge_labels,
)
from alertd.state.db import DB_NAME, connect
from alertd.state.incidents import IncidentStore
from alertd.state.maintenance import add_window, stored_windows
from alertd.state.rule_state import save_rule_state

T = TypeVar("T")
T0 = 1_800_000_000.0  # a Friday, 08:00 UTC (no window is in force by accident)
STEP = 15.0  # evaluation interval
N_RULES = 20
SITES = ("site-a", "site-b", "site-c", "site-d", "site-e")
ROLES = ("web", "db", "batch", "cache", "app")
CRITICALITIES = ("high", "medium", "low")
VALUES = (96.0, 88.0, 78.0)  # critical, major, minor for above 95/85/75
HOSTS_PER_PARENT = 40
DEVICES_PER_HOST = 4

Changes = dict[str, StateRecord | None]


# -- config -------------------------------------------------------------------------------
def build_channels() -> ChannelsFile:
    day = 86400.0
    steps_p12 = [
        {"notify": ["tier1"]},
        {"after": "15m", "notify": ["tier2"]},
        {"after": "45m", "notify": ["tier1", "tier2"]},
    ]
    steps_p34 = [
        {"notify": ["tier1"]},
        {"after": "15m", "notify": ["tier2"]},
        {"after": "2h", "notify": ["tier2", "audit-log"]},
    ]
    return ChannelsFile.model_validate(
        {
            "channels": {"ops-log": {"type": "log"}, "audit-log": {"type": "log", "level": "info"}},
            "teams": {
                "tier1": {
                    "members": [
                        {"name": "On-call A", "email": "a@example.com", "phone": "+15550000001"},
                        {"name": "On-call B", "email": "b@example.com"},
                    ],
                    "channels": ["ops-log"],
                },
                "tier2": {
                    "members": [{"name": "Experts", "email": "experts@example.com"}],
                    "channels": ["ops-log", "audit-log"],
                },
            },
            "priorities": {
                "targets": {
                    "P1": {"respond_within": "15m", "resolve_within": "4h"},
                    "P2": {"respond_within": "30m", "resolve_within": "8h"},
                    "P3": {"respond_within": "4h", "resolve_within": "3d"},
                    "P4": {"respond_within": "1d", "resolve_within": "7d"},
                }
            },
            # as the repo's channels.yaml: a re-fire within 10m reopens the incident
            "incidents": {"reopen_within": "10m", "ack_expires_after": "4h"},
            "routes": [
                {"match": {"priority": ["P1", "P2"]}, "escalate": steps_p12, "repeat": "10m"},
                {"match": {"priority": ["P3", "P4"]}, "escalate": steps_p34},
            ],
            "maintenance": [
                {
                    "name": "CHG-0001",
                    "match": {"instance": ["no-such-host"]},
                    "start": "2027-01-01T00:00:00Z",
                    "duration": 400 * day,  # in force during the whole run
                    "owner": "bench",
                    "reason": "covers nothing",
                },
                {
                    "name": "weekly-patching",
                    "match": {"site": ["site-z"]},
                    "weekly": {
                        "days": ["fri"],
                        "at": "07:00",
                        "duration": "3h",
                        "timezone": "Europe/Berlin",
                    },
                    "reason": "covers nothing",
                },
            ],
        }
    )


class Engine:
    """One state file and an IncidentManager wired the way the daemon wires it."""

    def __init__(self, state_dir: Path, channels: ChannelsFile) -> None:
        self.dir = state_dir
        self.conn = connect(state_dir)
        self.store = IncidentStore(self.conn)
        self.manager = IncidentManager(self.store, channels)
        with self.store.transaction():
            add_window(
                self.conn,
                kind="silence",
                matchers={"instance": ["nowhere"]},
                start=T0 - 3600,
                end=T0 + 30 * 86400,
                reason="covers nothing",
                owner="bench",
                now=T0 - 3600,
            )
        configured = from_config(channels)
        conn = self.conn
        self.manager.windows = lambda now: [
            *configured,
            *from_rows(stored_windows(conn, now)),
        ]

    def close(self) -> None:
        self.conn.close()

    def sizes(self) -> tuple[int, int]:
        db = self.dir / DB_NAME
        wal = Path(str(db) + "-wal")
        return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


# -- one daemon cycle, timed in parts ------------------------------------------------------
PARTS = ("save_state", "apply", "escalate", "commit", "count")


@dataclass
class Split:
    """Accumulated seconds per part of the cycle, and what came out."""

    s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    cycles: int = 0
    notifications: int = 0
    by_transition: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> float:
        return sum(self.s.values())


def cycle(
    eng: Engine,
    events: Sequence[AlertEvent],
    changes: Changes,
    now: float,
    split: Split,
    keep: list[Notification] | None = None,
) -> None:
    """One ``AlertdApp._apply``: rule state + apply + escalate in one transaction, then count."""
    pc = time.perf_counter
    s = split.s
    t0 = pc()
    with eng.store.transaction():
        t1 = pc()
        save_rule_state(eng.conn, changes)
        t2 = pc()
        notes = eng.manager.apply(events, now)
        t3 = pc()
        notes += eng.manager.escalate(now)
        t4 = pc()
    t5 = pc()
    eng.store.count_open_by_priority()
    t6 = pc()
    s["save_state"] += t2 - t1
    s["apply"] += t3 - t2
    s["escalate"] += t4 - t3
    s["commit"] += (t5 - t4) + (t1 - t0)  # COMMIT, and BEGIN IMMEDIATE
    s["count"] += t6 - t5
    split.cycles += 1
    split.notifications += len(notes)
    split.by_transition.update(n.transition.value for n in notes)
    if keep is not None:
        keep.extend(notes)


# -- events from a real evaluator ----------------------------------------------------------
def build_rules() -> list[RuleSource]:
    return [
        RuleSource(
            Rule.model_validate(
                {
                    "metric": f"bench_inc_metric_{m:02d}",
                    "above": {"critical": 95, "major": 85, "minor": 75},
                    "for": "1m",
                    "clear": 5,
                    "summary": "{{ labels.device }} at {{ value | round(1) }} on "
                    "{{ labels.instance }}",
                }
            ),
            "bench",
        )
        for m in range(N_RULES)
    ]


def build_samples(n: int, ts: float, value: Callable[[int], float]) -> list[Sample]:
    samples = []
    for i in range(n):
        m, j = i % N_RULES, i // N_RULES
        host = j // DEVICES_PER_HOST
        labels = make_labels(
            {
                "instance": f"host{host:05d}",
                "site": SITES[host % len(SITES)],
                "role": ROLES[(host // len(SITES)) % len(ROLES)],
                "criticality": CRITICALITIES[(i // 3) % len(CRITICALITIES)],
                "device": f"dev{j % DEVICES_PER_HOST}",
            }
        )
        samples.append(Sample(f"bench_inc_metric_{m:02d}", labels, value(i), ts))
    return samples


def relabel(
    events: Sequence[AlertEvent], changes: Changes, extra: Callable[[Labels], dict[str, str]]
) -> tuple[list[AlertEvent], Changes]:
    """The same events (and their rule-state records) on other series: ``extra(labels)`` is
    merged into each label set, so every fingerprint is new."""
    out: list[AlertEvent] = []
    out_changes: Changes = {}
    for e in events:
        labels = merge_labels(e.labels, extra(e.labels))
        moved = replace(e, labels=labels, fingerprint=fingerprint(e.rule, labels))
        out.append(moved)
        record = changes[e.fingerprint]
        out_changes[moved.fingerprint] = (
            None
            if record is None
            else replace(record, fingerprint=moved.fingerprint, labels=labels)
        )
    return out, out_changes


def parent_of(labels: Labels) -> dict[str, str]:
    """A ``parent`` switch per 40 hosts."""
    host = int(dict(labels)["instance"][4:])
    return {"parent": f"sw{host // HOSTS_PER_PARENT:04d}"}


# -- helpers -------------------------------------------------------------------------------
def rss_mib() -> float:
    kib = proc_rss_kib(os.getpid())
    return (kib or 0) / 1024


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1e3, out


def per_call_ms(fn: Callable[[], object], reps: int) -> list[float]:
    return [timed(fn)[0] for _ in range(reps)]


def setup_logging(level: str, path: Path) -> logging.Handler | None:
    """The daemon's log format at ``level``, into ``path`` (None: logging off)."""
    root = logging.getLogger()
    if level == "off":
        root.setLevel(logging.CRITICAL + 1)
        return None
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler


_LOGGING = (
    "/logging/",
    "posixpath",
    "genericpath",
    "threading.py",
    "time.localtime",
    "time.strftime",
    "posix.getpid",
    "posix.write",
    "_thread.RLock",
    "TextIOWrapper",
)
# (key for the RESULT line, title, test on "filename:function")
AREAS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("sqlite", "sqlite execute", lambda n: "sqlite3.Connection" in n or "sqlite3.Cursor" in n),
    ("logging", "logging (daemon's INFO lines)", lambda n: any(x in n for x in _LOGGING)),
    ("json", "json (labels)", lambda n: "/json/" in n),
    (
        "windows",
        "maintenance windows",
        lambda n: (
            "maintenance.py" in n
            or "zoneinfo" in n.lower()
            or "fromtimestamp" in n
            or "datetime" in n
            or "bench_incidents.py:<lambda>" in n
        ),  # the daemon's windows(now) closure
    ),
    ("enum", "Level.label / enum", lambda n: "enum.py" in n or "model.py:label" in n),
    ("routing", "routing (matching_routes, notifications)", lambda n: "routing.py" in n),
    ("matches", "label matching (thresholds.matches)", lambda n: "thresholds.py" in n),
    ("escalation", "escalation (arm_new, _policy)", lambda n: "escalation.py" in n),
    ("priority", "priority", lambda n: "priority.py" in n),
    ("manager", "manager (_apply_one, _open, apply)", lambda n: "manager.py" in n),
    ("store", "state/incidents.py (SQL glue)", lambda n: "state/incidents.py" in n),
    (
        "dataclasses",
        "dataclasses.replace / Incident()",
        lambda n: "dataclasses" in n or "<string>" in n,
    ),
    ("rule_state", "rule state (save_rule_state)", lambda n: "rule_state.py" in n),
)
OTHER = ("other", "other (builtins, model)")


def profile_areas(prof: cProfile.Profile) -> tuple[list[tuple[str, str, float]], float, str]:
    """Own time by area; total; and the top functions as text."""
    stats = pstats.Stats(prof)
    by_area: Counter[tuple[str, str]] = Counter()
    total = 0.0
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, funcname), (_cc, _nc, tt, _ct, _callers) in raw.items():
        total += tt
        name = f"{filename}:{funcname}"
        area = next(((key, title) for key, title, test in AREAS if test(name)), OTHER)
        by_area[area] += tt
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    lines = out.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    top = "\n".join(ln for ln in lines[start:] if ln.strip())
    ordered = sorted(by_area.items(), key=lambda kv: -kv[1])
    return [(key, title, sec) for (key, title), sec in ordered], total, top


# -- the measurements ----------------------------------------------------------------------
def storm_once(
    tmp: Path, name: str, channels: ChannelsFile, events: Sequence[AlertEvent], changes: Changes
) -> tuple[Engine, Split, list[Notification]]:
    d = tmp / name
    eng = Engine(d, channels)
    split = Split()
    notes: list[Notification] = []
    cycle(eng, events, changes, T0, split, keep=notes)
    return eng, split, notes


@dataclass
class ThroughputRow:
    kind: str
    n: int
    batch: int
    split: Split
    timed: int  # events in the timed cycles
    open_from: int  # open incidents before and after the timed cycles
    open_to: int


def feed(
    eng: Engine,
    kind: str,
    events: Sequence[AlertEvent],
    changes: Changes,
    batch: int,
    timed_n: int,
    now: float,
    at_end: bool = False,
) -> ThroughputRow:
    """Feed ``events`` in cycles of ``batch``; time ``timed_n`` of them (the last ones if
    ``at_end``, else the first). The others go through in one untimed cycle, so a long run of
    one-event cycles is timed where the open count is highest, without paying all of it."""
    n = len(events)
    untimed = Split()
    if at_end:
        rest, timed = events[: n - timed_n], events[n - timed_n :]
    else:
        timed, rest = events[:timed_n], events[timed_n:]
    if at_end and rest:
        cycle(eng, rest, {e.fingerprint: changes[e.fingerprint] for e in rest}, now, untimed)
        now += 0.001
    open_from = sum(eng.store.count_open_by_priority().values())
    split = Split()
    for i in range(0, len(timed), batch):
        chunk = timed[i : i + batch]
        cycle(eng, chunk, {e.fingerprint: changes[e.fingerprint] for e in chunk}, now, split)
        now += 0.001
    open_to = sum(eng.store.count_open_by_priority().values())
    if not at_end and rest:
        cycle(eng, rest, {e.fingerprint: changes[e.fingerprint] for e in rest}, now, untimed)
    return ThroughputRow(kind, n, batch, split, len(timed), open_from, open_to)


def run(a: argparse.Namespace, tmp: Path) -> int:
    deadline = time.monotonic() + a.max_seconds
    channels = build_channels()
    handler = setup_logging(a.log_level, tmp / "alertd.log")
    n_storm = a.storm
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    n_max = max([n_storm, *sizes])
    gc.collect()
    rss0 = rss_mib()

    # -- the evaluator with n_max firing series: the events and records of one cycle
    rules = build_rules()
    ev = Evaluator(rules)
    ev.ingest(build_samples(n_max, T0 - 60, lambda i: VALUES[i % 3]))
    ev.evaluate(T0 - 60)  # pending
    ev.take_changes()
    ev.ingest(build_samples(n_max, T0, lambda i: VALUES[i % 3]))
    eval_ms, firing = timed(lambda: ev.evaluate(T0))
    firing_changes = ev.take_changes()
    kinds = Counter(e.kind.value for e in firing)
    if kinds != {"firing": n_max}:
        raise RuntimeError(f"expected {n_max} FIRING events from the evaluator, got {kinds}")
    gc.collect()
    rss_eval = rss_mib()
    levels = Counter(e.level.label for e in firing if e.level is not None)
    print(
        f"# {n_max} FIRING events from the evaluator in {eval_ms:.0f} ms "
        f"({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))}); "
        f"RSS {rss0:.1f} -> {rss_eval:.1f} MiB",
        flush=True,
    )

    # -- 2. storm: n_storm FIRING in one cycle (also the memory measurement)
    storm_events = firing[:n_storm]
    storm_changes = {e.fingerprint: firing_changes[e.fingerprint] for e in storm_events}
    eng, storm, notes = storm_once(tmp, "storm", channels, storm_events, storm_changes)
    rss_storm = rss_mib()
    n_notes = len(notes)
    note_kinds = Counter(n.channel for n in notes)
    del notes
    gc.collect()
    rss_storm_after = rss_mib()
    db_bytes, wal_bytes = eng.sizes()
    open_now = sum(eng.store.count_open_by_priority().values())
    by_priority = eng.store.count_open_by_priority()
    rule_states = eng.conn.execute("SELECT COUNT(*) FROM rule_state").fetchone()[0]
    timeline_rows = eng.conn.execute("SELECT COUNT(*) FROM timeline").fetchone()[0]
    page_bytes = eng.conn.execute(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
    ).fetchone()[0]

    # single-query costs with n_storm open incidents
    fp_probe = storm_events[len(storm_events) // 2].fingerprint
    st = eng.store
    q = {
        "active(fp)": per_call_ms(lambda: st.active(fp_probe), 200),
        "down_targets": per_call_ms(lambda: st.down_targets(TARGET_UP_METRIC), 20),
        "windows(now)": per_call_ms(lambda: eng.manager.windows(T0), 200),
        "suppressed_by_window": per_call_ms(st.suppressed_by_window, 20),
        "escalations.due": per_call_ms(
            lambda: eng.manager.escalator.escalations.due(
                T0 + 60,
                {p: T0 - t.resolve_within for p, t in channels.priorities.targets.items()},
            ),
            20,
        ),
        "count_open_by_priority": per_call_ms(st.count_open_by_priority, 20),
    }

    # the next cycles: no events, nothing due
    idle = Split()
    idle_ms = []
    for k in range(1, a.idle_cycles + 1):
        before = idle.total
        cycle(eng, [], {}, T0 + k * STEP, idle)
        idle_ms.append((idle.total - before) * 1e3)
    assert idle.notifications == 0, idle.by_transition

    # one cycle where every open incident's next step is due (15 min after opening)
    due = Split()
    cycle(eng, [], {}, T0 + 15 * 60 + 1, due)

    # the storm clears in one cycle: n_storm RESOLVED; they stay in the file as history
    resolved_ev = ev  # the same evaluator: the series drop back below the clear margin
    resolved_ev.ingest(build_samples(n_max, T0 + 16 * 60, lambda i: 50.0))
    resolved = resolved_ev.evaluate(T0 + 16 * 60)
    resolved_changes = resolved_ev.take_changes()
    kinds = Counter(e.kind.value for e in resolved)
    if kinds != {"resolved": n_max}:
        raise RuntimeError(f"expected {n_max} RESOLVED events from the evaluator, got {kinds}")
    by_fp_resolved = {e.fingerprint: e for e in resolved}
    storm_resolved = [by_fp_resolved[e.fingerprint] for e in storm_events]
    clear = Split()
    cycle(
        eng,
        storm_resolved,
        {e.fingerprint: resolved_changes[e.fingerprint] for e in storm_resolved},
        T0 + 16 * 60,
        clear,
    )
    # then new series fire on that file: with reopen_within set, each new incident first
    # looks for a recently resolved one of its fingerprint (store.recently_resolved)
    history = eng.conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    recent_ms = per_call_ms(  # a miss, as for any new series
        lambda: eng.store.recently_resolved("0" * 16, T0 + 7 * 60), 20
    )
    n_hist = min(a.history_storm, n_storm)
    new_events, new_changes = relabel(
        storm_events[:n_hist], storm_changes, lambda labels: {"gen": "2"}
    )
    on_history = Split()
    cycle(eng, new_events, new_changes, T0 + 17 * 60, on_history)
    eng.close()
    # the same events on an empty file, for comparison
    fresh_eng = Engine(tmp / "storm-fresh-small", channels)
    on_fresh = Split()
    cycle(fresh_eng, new_events, new_changes, T0 + 17 * 60, on_fresh)
    fresh_eng.close()

    # the storm again on fresh files, for its spread
    storms = [storm]
    for rep in range(1, a.storm_reps):
        reng, rsplit, _ = storm_once(tmp, f"storm-{rep}", channels, storm_events, storm_changes)
        reng.close()
        storms.append(rsplit)
    storm_ms = [sp.total * 1e3 for sp in storms]

    # the storm under cProfile, on a fresh file (the unprofiled figures are above)
    prof_eng = Engine(tmp / "storm-prof", channels)
    prof = cProfile.Profile()
    prof_split = Split()
    prof.enable()
    cycle(prof_eng, storm_events, storm_changes, T0, prof_split)
    prof.disable()
    prof_eng.close()
    areas, prof_total, top = profile_areas(prof)

    # the storm with a parent label on every series: down_targets per new incident
    parent_events, parent_changes = relabel(storm_events, storm_changes, parent_of)
    peng, pstorm, pnotes = storm_once(tmp, "storm-parent", channels, parent_events, parent_changes)
    n_pnotes = len(pnotes)
    del pnotes
    peng.close()

    # -- 1. throughput: FIRING then RESOLVED, in batches, per N
    batches_arg = [x.strip() for x in a.batches.split(",") if x.strip()]
    thr_rows: list[ThroughputRow] = []
    skipped: list[str] = []
    for n in sizes:
        fire_n = firing[:n]
        res_n = [by_fp_resolved[e.fingerprint] for e in fire_n]
        for b_text in batches_arg:
            batch = n if b_text == "all" else int(b_text)
            if time.monotonic() > deadline:
                skipped.append(f"N={n} batch={batch}")
                continue
            teng = Engine(tmp / f"thr-{n}-{batch}", channels)
            timed_n = min(n, a.max_cycles * batch)
            thr_rows.append(
                feed(teng, "firing", fire_n, firing_changes, batch, timed_n, T0, at_end=True)
            )
            thr_rows.append(
                feed(teng, "resolved", res_n, resolved_changes, batch, timed_n, T0 + 600)
            )
            teng.close()
    if handler is not None:
        handler.close()
        with open(tmp / "alertd.log", "rb") as f:
            log_lines = sum(1 for _ in f)
    else:
        log_lines = 0

    # -- report
    print()
    print(f"## storm: {n_storm} FIRING events in one cycle (one transaction)")
    storm_rows = [
        *[(f"storm #{i + 1}", sp) for i, sp in enumerate(storms)],
        ("storm, parent label", pstorm),
        ("cProfile'd storm", prof_split),
    ]
    table(
        ["cycle", "total ms", *[f"{p} ms" for p in PARTS], "µs/event", "notifications"],
        [
            (
                name,
                sp.total * 1e3,
                *[sp.s[p] * 1e3 for p in PARTS],
                sp.total * 1e6 / n_storm,
                sp.notifications,
            )
            for name, sp in storm_rows
        ],
    )
    print(
        f"after the storm: {open_now} open incidents "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_priority.items()))}), {rule_states} rule "
        f"states, {timeline_rows} timeline rows; notifications by channel "
        f"{dict(sorted(note_kinds.items()))}; {log_lines} log lines over the whole run"
    )
    print(
        f"the storm resolved in one cycle: {clear.total * 1e3:.0f} ms "
        f"({clear.total * 1e6 / n_storm:.0f} µs/event, COMMIT {clear.s['commit'] * 1e3:.0f} ms), "
        f"{clear.notifications} notifications"
    )
    print(
        f"then {n_hist} FIRING for new series on that file ({history} incidents, all resolved): "
        f"{on_history.total * 1e3:.0f} ms ({on_history.total * 1e6 / n_hist:.0f} µs/event) vs "
        f"{on_fresh.total * 1e3:.0f} ms ({on_fresh.total * 1e6 / n_hist:.0f} µs/event) on an "
        f"empty file; one recently_resolved() {median(recent_ms):.2f} ms"
    )
    print()
    print(f"## cProfile of the storm: own time by area ({prof_total * 1e3:.0f} ms profiled)")
    table(
        ["area", "own ms", "share %"],
        [(title, sec * 1e3, 100 * sec / prof_total) for _, title, sec in areas],
    )
    print(top)
    print()
    print(f"## with {open_now} open incidents: one call each, and the cycles after the storm")
    qrows = [(name, median(ms), pct(ms, 95), len(ms)) for name, ms in q.items()]
    qrows.append(
        ("idle cycle (no events, nothing due)", median(idle_ms), pct(idle_ms, 95), len(idle_ms))
    )
    qrows.append(("all-due cycle", due.total * 1e3, due.total * 1e3, 1))
    table(["what", "median ms", "p95 ms", "runs"], qrows)
    print(
        "idle cycle split (mean ms): "
        + ", ".join(f"{p} {idle.s[p] * 1e3 / max(1, idle.cycles):.2f}" for p in PARTS)
    )
    print(
        f"all-due cycle: {due.total * 1e3:.0f} ms, {due.notifications} notifications "
        f"{dict(due.by_transition)}; split " + ", ".join(f"{p} {due.s[p] * 1e3:.0f}" for p in PARTS)
    )
    print()
    print(
        "## throughput: one cycle per batch (now += 1 ms), a fresh file per N and batch size; "
        f"at most {a.max_cycles} cycles timed (the others in one untimed cycle)"
    )
    table(
        [
            "kind",
            "N",
            "batch",
            "timed",
            "open",
            "events/s",
            "ms/1k events",
            *[f"{p} %" for p in PARTS],
        ],
        [
            (
                r.kind,
                r.n,
                r.batch,
                r.timed,
                f"{r.open_from}->{r.open_to}",
                r.timed / r.split.total,
                r.split.total * 1e6 / r.timed,
                *[100 * r.split.s[p] / r.split.total for p in PARTS],
            )
            for r in thr_rows
        ],
    )
    if skipped:
        print(f"!! skipped after --max-seconds {a.max_seconds:g}: {', '.join(skipped)}")
    print()
    print("## memory (VmRSS)")
    table(
        ["point", "RSS MiB", "delta MiB"],
        [
            ("start (imports, config)", rss0, 0.0),
            (f"+ Evaluator with {n_max} firing series, events, records", rss_eval, rss_eval - rss0),
            (f"+ storm applied, {n_notes} notifications held", rss_storm, rss_storm - rss_eval),
            ("notifications dropped", rss_storm_after, rss_storm_after - rss_eval),
        ],
    )
    print(
        f"state file after the storm: {db_bytes / 2**20:.2f} MiB + WAL {wal_bytes / 2**20:.2f} "
        f"MiB ({page_bytes / 2**20:.2f} MiB of pages), {open_now} incidents, {rule_states} rule "
        "states"
    )
    print()

    # RESULT lines
    common = {"events": n_storm}
    result(
        "incidents_storm",
        **common,
        total_ms=storm.total * 1e3,
        p50_ms=median(storm_ms),
        min_ms=min(storm_ms),
        max_ms=max(storm_ms),
        runs=len(storm_ms),
        us_per_event=median(storm_ms) * 1e3 / n_storm,
        apply_ms=storm.s["apply"] * 1e3,
        save_state_ms=storm.s["save_state"] * 1e3,
        escalate_ms=storm.s["escalate"] * 1e3,
        commit_ms=storm.s["commit"] * 1e3,
        count_ms=storm.s["count"] * 1e3,
        notifications=storm.notifications,
        open=open_now,
        timeline_rows=timeline_rows,
    )
    result(
        "incidents_storm_resolve",
        **common,
        total_ms=clear.total * 1e3,
        us_per_event=clear.total * 1e6 / n_storm,
        apply_ms=clear.s["apply"] * 1e3,
        commit_ms=clear.s["commit"] * 1e3,
        notifications=clear.notifications,
    )
    result(
        "incidents_storm_history",
        events=n_hist,
        history=history,
        total_ms=on_history.total * 1e3,
        us_per_event=on_history.total * 1e6 / n_hist,
        empty_file_us_per_event=on_fresh.total * 1e6 / n_hist,
        recently_resolved_us=median(recent_ms) * 1e3,
    )
    result(
        "incidents_storm_parent",
        **common,
        total_ms=pstorm.total * 1e3,
        us_per_event=pstorm.total * 1e6 / n_storm,
        apply_ms=pstorm.s["apply"] * 1e3,
        commit_ms=pstorm.s["commit"] * 1e3,
        notifications=n_pnotes,
        down_targets_ms=median(q["down_targets"]),
    )
    sql_share = next((sec for key, _, sec in areas if key == "sqlite"), 0.0) / prof_total
    result(
        "incidents_storm_profile",
        **common,
        profiled_ms=prof_total * 1e3,
        python_pct=100 * (1 - sql_share),
        **{f"{key}_pct": 100 * sec / prof_total for key, _, sec in areas},
    )
    result(
        "incidents_idle_cycle",
        open=open_now,
        p50_ms=median(idle_ms),
        p95_ms=pct(idle_ms, 95),
        cycles=len(idle_ms),
        escalate_ms=idle.s["escalate"] * 1e3 / max(1, idle.cycles),
        count_ms=idle.s["count"] * 1e3 / max(1, idle.cycles),
        commit_ms=idle.s["commit"] * 1e3 / max(1, idle.cycles),
    )
    result(
        "incidents_all_due",
        open=open_now,
        total_ms=due.total * 1e3,
        escalate_ms=due.s["escalate"] * 1e3,
        commit_ms=due.s["commit"] * 1e3,
        notifications=due.notifications,
        escalated=due.by_transition.get("escalated", 0),
    )
    result(
        "incidents_queries",
        open=open_now,
        **{
            name.split("(")[0].replace(".", "_") + "_us": median(ms) * 1e3 for name, ms in q.items()
        },
    )
    for r in thr_rows:
        sp = r.split
        result(
            "incidents_throughput",
            kind=r.kind,
            n=r.n,
            batch=r.batch,
            timed=r.timed,
            open_from=r.open_from,
            open_to=r.open_to,
            events_per_s=r.timed / sp.total,
            ms_per_1k=sp.total * 1e6 / r.timed,
            apply_pct=100 * sp.s["apply"] / sp.total,
            escalate_pct=100 * sp.s["escalate"] / sp.total,
            commit_pct=100 * sp.s["commit"] / sp.total,
            count_pct=100 * sp.s["count"] / sp.total,
        )
    result(
        "incidents_memory",
        open=open_now,
        rss_start_mib=rss0,
        evaluator_mib=rss_eval - rss0,
        storm_with_notifications_mib=rss_storm - rss_eval,
        storm_after_mib=rss_storm_after - rss_eval,
        notifications=n_notes,
        db_mib=db_bytes / 2**20,
        wal_mib=wal_bytes / 2**20,
        pages_mib=page_bytes / 2**20,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1000,10000", help="throughput N (default 1000,10000)")
    ap.add_argument("--batches", default="1,100,all", help="events per cycle (default 1,100,all)")
    ap.add_argument("--storm", type=int, default=10000, help="events in the storm cycle")
    ap.add_argument("--storm-reps", type=int, default=3, help="storms on fresh files")
    ap.add_argument("--idle-cycles", type=int, default=20)
    ap.add_argument(
        "--history-storm",
        type=int,
        default=1000,
        help="FIRING events of new series applied after the storm is resolved (default 1000)",
    )
    ap.add_argument("--log-level", default="info", choices=("info", "warning", "off"))
    ap.add_argument(
        "--max-cycles",
        type=int,
        default=500,
        help="time at most this many cycles per throughput run (default 500)",
    )
    ap.add_argument(
        "--max-seconds", type=float, default=100.0, help="skip throughput runs after this"
    )
    a = ap.parse_args(argv)
    print(
        f"# alertd incident engine bench: python {sys.version.split()[0]}, "
        f"sqlite {__import__('sqlite3').sqlite_version}, logging {a.log_level}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="alertd-bench-inc-") as tmp:
        return run(a, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
