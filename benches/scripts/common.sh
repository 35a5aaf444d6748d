#!/usr/bin/env bash
# Shared helpers for the figure scripts: start tierkv-server and redis-server the same way on
# free ports with throw-away data dirs, wait until they answer PING, stop exactly the PIDs we
# started (other people's processes on a shared machine are never touched).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TIERKV=${TIERKV:-$ROOT/target/release/tierkv-server}
BENCH=${BENCH:-$ROOT/target/release/tierkv-bench}
RESULTS=${RESULTS:-$ROOT/target/figures}
mkdir -p "$RESULTS"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# wait_ready PORT: poll PING every 10 ms; prints seconds waited.
wait_ready() {
    local port=$1 t0 t1
    t0=$(date +%s.%N)
    until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do sleep 0.01; done
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1-$t0:.3f}')"
}

# start_tierkv PORT DIR LOG [extra args]: sets TIERKV_PID.
start_tierkv() {
    local port=$1 dir=$2 log=$3; shift 3
    "$TIERKV" --port "$port" --dir "$dir" "$@" 2>"$log" >/dev/null &
    TIERKV_PID=$!
}

# start_redis PORT DIR LOG [extra args]: sets REDIS_PID.
start_redis() {
    local port=$1 dir=$2 log=$3; shift 3
    redis-server --port "$port" --dir "$dir" --daemonize no "$@" >"$log" 2>&1 &
    REDIS_PID=$!
}

# stop PID: SIGTERM, then wait for it.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

machine() { echo "# $(date -u +%FT%TZ) $(nproc) cpu, $(uptime | sed 's/.*load/load/')"; }
