"""End to end, reliability scenario S1: SIGKILL the daemon mid-delivery, three times.

400 alerts are pushed in batches of 64 while the daemon is killed and restarted on the same
state directory; the webhook receiver holds each request 0-30 ms so kills find sends in
flight. Every alert whose batch was answered 200 must be notified at least once; a key may
arrive again only if its intent was caught ``sending`` by a kill (an ``ambiguous`` attempt).
The harness is ``tests/crash_harness.py``; ``bench/crash_test.py`` runs it at larger sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_harness import run

pytestmark = pytest.mark.e2e

N = 400
KILLS = 3
SEED = 20261128
TIMEOUT = 120.0  # seconds for the whole run; it takes about 5 on a quiet machine


def test_kill_9_mid_delivery_loses_nothing_and_repeats_only_what_was_in_flight(
    tmp_path: Path,
) -> None:
    report = run(N, KILLS, SEED, tmp_path, timeout=TIMEOUT)
    detail = report.summary()

    assert report.error is None, detail
    assert len(report.kill_records) == KILLS, detail
    assert report.committed == N, detail
    # at least one kill caught intents not yet delivered, so recovery was exercised
    assert report.kills_mid_delivery >= 1, detail
    assert report.lost == 0, detail
    assert report.missing_intents == 0, detail  # a 200 means the intent was committed
    assert report.unknown_keys == 0, detail
    assert report.violations == 0, detail  # no confirmed send was repeated
    assert report.over_bound == 0, detail  # at most 1 + ambiguous attempts per key
    # each ambiguous attempt stands for an intent a kill caught ``sending``; nothing else
    assert report.ambiguous_attempts <= report.sending_at_kills, detail
    assert report.duplicates == report.duplicates_in_flight, detail
    assert report.integrity == "ok", detail
    assert report.all_delivered, detail
    assert report.ok, detail
