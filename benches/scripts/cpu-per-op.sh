#!/usr/bin/env bash
# Figure "CPU per operation": server CPU-seconds (utime + stime of the server process, from
# /proc/PID/stat) per request during redis-benchmark, beside the throughput, for Redis and one or
# more tierkv binaries started the same way, servers alternating within each test so they see the
# same machine load. CPU per operation is robust against a noisy shared machine in a way
# throughput is not: other tenants steal wall time, not the server's own CPU time.
#
# Usage: cpu-per-op.sh [ROUNDS] [NAME=BINARY[,EXTRA-ARG...] ...]
#        (default: 1 round, tierkv=target/release/tierkv-server; e.g. t1=target/release/tierkv-server,--threads,1)
# Env: N (requests for the -P 16 tests, default 1000000), N1 (the -P 1 tests, default N),
#      N64 (the -P 64 test, 1000000), NALWAYS (the appendfsync always test, 200000),
#      TESTS (default "p1 p16 p64 always").
# Output: target/figures/cpu-per-op.csv with
#   round,test,server,requests_per_sec,cpu_us_per_op,p50_ms,p99_ms
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-1}; shift || true
SERVERS=("$@")
[ ${#SERVERS[@]} -eq 0 ] && SERVERS=("tierkv=$TIERKV")
N=${N:-1000000}; N1=${N1:-$N}; N64=${N64:-1000000}; NALWAYS=${NALWAYS:-200000}
TESTS=${TESTS:-"p1 p16 p64 always"}
TCK=$(getconf CLK_TCK)
OUT=$RESULTS/cpu-per-op.csv
echo "# $(machine)" | tee "$OUT"
echo "round,test,server,requests_per_sec,cpu_us_per_op,p50_ms,p99_ms" | tee -a "$OUT"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start NAME PORT DIR [args]: sets PID.
start() {
  local name=$1 port=$2 dir=$3; shift 3
  if [ "$name" = redis ]; then
    start_redis "$port" "$dir" "$dir.log" "$@"; PID=$REDIS_PID
  else
    local spec=${name#*=} extra=()
    IFS=, read -r -a extra <<<"$spec"
    TIERKV=${extra[0]} start_tierkv "$port" "$dir" "$dir.log" "$@" "${extra[@]:1}"; PID=$TIERKV_PID
  fi
  wait_ready "$port" >/dev/null
}

# measure ROUND TEST NAME PID PORT REQUESTS redis-benchmark-args...
measure() {
  local round=$1 test=$2 name=${3%%=*} pid=$4 port=$5 n=$6; shift 6
  local before after line
  before=$(cpu_ticks "$pid")
  line=$(redis-benchmark -p "$port" -n "$n" "$@" --csv | tail -1)
  after=$(cpu_ticks "$pid")
  # "SET","rps","avg","min","p50","p95","p99","max"
  echo "$line" | tr -d '"' | awk -F, -v r="$round" -v t="$test" -v s="$name" -v n="$n" \
    -v d=$((after - before)) -v tck="$TCK" \
    '{printf "%s,%s,%s,%.0f,%.2f,%s,%s\n", r, t, s, $2, d / tck * 1e6 / n, $5, $7}' | tee -a "$OUT"
}

# run_volatile ROUND: servers with no persistence, each test alternating between them.
run_volatile() {
  local round=$1 i D
  local -a pids ports
  D=$(mktemp -d -p /tmp)
  local all=(redis "${SERVERS[@]}")
  for i in "${!all[@]}"; do
    ports[i]=$(free_port); mkdir -p "$D/$i"
    start "${all[i]}" "${ports[i]}" "$D/$i" --appendonly no --save ''; pids[i]=$PID
  done
  for t in $TESTS; do
    for i in "${!all[@]}"; do
      case $t in
        p1) measure "$round" set-P1 "${all[i]}" "${pids[i]}" "${ports[i]}" "$N1" -t set -r 1000000 -c 50 -P 1
            measure "$round" get-P1 "${all[i]}" "${pids[i]}" "${ports[i]}" "$N1" -t get -r 1000000 -c 50 -P 1 ;;
        p16) measure "$round" set-P16 "${all[i]}" "${pids[i]}" "${ports[i]}" "$N" -t set -r 1000000 -c 50 -P 16
             measure "$round" get-P16 "${all[i]}" "${pids[i]}" "${ports[i]}" "$N" -t get -r 1000000 -c 50 -P 16 ;;
        p64) measure "$round" set-P64-new "${all[i]}" "${pids[i]}" "${ports[i]}" "$N64" -t set -r 100000000 -d 32 -c 50 -P 64 ;;
      esac
    done
  done
  for i in "${!all[@]}"; do stop "${pids[i]}"; done
  rm -rf "$D"
}

# run_always ROUND: a fresh server per measurement, WAL/AOF with appendfsync always.
run_always() {
  local round=$1 s D P
  for s in redis "${SERVERS[@]}"; do
    D=$(mktemp -d -p /tmp); P=$(free_port)
    start "$s" "$P" "$D" --appendonly yes --appendfsync always --save ''
    measure "$round" set-always "$s" "$PID" "$P" "$NALWAYS" -t set -r 1000000 -c 50 -P 1
    stop "$PID"; rm -rf "$D" "$D.log"
  done
}

for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round $(machine)" | tee -a "$OUT"
  run_volatile "$round"
  case " $TESTS " in *" always "*) run_always "$round" ;; esac
done
