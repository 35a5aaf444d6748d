#!/usr/bin/env bash
# The spill file under overwrite churn (issue #10: pages on SSD compacted, the file follows
# the live data). 200 K keys of 1000 B (200 MB) into --maxmemory 40mb --maxmemory-policy spill,
# then DURATION seconds of uniform overwrites; every 15 s: the spill file's bytes, the live
# bytes on SSD and RSS. BASE=path/to/other/tierkv-server runs that build too, interleaved.
#
#   benches/scripts/tier-spill-churn.sh
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-60}
BUILDS=("$TIERKV")
[ -n "${BASE:-}" ] && BUILDS=("$BASE" "$TIERKV")
machine
for build in "${BUILDS[@]}"; do
    port=$(free_port)
    dir=$(mktemp -d)
    taskset -c 0 "$build" --port "$port" --dir "$dir" --save '' --maxmemory 40mb \
        --maxmemory-policy spill >/dev/null 2>&1 &
    pid=$!
    wait_ready "$port" >/dev/null
    echo "== $build"
    taskset -c 1 "$BENCH" -t "127.0.0.1:$port" --mix set=100 --dist uniform -n 200000 \
        --value-size 1000 -c 50 -d "$DURATION" --progress never 2>&1 | grep -A3 "run round" &
    bench=$!
    for _ in $(seq 15 15 "$DURATION"); do
        sleep 15
        info=$(redis-cli -p "$port" info all | tr -d '\r')
        get() { echo "$info" | awk -F: -v k="$1" '$1 == k { print $2 }'; }
        echo "  ssd_bytes $(get tiering_ssd_bytes) ssd_live_bytes $(get tiering_ssd_live_bytes)" \
            "pages_on_ssd $(get tiering_value_pages_on_ssd) rss $(get used_memory_rss)" \
            "used_memory $(get used_memory)"
    done
    wait $bench
    stop "$pid"
    rm -rf "$dir"
done
