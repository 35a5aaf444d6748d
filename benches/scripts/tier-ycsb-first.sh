#!/usr/bin/env bash
# Usage: benches/scripts/tier-ycsb-first.sh   (release builds of tierkv-server and tierkv-bench)
# First SSD-tier figure: YCSB-B (get 95, set 5), Zipf 0.99 and uniform, 200 K keys of 1000 B (200 MB),
# tierkv with --maxmemory 40mb --maxmemory-policy spill against the same build all in RAM.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/target/release/tierkv-bench
S=$ROOT/target/release/tierkv-server
run() { # name port dist args...
  local name=$1 port=$2 dist=$3; shift 3
  local d; d=$(mktemp -d)
  taskset -c 0 $S --port $port --dir $d --save '' "$@" >/dev/null 2>&1 &
  local pid=$!; sleep 1
  local r0 s0
  out=$(taskset -c 1 $B -t 127.0.0.1:$port --mix get=95,set=5 --dist $dist -n 200000 --value-size 1000 -c 50 -d 30 --progress never 2>&1 | grep -iE "ops/s|p99|total" | head -4 | tr '\n' ' ')
  local t; t=$(redis-cli -p $port info tiering | tr -d '\r' | grep -E "ssd_reads|blocks_read|pages_on_ssd|pages_in_ram" | tr '\n' ' ')
  local rss; rss=$(redis-cli -p $port info memory | tr -d '\r' | grep -E "^used_memory_rss:" )
  echo "$name $dist: $out | $t | $rss"
  kill $pid; wait $pid 2>/dev/null
}
uptime
for dist in zipf uniform; do
  run ram 7431 $dist
  run tier 7432 $dist --maxmemory 40mb --maxmemory-policy spill
done
