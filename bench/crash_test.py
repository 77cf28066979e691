"""Crash test (reliability scenario S1): SIGKILL alertd mid-delivery, check nothing is lost.

Runs ``tests/crash_harness.py`` ``--runs`` times (seeds ``--seed``, ``--seed + 1``, ...):
N distinct alerts posted in batches of 64 to a daemon with one webhook channel, K SIGKILLs
spread over the storm and the delivery, a restart on the same state directory after each.
Per run it prints one line::

    RESULT crash n=... kills=... lost=... duplicates=... in_flight=... violations=... ...

``lost`` (committed alerts never notified), ``violations`` (a confirmed send repeated) and
``over_bound`` (a key arriving more than 1 + its ambiguous attempts) must be 0, integrity
``ok`` and every intent ``delivered``; the exit code is 1 otherwise. ``duplicates`` are the
cost of at-least-once: sends in flight at a kill, each recorded ``ambiguous`` on restart.

Usage: .venv/bin/python bench/crash_test.py [--n 2000] [--kills 10] [--seed 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.crash_harness

from benchlib import median, result, table

from tests.crash_harness import CrashReport, run


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="distinct alerts per run")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs per run")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run, at most")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (logs, DB)")
    ap.add_argument("--verbose", action="store_true", help="print each kill")
    return ap.parse_args(argv)


def _line(r: CrashReport) -> None:
    result(
        "crash",
        n=r.n,
        kills=len(r.kill_records),
        seed=r.seed,
        committed=r.committed,
        lost=r.lost,
        duplicates=r.duplicates,
        in_flight=r.duplicates_in_flight,
        violations=r.violations,
        over_bound=r.over_bound,
        max_per_key=r.max_arrivals_per_key,
        ambiguous=r.ambiguous_attempts,
        kills_mid_delivery=r.kills_mid_delivery,
        sending_at_kills=r.sending_at_kills,
        answered_unrecorded=r.answered_unrecorded,
        missing_intents=r.missing_intents,
        integrity=r.integrity,
        all_delivered=r.all_delivered,
        failed_posts=r.failed_posts,
        elapsed_s=round(r.elapsed_s, 2),
        ok=r.ok,
    )


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    reports: list[CrashReport] = []
    for i in range(a.runs):
        work = Path(tempfile.mkdtemp(prefix="alertd-crash-"))
        try:
            r = run(a.n, a.kills, a.seed + i, work, timeout=a.timeout)
        finally:
            if not a.keep:
                shutil.rmtree(work, ignore_errors=True)
        reports.append(r)
        _line(r)
        if a.verbose or not r.ok:
            for k in r.kill_records:
                print(
                    f"#   kill at {k.at_s:6.2f}s progress {k.progress:.2f} committed "
                    f"{k.committed} arrived {k.arrived} receiver holding "
                    f"{k.receiver_in_flight} outbox {k.states} answered-unrecorded "
                    f"{k.answered_unrecorded} back in {k.restart_s:.2f}s"
                )
        if r.error:
            print(f"# run {i + 1} error: {r.error}")
        if a.keep:
            print(f"# run {i + 1} kept in {work}")
    print()
    table(
        ["seed", "n", "kills", "lost", "dups", "in flight", "violations", "max/key", "ok", "s"],
        [
            [
                r.seed,
                r.n,
                len(r.kill_records),
                r.lost,
                r.duplicates,
                r.duplicates_in_flight,
                r.violations,
                r.max_arrivals_per_key,
                r.ok,
                round(r.elapsed_s, 1),
            ]
            for r in reports
        ],
    )
    print(
        f"# {sum(r.ok for r in reports)}/{len(reports)} runs passed; median duplicates "
        f"{median([float(r.duplicates) for r in reports]):g} per {a.kills} kills"
    )
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
