#!/usr/bin/env bash
# Metrics on over off (issue #13: GET/SET throughput with metrics on over off >= 0.97): the
# same build with its defaults (latency-tracking yes, slow log at 10 ms) and with both off
# (--latency-tracking no --slowlog-log-slower-than -1), rounds interleaved, server pinned to
# core 0 and redis-benchmark (-c 50 -P 16) to core 1, no persistence.
#
#   benches/scripts/metrics-overhead.sh            # SET and GET, 4 rounds each
#   TESTS=get ROUNDS=8 benches/scripts/metrics-overhead.sh
source "$(dirname "$0")/common.sh"

TESTS=${TESTS:-"set get"}
ROUNDS=${ROUNDS:-4}

run() { # label test extra...
    local label=$1 test=$2 port dir pid out; shift 2
    port=$(free_port)
    dir=$(mktemp -d)
    taskset -c 0 "$TIERKV" --port "$port" --dir "$dir" --save '' --appendonly no "$@" >/dev/null 2>&1 &
    pid=$!
    wait_ready "$port" >/dev/null
    out=$(taskset -c 1 redis-benchmark -p "$port" -t "$test" -n 1000000 -r 1000000 -c 50 -P 16 -q 2>/dev/null \
        | tr '\r' '\n' | grep -E "^[A-Z]+: [0-9.]+ requests" | awk '{print $2}')
    echo "$test $label $out"
    stop "$pid"
    rm -rf "$dir"
}

machine
for test in $TESTS; do
    for _ in $(seq "$ROUNDS"); do
        run on "$test"
        run off "$test" --latency-tracking no --slowlog-log-slower-than -1
    done
done
