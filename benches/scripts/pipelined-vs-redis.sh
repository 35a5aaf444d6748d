#!/usr/bin/env bash
# Issue #11's redis-benchmark figure: SET, GET and INCR at -P 16 and -P 64 (-r 1000000 -c 50),
# tierkv with its defaults (WAL on, everysec) against Debian's redis-server with
# `--appendonly yes --appendfsync everysec`, both on core 0, redis-benchmark on core 1, five
# interleaved rounds, medians.
#
#   benches/scripts/pipelined-vs-redis.sh          # ROUNDS=5
source "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-5}
D=$(mktemp -d); mkdir -p "$D/t" "$D/r"
PT=$(free_port); PR=$(free_port)
taskset -c 0 "$TIERKV" --port "$PT" --dir "$D/t" --save '' >/dev/null 2>&1 &
T_PID=$!
taskset -c 0 redis-server --port "$PR" --dir "$D/r" --save '' --appendonly yes \
    --appendfsync everysec --daemonize no >/dev/null 2>&1 &
R_PID=$!
trap 'stop $T_PID; stop $R_PID; rm -rf "$D"' EXIT
for port in $PT $PR; do wait_ready "$port" >/dev/null; done
machine
OUT=$RESULTS/pipelined-vs-redis.csv
: >"$OUT"
for round in $(seq 1 "$ROUNDS"); do
    for P in 16 64; do
        for s in tierkv:$PT redis:$PR; do
            name=${s%%:*}; port=${s##*:}
            taskset -c 1 redis-benchmark -p "$port" -t set,get,incr -n 1000000 -r 1000000 -c 50 -P "$P" --csv \
                | grep -v '^"test"' | sed "s/^/$round,$name,P$P,/" >>"$OUT"
        done
    done
done
python3 - "$OUT" <<'PY'
import csv, statistics, sys
rows = {}
for r in csv.reader(open(sys.argv[1])):
    rows.setdefault((r[2], r[3]), {}).setdefault(r[1], []).append(float(r[4]))
for (p, t), by in sorted(rows.items()):
    m = {n: statistics.median(v) for n, v in by.items()}
    print(f"{t} {p}: tierkv {m['tierkv']/1e3:.0f} K, redis {m['redis']/1e3:.0f} K, ratio {m['tierkv']/m['redis']:.2f}")
PY
