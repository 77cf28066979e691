#!/usr/bin/env bash
# Run every alertd benchmark with modest defaults (about 3 minutes on 2 vCPU).
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

if [ ! -x /usr/bin/prometheus-node-exporter ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "# installing prometheus-node-exporter for the host comparison"
    apt-get install -y -qq prometheus-node-exporter >/dev/null 2>&1 \
        || echo "# apt-get install prometheus-node-exporter failed (offline?); bench_host.py will skip it"
fi

status=0
run() {
    echo
    echo "=== $* ==="
    "$PY" "$@" || { echo "!! $1 failed with exit $?"; status=1; }
}

run bench/bench_evaluate.py --series "${BENCH_SERIES:-10000,100000}" --rules 50 --cycles 20
run bench/bench_host.py --iters 200 --runs 5
run bench/bench_snmp_codec.py
run bench/bench_rss.py --minutes "${BENCH_RSS_MINUTES:-2}"
exit $status
