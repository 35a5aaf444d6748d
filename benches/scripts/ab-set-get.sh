#!/usr/bin/env bash
# Hot-path A/B: redis-benchmark SET and GET against two tierkv builds (BASE, the build before a
# change, and TIERKV, the build with it) and Debian's redis-server, rounds interleaved so all
# see the same machine load; server pinned to core 0, redis-benchmark to core 1; medians.
#
#   BASE=/path/to/old/tierkv-server benches/scripts/ab-set-get.sh          # 5 rounds, -P 1 and 16
#   ROUNDS=9 PIPELINES="16" N=2000000 BASE=... benches/scripts/ab-set-get.sh
source "$(dirname "$0")/common.sh"

BASE=${BASE:?set BASE to the tierkv-server built before the change}
ROUNDS=${ROUNDS:-5}
PIPELINES=${PIPELINES:-"1 16"}
N=${N:-1000000}
D=$(mktemp -d)
PB=$(free_port); PT=$(free_port); PR=$(free_port)
mkdir -p "$D/b" "$D/t" "$D/r"
taskset -c 0 "$BASE" --port "$PB" --dir "$D/b" --appendonly no --save '' 2>"$D/b.log" >/dev/null &
B_PID=$!
taskset -c 0 "$TIERKV" --port "$PT" --dir "$D/t" --appendonly no --save '' 2>"$D/t.log" >/dev/null &
T_PID=$!
taskset -c 0 redis-server --port "$PR" --dir "$D/r" --appendonly no --save '' --daemonize no >"$D/r.log" 2>&1 &
R_PID=$!
trap 'stop $B_PID; stop $T_PID; stop $R_PID; rm -rf "$D"' EXIT
for port in $PB $PT $PR; do wait_ready "$port" >/dev/null; done

machine
OUT=$RESULTS/ab-set-get.csv
: >"$OUT"
for round in $(seq 1 "$ROUNDS"); do
    for P in $PIPELINES; do
        for S in base:$PB tierkv:$PT redis:$PR; do
            name=${S%%:*}; port=${S##*:}
            taskset -c 1 redis-benchmark -p "$port" -t set,get -n "$N" -r 1000000 -c 50 -P "$P" --csv \
                | grep -v '^"test"' | sed "s/^/$round,$name,P$P,/" | tee -a "$OUT"
        done
    done
done
echo "# medians (ops/s; ratio to redis)"
python3 - "$OUT" <<'EOF'
import csv, statistics, sys
rows = {}
for r in csv.reader(open(sys.argv[1])):
    if len(r) < 5:
        continue
    _, name, p, test, rps = r[0], r[1], r[2], r[3], float(r[4])
    rows.setdefault((p, test), {}).setdefault(name, []).append(rps)
for (p, test), by in sorted(rows.items()):
    med = {n: statistics.median(v) for n, v in by.items()}
    r = med.get("redis", float("nan"))
    print(f"{test} {p}: " + ", ".join(f"{n} {med[n]/1e3:.1f} K ({med[n]/r:.2f}x)" for n in ("base", "tierkv", "redis") if n in med)
          + f"; tierkv/base {med.get('tierkv', 0)/med.get('base', 1):.3f}")
EOF
