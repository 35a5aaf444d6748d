#!/usr/bin/env bash
# The WAL under `appendfsync everysec` (the default): SET and INCR at -P 16 and SET at -P 1,
# against a tierkv build from before a change (BASE), this build (TIERKV) and Debian's
# redis-server with `--appendonly yes --appendfsync everysec`; servers on core 0,
# redis-benchmark on core 1, rounds interleaved.
#
#   BASE=/path/to/old/tierkv-server benches/scripts/wal-everysec-ab.sh       # ROUNDS=3
source "$(dirname "$0")/common.sh"
BASE=${BASE:?set BASE to the tierkv-server built before the change}
ROUNDS=${ROUNDS:-3}
D=$(mktemp -d); mkdir -p "$D/b" "$D/n" "$D/r"
PB=$(free_port); PN=$(free_port); PR=$(free_port)
taskset -c 0 "$BASE" --port "$PB" --dir "$D/b" --save '' >/dev/null 2>&1 &
B_PID=$!
taskset -c 0 "$TIERKV" --port "$PN" --dir "$D/n" --save '' >/dev/null 2>&1 &
N_PID=$!
taskset -c 0 redis-server --port "$PR" --dir "$D/r" --save '' --appendonly yes \
    --appendfsync everysec --daemonize no >/dev/null 2>&1 &
R_PID=$!
trap 'stop $B_PID; stop $N_PID; stop $R_PID; rm -rf "$D"' EXIT
for port in $PB $PN $PR; do wait_ready "$port" >/dev/null; done
machine
for round in $(seq 1 "$ROUNDS"); do
    for s in base:$PB new:$PN redis:$PR; do
        name=${s%%:*}; port=${s##*:}
        p16=$(taskset -c 1 redis-benchmark -p "$port" -t set,incr -n 1000000 -r 1000000 -c 50 -P 16 -q \
            | tr '\r' '\n' | grep "per sec" | awk '{print $1, $2}' | tr '\n' ' ')
        p1=$(taskset -c 1 redis-benchmark -p "$port" -t set -n 200000 -r 1000000 -c 50 -P 1 -q \
            | tr '\r' '\n' | grep "per sec" | awk '{print $1, $2}' | tr '\n' ' ')
        echo "$round $name -P 16: $p16 -P 1: $p1"
    done
done
