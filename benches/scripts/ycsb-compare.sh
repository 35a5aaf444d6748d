#!/usr/bin/env bash
# Figure "YCSB (tierkv-bench)": YCSB A, B, C at Zipf 0.99 and uniform, Redis as the target and
# tierkv as --compare (identical seeded streams, ratio = tierkv / Redis), both servers started
# the same way without persistence. Writes JSON and SVG charts under docs/bench/ycsb-<w>-<dist>-compare/.
# Usage: ycsb-compare.sh [KEYS] [SECONDS] [ROUNDS] (default 1000000 10 1).
source "$(dirname "$0")/common.sh"
K=${1:-1000000}; S=${2:-10}; R=${3:-1}
OUT=$RESULTS/ycsb-compare.txt; : >"$OUT"
D=$(mktemp -d -p /tmp); PT=$(free_port); PR=$(free_port); mkdir -p "$D/t" "$D/r"
start_tierkv "$PT" "$D/t" "$D/t.log" --appendonly no --save ''
start_redis "$PR" "$D/r" "$D/r.log" --appendonly no --save ''
trap 'stop $TIERKV_PID; stop $REDIS_PID; rm -rf "$D"' EXIT
wait_ready "$PT" >/dev/null; wait_ready "$PR" >/dev/null
for W in a b c; do
  for DIST in zipf uniform; do
    P=$ROOT/docs/bench/ycsb-$W-$DIST-compare; mkdir -p "$P"
    echo "$(machine) ycsb $W $DIST keys=$K" | tee -a "$OUT"
    "$BENCH" -t 127.0.0.1:"$PR" --compare 127.0.0.1:"$PT" -w $W --dist $DIST -n "$K" --value-size 1024 \
      -c 50 -P 1 --threads 1 -d "$S" --rounds "$R" --flushall --progress never \
      --json "$P/result.json" --plot-dir "$P" 2>&1 | tee -a "$OUT" | sed -n '/total\]/,/^$/p;/ratio/,$p'
  done
done
