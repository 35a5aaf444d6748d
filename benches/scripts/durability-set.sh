#!/usr/bin/env bash
# Figure "Durability (a)": SET throughput, 50 clients, no pipeline, under appendfsync always and
# everysec, tierkv's WAL vs Redis's AOF in the same directory tree (/tmp), servers alternating.
# Usage: durability-set.sh [N] (default 200000).
source "$(dirname "$0")/common.sh"
N=${1:-200000}
OUT=$RESULTS/durability-set.csv; : >"$OUT"
for F in always everysec; do
  for name in redis tierkv; do
    D=$(mktemp -d -p /tmp); P=$(free_port)
    if [ $name = tierkv ]; then
      start_tierkv "$P" "$D" "$D.log" --appendonly yes --appendfsync $F --save ''; PID=$TIERKV_PID
    else
      start_redis "$P" "$D" "$D.log" --appendonly yes --appendfsync $F --save ''; PID=$REDIS_PID
    fi
    wait_ready "$P" >/dev/null
    echo "$(machine) $name appendfsync $F -n $N" | tee -a "$OUT"
    redis-benchmark -p "$P" -t set -n "$N" -r 1000000 -c 50 -P 1 --csv | sed "s/^/$name,$F,/" | tee -a "$OUT"
    redis-cli -p "$P" info persistence | grep -E 'aof_current_size|wal_fsyncs|aof_last_write_status' | tee -a "$OUT"
    stop $PID; rm -rf "$D" "$D.log"
  done
done
