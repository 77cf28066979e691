#!/usr/bin/env bash
# Run every alertd benchmark with modest defaults (about 10 minutes on 2 vCPU).
# `make bench` calls this. Environment:
#   PYTHON               interpreter with alertd installed (default: .venv/bin/python)
#   BENCH_SERIES         series counts for bench_evaluate.py (default: 10000,100000)
#   BENCH_RSS_MINUTES    how long bench_rss.py watches the daemon (default: 2)
# Each script prints RESULT lines; this exits non-zero if any script failed.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
    echo "run_all.sh: $PY not found; create the venv first (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')" >&2
    exit 2
fi

# the peers the benchmarks compare with, started by the benchmarks themselves
peers="prometheus-node-exporter prometheus-snmp-exporter snmpd snmp"
missing=$(for p in $peers; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "# installing peers for the comparisons:" $missing
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null 2>&1 \
        || echo "# installing the peers failed (offline?); their benchmarks will print SKIP"
fi

status=0
run() {
    echo
    echo "=== $* ==="
    "$PY" "$@" || { echo "!! $1 failed with exit $?"; status=1; }
}

run bench/bench_evaluate.py --series "${BENCH_SERIES:-10000,100000}" --rules 50 --cycles 20
run bench/bench_incidents.py
run bench/bench_host.py --iters 200 --runs 5
run bench/bench_snmp_codec.py
run bench/bench_snmp_poll.py --runs 3
run bench/bench_rss.py --minutes "${BENCH_RSS_MINUTES:-2}"
run bench/bench_pipeline.py --n 1000,10000 --runs 3
run bench/bench_stages.py --n 10000 --runs 3
run bench/bench_kpi.py --n 10000,100000 --runs 3
run bench/crash_test.py --n 2000 --kills 10 --runs 3
run bench/bench_api.py --seconds 10 --concurrency 32
run bench/bench_email.py
run bench/bench_http_client.py --requests 5000 --runs 3
exit $status
