#!/usr/bin/env bash
# Figure "Durability (b)": restart time. Loads N SETs (16-byte keys `key:%012d`, 32-byte values,
# pipeline 64) then restarts and times until the server answers PING and what the server logs:
#   tierkv from the WAL only, tierkv from a checkpoint (SAVE first), Redis from RDB (SAVE), Redis from AOF.
# Usage: recovery.sh [N] [redis-benchmark|tierkv-bench] (default 1000000 redis-benchmark).
# redis-benchmark's values are a constant byte ('x'), which the LZ4 blocks of a tierkv checkpoint
# compress to almost nothing; tierkv-bench's values are pseudo-random filler, so that loader gives
# the honest checkpoint size (`--load-only`, 16-byte keys, 32-byte values, pipeline 64).
source "$(dirname "$0")/common.sh"
N=${1:-1000000}; LOADER=${2:-redis-benchmark}
OUT=$RESULTS/recovery-$LOADER.txt; : >"$OUT"
load() {
  if [ "$LOADER" = tierkv-bench ]; then
    "$BENCH" -t 127.0.0.1:"$1" -n "$N" --key-size 16 --value-size 32 --load-only --threads 1 --progress never 2>&1 | grep -i -E 'load|error' | head -3
  else
    redis-benchmark -p "$1" -t set -n "$N" -r 100000000 -d 32 -P 64 -c 50 -q | tr '\r' '\n' | grep -v '^$' | tail -1
  fi
}
row() { # name port dir log ready_s
  local keys bytes; keys=$(redis-cli -p "$2" dbsize); bytes=$(du -sb "$3" | cut -f1)
  echo "$1 keys=$keys dir_bytes=$bytes ready_s=$5 log: $(grep -E 'recovered|DB loaded' "$4" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')" | tee -a "$OUT"
}
echo "$(machine) N=$N loader=$LOADER" | tee -a "$OUT"

# tierkv: WAL only, then checkpoint + (empty) WAL tail.
D=$(mktemp -d -p /tmp); P=$(free_port); A=(--appendonly yes --appendfsync everysec --save '')
start_tierkv "$P" "$D" "$D.1.log" "${A[@]}"; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
stop $TIERKV_PID
start_tierkv "$P" "$D" "$D.2.log" "${A[@]}"; R=$(wait_ready "$P"); row tierkv-wal "$P" "$D" "$D.2.log" "$R"
redis-cli -p "$P" save >/dev/null; ls -la "$D" | tee -a "$OUT"; stop $TIERKV_PID
start_tierkv "$P" "$D" "$D.3.log" "${A[@]}"; R=$(wait_ready "$P"); row tierkv-checkpoint "$P" "$D" "$D.3.log" "$R"
stop $TIERKV_PID; rm -rf "$D" "$D".*.log

# Redis: RDB.
D=$(mktemp -d -p /tmp); P=$(free_port)
start_redis "$P" "$D" "$D.1.log" --appendonly no --save ''; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
redis-cli -p "$P" save >/dev/null; redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; wait $REDIS_PID 2>/dev/null || true
start_redis "$P" "$D" "$D.2.log" --appendonly no --save ''; R=$(wait_ready "$P"); row redis-rdb "$P" "$D" "$D.2.log" "$R"
stop $REDIS_PID; rm -rf "$D" "$D".*.log

# Redis: AOF (multi-part, no rewrite happened: all commands are in the incr file).
D=$(mktemp -d -p /tmp); P=$(free_port); A=(--appendonly yes --appendfsync everysec --save '' --auto-aof-rewrite-percentage 0)
start_redis "$P" "$D" "$D.1.log" "${A[@]}"; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; wait $REDIS_PID 2>/dev/null || true
start_redis "$P" "$D" "$D.2.log" "${A[@]}"; R=$(wait_ready "$P"); row redis-aof "$P" "$D" "$D.2.log" "$R"
ls -laR "$D" | tee -a "$OUT"
stop $REDIS_PID; rm -rf "$D" "$D".*.log
