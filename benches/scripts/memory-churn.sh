#!/usr/bin/env bash
# Memory under overwrite churn with mixed value sizes (issue #9): RSS, used_memory, value page
# bytes against live value bytes, throughput and tails, for tierkv and Debian's redis-server on
# the same workload, rounds interleaved in one script. Each server runs alone: pinned to core 0,
# the load generator to core 1, both with default settings (as a user would run them).
#
#   benches/scripts/memory-churn.sh                        # the issue's workload, 60 s, 3 rounds
#   DURATION=600 ROUNDS=1 benches/scripts/memory-churn.sh   # the 10-minute steady state
#   MIX=get=20,set=20,insert=5,scan=5,rmw=10,incr=10,mget=10,mset=10,multi=5,txn=5 \
#     DURATION=240 benches/scripts/memory-churn.sh         # the 4-minute mixed run
#   SERVERS="tierkv base redis" BASE=/path/to/old/tierkv-server ...   # before/after a change
#   TIERKV_ARGS="--activedefrag no" ...                   # the same without compaction
#
# Prints one line per (round, server) and the medians; writes each run's RSS timeline (one
# sample every SAMPLE seconds) to $RESULTS/memory-churn-<server>-<round>.tsv.
source "$(dirname "$0")/common.sh"

DURATION=${DURATION:-60}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-500000}
MIX=${MIX:-get=50,set=50}
VALUES=${VALUES:-16-2000}
CLIENTS=${CLIENTS:-50}
SAMPLE=${SAMPLE:-5}
SERVERS=${SERVERS:-"redis tierkv"}
BASE=${BASE:-}
TIERKV_ARGS=${TIERKV_ARGS:-}

info_field() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'; }

# run_one SERVER ROUND: prints "server round rss_end rss_peak used ratio ops p999_us max_us
# moved_bytes" (moved_bytes: compaction's bytes moved, `-` for redis)
run_one() {
    local server=$1 round=$2 port dir log pid bin timeline peak=0 t=0
    port=$(free_port)
    dir=$(mktemp -d)
    log=$RESULTS/memory-churn-$server-$round.log
    timeline=$RESULTS/memory-churn-$server-$round.tsv
    case $server in
        redis) taskset -c 0 redis-server --port "$port" --dir "$dir" --daemonize no >"$log" 2>&1 &
            pid=$! ;;
        tierkv|base)
            bin=$TIERKV
            [ "$server" = base ] && bin=$BASE
            # shellcheck disable=SC2086
            taskset -c 0 "$bin" --port "$port" --dir "$dir" $TIERKV_ARGS 2>"$log" >/dev/null &
            pid=$! ;;
    esac
    wait_ready "$port" >/dev/null
    printf 't_s\trss\tused_memory\tvalue_pages_bytes\tvalue_bytes_live\n' >"$timeline"
    (
        while sleep "$SAMPLE"; do
            t=$((t + SAMPLE))
            printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$(info_field "$port" memory used_memory_rss)" \
                "$(info_field "$port" memory used_memory)" \
                "$(info_field "$port" memory value_pages_bytes)" \
                "$(info_field "$port" memory value_bytes_live)" >>"$timeline"
        done
    ) &
    local sampler=$!
    local report
    report=$(taskset -c 1 "$BENCH" -t "127.0.0.1:$port" --mix "$MIX" -n "$KEYS" \
        --value-size "$VALUES" -c "$CLIENTS" -d "$DURATION" --progress never 2>&1)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local rss used pages live ops p999 max moved
    rss=$(info_field "$port" memory used_memory_rss)
    moved=$(info_field "$port" memory compaction_bytes_moved)
    used=$(info_field "$port" memory used_memory)
    pages=$(info_field "$port" memory value_pages_bytes)
    live=$(info_field "$port" memory value_bytes_live)
    peak=$(awk 'NR > 1 && $2 > m { m = $2 } END { printf "%d", m }' "$timeline")
    [ "$rss" -gt "$peak" ] && peak=$rss
    # The run phase's totals: ops/s from its header, the worst p99.9 and max over its ops.
    ops=$(echo "$report" | awk '/run round/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ops/s,") print $i }')
    p999=$(echo "$report" | awk '/run round/ { run = 1; next } run && NF == 8 && $1 != "op" { if ($7 > m) m = $7 } END { printf "%d", m }')
    max=$(echo "$report" | awk '/run round/ { run = 1; next } run && NF == 8 && $1 != "op" { if ($8 > m) m = $8 } END { printf "%d", m }')
    local ratio=-
    [ -n "$pages" ] && [ -n "$live" ] && [ "$live" -gt 0 ] &&
        ratio=$(python3 -c "print(f'{$pages/$live:.2f}')")
    stop "$pid"
    rm -rf "$dir"
    echo "$server $round $rss $peak $used $ratio $ops $p999 $max ${moved:--}"
}

machine
echo "# workload: --mix $MIX -n $KEYS --value-size $VALUES -c $CLIENTS -d $DURATION; tierkv args: ${TIERKV_ARGS:-defaults}"
echo "# server round rss_end_bytes rss_peak_bytes used_memory page/live ops/s p99.9_us max_us moved_bytes"
lines=()
for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        line=$(run_one "$server" "$round")
        echo "$line"
        lines+=("$line")
    done
done
echo "# medians"
printf '%s\n' "${lines[@]}" | python3 -c '
import statistics, sys
rows = {}
for line in sys.stdin:
    f = line.split()
    rows.setdefault(f[0], []).append(f)
med = lambda xs: statistics.median(float(x) for x in xs if x != "-") if any(x != "-" for x in xs) else float("nan")
for server, rs in rows.items():
    cols = list(zip(*rs))
    print(f"{server}: rss_end {med(cols[2])/1e6:.0f} MB, rss_peak {med(cols[3])/1e6:.0f} MB, "
          f"used_memory {med(cols[4])/1e6:.0f} MB, page/live {med(cols[5]):.2f}, "
          f"{med(cols[6])/1e3:.1f} K ops/s, p99.9 {med(cols[7])/1e3:.2f} ms, max {med(cols[8])/1e3:.1f} ms, "
          f"compaction moved {med(cols[9])/1e6:.0f} MB")
'
