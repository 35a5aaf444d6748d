#!/usr/bin/env bash
# Active expiry under a burst (issue #13 item 5): KEYS keys (default 1 M) all due in the same
# millisecond, nobody touching them; how fast each server reclaims them (DBSIZE and RSS sampled
# every 100 ms), and GET p99.9 on other keys meanwhile (redis-benchmark, GETS requests, default
# 300 000, over 1 000 live keys, started at the deadline).
# Server pinned to core 0, clients to core 1, tierkv and Debian's redis-server in turn, both
# without persistence (the WAL's cost per delete is measured elsewhere).
#
#   benches/scripts/expiry-burst.sh                 # 1 M keys, both servers
#   KEYS=200000 SERVERS=tierkv benches/scripts/expiry-burst.sh
#
# Prints one line per server: keys, seconds from the deadline until DBSIZE reached the live
# keys (and the rate), RSS before the deadline and after, GET p99.9 during the burst.
source "$(dirname "$0")/common.sh"

KEYS=${KEYS:-1000000}
SERVERS=${SERVERS:-"tierkv redis"}
LEAD_MS=${LEAD_MS:-8000}

info_field() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'; }

run_one() {
    local server=$1 port dir log pid deadline t0 n rss_before rss_after p999 gets
    port=$(free_port)
    dir=$(mktemp -d)
    log=$RESULTS/expiry-burst-$server.log
    case $server in
        redis) taskset -c 0 redis-server --port "$port" --dir "$dir" --save '' --appendonly no \
                   --daemonize no >"$log" 2>&1 &
            pid=$! ;;
        tierkv) taskset -c 0 "$TIERKV" --port "$port" --dir "$dir" --save '' --appendonly no \
                    2>"$log" >/dev/null &
            pid=$! ;;
    esac
    wait_ready "$port" >/dev/null
    # Every key gets the same absolute deadline, LEAD_MS from now (time to load them first).
    deadline=$(( $(date +%s%3N) + LEAD_MS ))
    python3 - "$KEYS" "$deadline" <<'EOF' | taskset -c 1 redis-cli -p "$port" --pipe >/dev/null
import sys
n, at = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
for i in range(n):
    k = b"exp:%d" % i
    out.write(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$8\r\nvalue123\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n"
              % (len(k), k, len(at), at.encode()))
EOF
    taskset -c 1 redis-benchmark -p "$port" -t set -n 1000 -r 1000 -q >/dev/null
    local live
    live=$(redis-cli -p "$port" dbsize)
    live=$((live - KEYS))
    rss_before=$(info_field "$port" memory used_memory_rss)
    now=$(date +%s%3N)
    if [ "$now" -ge "$deadline" ]; then
        echo "# $server: loading took longer than LEAD_MS=$LEAD_MS; raise it" >&2
    fi
    sleep "$(python3 -c "print(max(0, ($deadline - $now) / 1000))")"
    # GETs on the live keys while the burst expires.
    taskset -c 1 redis-benchmark -p "$port" -t get -n "${GETS:-300000}" -r 1000 -c 50 --precision 3 \
        >"$RESULTS/expiry-burst-$server-get.txt" 2>&1 &
    gets=$!
    t0=$(date +%s.%N)
    while :; do
        n=$(redis-cli -p "$port" dbsize)
        [ "$n" -le "$live" ] && break
        if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $t0 > 120 else 1)"; then
            echo "# $server: $n keys left after 120 s" >&2
            break
        fi
        sleep 0.1
    done
    local secs
    secs=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
    wait "$gets" 2>/dev/null || true
    sleep 1
    rss_after=$(info_field "$port" memory used_memory_rss)
    p999=$(awk '/99.900%/ { print $3; exit }' "$RESULTS/expiry-burst-$server-get.txt")
    stop "$pid"
    rm -rf "$dir"
    python3 -c "print(f'$server keys=$KEYS reclaimed_in={$secs}s rate={$KEYS/max($secs,0.001)/1000:.0f}K/s rss_before={$rss_before/1e6:.0f}MB rss_after={$rss_after/1e6:.0f}MB get_p99.9=${p999:-?}')"
}

machine
for s in $SERVERS; do
    run_one "$s"
done
