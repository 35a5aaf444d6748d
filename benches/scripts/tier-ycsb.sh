#!/usr/bin/env bash
# The SSD tier's YCSB figures (issue #10), all in one script on one machine:
#   - fio: 4 KiB random reads, O_DIRECT, io_uring, queue depth 32, on the disk the data dir is on;
#   - YCSB-B (get 95, set 5) and YCSB-C (get 100), 1000-byte values, Zipf 0.99 and uniform,
#     KEYS keys (200 K = 200 MB, 5x..10x the budget), against
#       ram:   tierkv all in RAM (no maxmemory),
#       tinylfu / lru: tierkv --maxmemory 40mb --maxmemory-policy spill --tiered-policy ...;
#       allram: the tier attached under a 2gb maxmemory (every read hits: CONFIGS=allram);
#     each run prints throughput, GET latency, INFO's hit ratio and SSD reads/s, RSS, and the
#     GET hit ratio of an ideal value-granular LRU cache on the run's own trace at 20 MiB (about
#     what tierkv holds of values in RAM under 40mb: the rest is the index) and at 40 MiB.
#
#   benches/scripts/tier-ycsb.sh                  # DURATION=30 KEYS=200000 CONNS=50 PIPELINE=1
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-30}
KEYS=${KEYS:-200000}
DISTS=${DISTS:-"zipf uniform"}
WORKLOADS=${WORKLOADS:-"b c"}
CONFIGS=${CONFIGS:-"ram tinylfu lru"}
CONNS=${CONNS:-50}
PIPELINE=${PIPELINE:-1}
machine
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tier-ycsb.XXXXXX")
if [ "${FIO:-1}" = 1 ] && command -v fio >/dev/null; then
    engine=io_uring
    fio --name=probe --filename="$scratch/probe" --size=4m --rw=read --ioengine=io_uring \
        --direct=1 --runtime=1 >/dev/null 2>&1 || engine=libaio
    fio --name=randread --filename="$scratch/fio.dat" --size=2g --rw=randread --bs=4k \
        --direct=1 --ioengine=$engine --iodepth=32 --runtime=15 --time_based --group_reporting \
        --output-format=terse --terse-version=3 >"$scratch/fio.out" 2>&1
    # terse v3: field 8 read IOPS; clat percentiles are fields 17..36 as "p%=usec".
    python3 - "$scratch/fio.out" "$engine" <<'PY'
import sys
f = open(sys.argv[1]).read().strip().split(";")
pct = {p.split("=")[0]: int(p.split("=")[1]) for p in f[17:37] if "=" in p}
print(f"fio randread 4k qd32 {sys.argv[2]} O_DIRECT: {int(f[7])} IOPS, clat p50 {pct.get('50.000000%')} us, p99 {pct.get('99.000000%')} us")
PY
    rm -f "$scratch/fio.dat" "$scratch/probe"
else
    echo "no fio baseline (FIO=0, or fio not installed)"
fi
field() { echo "$2" | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
for workload in $WORKLOADS; do
    case $workload in b) mix=get=95,set=5 ;; c) mix=get=100 ;; esac
    for dist in $DISTS; do
        for config in $CONFIGS; do
            port=$(free_port)
            dir=$(mktemp -d "$scratch/data.XXXXXX")
            args=()
            case $config in
                tinylfu) args=(--maxmemory 40mb --maxmemory-policy spill --tiered-policy w-tinylfu) ;;
                lru) args=(--maxmemory 40mb --maxmemory-policy spill --tiered-policy lru) ;;
                # The tier attached with room for everything: every read hits RAM (the
                # baseline of the hits' latency while misses are in flight).
                allram) args=(--maxmemory 2gb --maxmemory-policy spill) ;;
            esac
            taskset -c 0 "$TIERKV" --port "$port" --dir "$dir" --save '' "${args[@]}" >/dev/null 2>&1 &
            pid=$!
            wait_ready "$port" >/dev/null
            out=$(taskset -c 1 "$BENCH" -t "127.0.0.1:$port" --mix "$mix" --dist "$dist" -n "$KEYS" \
                --value-size 1000 -c "$CONNS" -P "$PIPELINE" -d "$DURATION" --progress never \
                --simulate-lru 20971520,41943040 2>&1)
            info=$(redis-cli -p "$port" info all)
            run=$(echo "$out" | grep -A20 "target run round")
            ops=$(echo "$run" | head -1 | sed -E 's/.* ([0-9]+) ops\/s.*/\1/')
            get=$(echo "$run" | awk '$1 == "get" { print "p50 " $4 " p99 " $6 " p99.9 " $7 }')
            lru=$(echo "$run" | grep "ideal value-granular" | sed -E 's/.*LRU of ([0-9]+) bytes.*ratio ([0-9.]+)/\1:\2/' | tr '\n' ' ')
            echo "ycsb-$workload $dist $config: $ops ops/s, GET us $get, hit $(field tiering_hit_ratio "$info"), ssd reads/s $(field tiering_ssd_reads_per_sec "$info"), rss $(field used_memory_rss "$info"), server-side hit/miss p99 us $(field tiering_cmd_hit_p99_usec "$info")/$(field tiering_cmd_miss_p99_usec "$info"), ideal LRU (bytes:hit) $lru"
            stop "$pid"
            rm -rf "$dir"
        done
    done
done
rm -rf "$scratch"
