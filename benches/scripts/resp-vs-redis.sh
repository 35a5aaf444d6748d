#!/usr/bin/env bash
# Figure "Server vs Redis": redis-benchmark SET/GET against tierkv-server and redis-server,
# both started the same way with no persistence, alternating server per pipeline depth so both
# see the same machine load. Usage: resp-vs-redis.sh [N] (default 2000000).
source "$(dirname "$0")/common.sh"
N=${1:-2000000}
D=$(mktemp -d); PT=$(free_port); PR=$(free_port)
mkdir -p "$D/t" "$D/r"
start_tierkv "$PT" "$D/t" "$D/t.log" --appendonly no --save ''
start_redis "$PR" "$D/r" "$D/r.log" --appendonly no --save ''
wait_ready "$PT" >/dev/null; wait_ready "$PR" >/dev/null
trap 'stop $TIERKV_PID; stop $REDIS_PID; rm -rf "$D"' EXIT
OUT=$RESULTS/resp-vs-redis.csv; : >"$OUT"
for P in 1 16; do
  for S in redis:$PR tierkv:$PT; do
    name=${S%%:*}; port=${S##*:}
    echo "$(machine) $name -P $P -n $N" | tee -a "$OUT"
    redis-benchmark -p "$port" -t set,get -n "$N" -r 1000000 -c 50 -P "$P" --csv \
      | sed "s/^/$name,P$P,/" | tee -a "$OUT"
  done
done
echo "# sanity: -t set,get,incr,mset -n 100000 against tierkv" | tee -a "$OUT"
redis-benchmark -p "$PT" -t set,get,incr,mset -n 100000 --csv 2>&1 | tee -a "$OUT"
redis-cli -p "$PT" info stats | grep -i 'error\|rejected' | tee -a "$OUT" || true
