#!/usr/bin/env bash
# Figure "Durability (b)", repeatable: restart time of tierkv (WAL replay; checkpoint load) and
# Redis (RDB load; AOF replay) over the same N keys (16-byte keys, 32-byte pseudo-random values,
# loaded by tierkv-bench --load-only). Data directories are prepared once under $WORK, then each
# restart is timed ROUNDS times, the four kinds alternating, from the server's own log line.
# BEFORE_TIMING / AFTER_TIMING: optional commands run around the timed restarts (e.g. to pause
# other work on a shared machine). Usage: recovery-compare.sh [N] [ROUNDS]
source "$(dirname "$0")/common.sh"
N=${1:-1000000}; ROUNDS=${2:-3}
WORK=${WORK:-/tmp/tierkv-recovery-$N}
OUT=$RESULTS/recovery-compare-$N.txt; : >"$OUT"
TA=(--appendonly yes --appendfsync everysec --save '')
RA_RDB=(--appendonly no --save '')
RA_AOF=(--appendonly yes --appendfsync everysec --save '' --auto-aof-rewrite-percentage 0)
load() { "$BENCH" -t 127.0.0.1:"$1" -n "$N" --key-size 16 --value-size 32 --load-only --threads 2 --progress never 2>&1 | grep -E '^\s+insert' | head -1; }
echo "$(machine) N=$N rounds=$ROUNDS" | tee -a "$OUT"

if [ ! -f "$WORK/.ready" ]; then
  rm -rf "$WORK"; mkdir -p "$WORK"/{tkv-wal,tkv-ckpt,redis-rdb,redis-aof}
  P=$(free_port)
  start_tierkv "$P" "$WORK/tkv-wal" "$WORK/load.log" "${TA[@]}"; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
  stop "$TIERKV_PID"
  cp -r "$WORK/tkv-wal/." "$WORK/tkv-ckpt/"
  start_tierkv "$P" "$WORK/tkv-ckpt" "$WORK/load.log" "${TA[@]}"; wait_ready "$P" >/dev/null
  redis-cli -p "$P" save >/dev/null; stop "$TIERKV_PID"
  start_redis "$P" "$WORK/redis-rdb" "$WORK/load.log" "${RA_RDB[@]}"; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
  redis-cli -p "$P" save >/dev/null; redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; wait "$REDIS_PID" 2>/dev/null || true
  start_redis "$P" "$WORK/redis-aof" "$WORK/load.log" "${RA_AOF[@]}"; wait_ready "$P" >/dev/null; load "$P" | tee -a "$OUT"
  redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; wait "$REDIS_PID" 2>/dev/null || true
  touch "$WORK/.ready"
fi
for d in tkv-wal tkv-ckpt redis-rdb redis-aof; do echo "$d bytes=$(du -sb "$WORK/$d" | cut -f1)" | tee -a "$OUT"; done

# One timed restart: kind, then prints "kind ms keys cpu_s".
restart() {
  local kind=$1 P ms keys cpu log=$WORK/restart.log
  P=$(free_port)
  case $kind in
    tkv-*) start_tierkv "$P" "$WORK/$kind" "$log" "${TA[@]}"; PID=$TIERKV_PID ;;
    redis-rdb) start_redis "$P" "$WORK/$kind" "$log" "${RA_RDB[@]}"; PID=$REDIS_PID ;;
    redis-aof) start_redis "$P" "$WORK/$kind" "$log" "${RA_AOF[@]}"; PID=$REDIS_PID ;;
  esac
  wait_ready "$P" >/dev/null
  cpu=$(awk '{print ($14+$15)/100}' /proc/"$PID"/stat)
  keys=$(redis-cli -p "$P" dbsize)
  case $kind in
    tkv-*) ms=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'recovered.* ms=[0-9]*' | tail -1 | grep -o '[0-9]*$') ;;
    *) ms=$(grep -E 'DB loaded from' "$log" | tail -1 | grep -o '[0-9.]* seconds' | awk '{printf "%d", $1*1000}') ;;
  esac
  case $kind in
    tkv-*) stop "$PID" ;;
    *) redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; wait "$PID" 2>/dev/null || true ;;
  esac
  echo "$kind ms=$ms keys=$keys cpu_s=$cpu"
}
${BEFORE_TIMING:-true}
for r in $(seq "$ROUNDS"); do
  for kind in tkv-wal redis-aof tkv-ckpt redis-rdb; do restart "$kind" | tee -a "$OUT"; done
done
${AFTER_TIMING:-true}
