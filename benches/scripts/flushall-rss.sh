#!/usr/bin/env bash
# RSS after FLUSHALL (issue #9: back within 10% of a fresh server's, within seconds), tierkv and
# Debian's redis-server: RSS fresh (after one SET), loaded (KEYS keys of VALUES bytes, then
# CHURN seconds of overwrites), then once a second for 10 s after FLUSHALL.
#
#   benches/scripts/flushall-rss.sh                 # 500 K keys of 16..2000 bytes, 20 s churn
source "$(dirname "$0")/common.sh"

KEYS=${KEYS:-500000}
VALUES=${VALUES:-16-2000}
CHURN=${CHURN:-20}
SERVERS=${SERVERS:-"tierkv redis"}

rss() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory_rss" { print $2 }'; }

machine
for server in $SERVERS; do
    port=$(free_port)
    dir=$(mktemp -d)
    case $server in
        redis) taskset -c 0 redis-server --port "$port" --dir "$dir" --save '' --daemonize no >/dev/null 2>&1 & ;;
        tierkv) taskset -c 0 "$TIERKV" --port "$port" --dir "$dir" --save '' --appendonly no >/dev/null 2>&1 & ;;
    esac
    pid=$!
    wait_ready "$port" >/dev/null
    redis-cli -p "$port" set fresh x >/dev/null
    sleep 1
    fresh=$(rss "$port")
    taskset -c 1 "$BENCH" -t "127.0.0.1:$port" --mix set=100 -n "$KEYS" --value-size "$VALUES" \
        -c 50 -d "$CHURN" --progress never >/dev/null 2>&1
    loaded=$(rss "$port")
    redis-cli -p "$port" flushall >/dev/null
    after=()
    for _ in $(seq 1 10); do
        sleep 1
        after+=("$(rss "$port")")
    done
    echo "$server: fresh $fresh, loaded $loaded, after FLUSHALL (1..10 s): ${after[*]}"
    python3 -c "f=$fresh; a=${after[-1]}; print(f'  $server after 10 s: {a/1e6:.1f} MB = {a/f:.2f}x fresh ({(a-f)/1e6:+.1f} MB)')"
    stop "$pid"
    rm -rf "$dir"
done
