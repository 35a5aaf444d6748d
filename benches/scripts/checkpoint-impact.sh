#!/usr/bin/env bash
# Figure "Durability (c)": GET/SET tail latency (YCSB A, closed loop, 50 connections) with
# back-to-back background saves vs without. tierkv: BGSAVE = an MVCC-snapshot checkpoint on a
# blocking thread; Redis: fork + RDB. Both without WAL/AOF, so the save is the only disk writer.
# Usage: checkpoint-impact.sh [KEYS] [VALUE_SIZE] [SECONDS] (default 1000000 1024 20).
source "$(dirname "$0")/common.sh"
K=${1:-1000000}; V=${2:-1024}; S=${3:-20}
OUT=$RESULTS/checkpoint-impact.txt; : >"$OUT"
run() { # label port
  "$BENCH" -t 127.0.0.1:"$2" -w a --dist zipf -n "$K" --value-size "$V" -c 50 --threads 1 -d "$S" \
    --no-load --progress never 2>&1 | sed -n '/^\[target run/,/^$/p' | sed "s/^/$1 /" | tee -a "$OUT"
}
saver() { # port: start a save whenever none runs, until killed
  while :; do
    if redis-cli -p "$1" info persistence | grep -q 'rdb_bgsave_in_progress:0'; then redis-cli -p "$1" bgsave >/dev/null; fi
    sleep 0.1
  done
}
for name in ${SERVERS:-redis tierkv}; do
  D=$(mktemp -d -p /tmp); P=$(free_port)
  if [ $name = tierkv ]; then start_tierkv "$P" "$D" "$D.log" --appendonly no --save ''; PID=$TIERKV_PID
  else start_redis "$P" "$D" "$D.log" --appendonly no --save ''; PID=$REDIS_PID; fi
  wait_ready "$P" >/dev/null
  echo "$(machine) $name keys=$K value=$V" | tee -a "$OUT"
  "$BENCH" -t 127.0.0.1:"$P" -n "$K" --value-size "$V" --load-only --threads 1 --progress never 2>&1 | grep 'load round' | tee -a "$OUT"
  t0=$(date +%s.%N); redis-cli -p "$P" save >/dev/null; t1=$(date +%s.%N)
  echo "$name foreground SAVE: $(python3 -c "print(f'{$t1-$t0:.2f}')") s, dir $(du -sb "$D" | cut -f1) bytes" | tee -a "$OUT"
  run "$name-quiet" "$P"
  saver "$P" & SAVER=$!
  run "$name-bgsave" "$P"
  kill $SAVER; wait $SAVER 2>/dev/null || true
  redis-cli -p "$P" info persistence | grep -E 'rdb_saves|rdb_last_bgsave_status|checkpoint_last_duration_ms|rdb_last_bgsave_time_sec' | tee -a "$OUT"
  redis-cli -p "$P" info stats | grep -E 'latest_fork_usec|total_forks' | tee -a "$OUT" || true
  grep -c 'Background saving terminated with success\|checkpoint' "$D.log" | sed "s/^/$name save log lines: /" | tee -a "$OUT" || true
  stop $PID; rm -rf "$D" "$D.log"
done
