#!/usr/bin/env bash
# Resident memory of `ebpfrec record` over a long recording at the highest
# sustained rate (the syscalls tracer under a getpid storm), as a flight
# recorder in bounded space (--segment-size 32 MiB, --keep-size 256 MiB).
# Prints RSS every 5 s and the spread after the first 5 s (goal: <= 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-60}
. scripts/storm.sh
storm_setup bench-memory
storm_start 4000000000
storm=$storm_pid
bin/ebpfrec record -q --tracer syscalls --ringbuf-size 4194304 --pid $storm --duration "${SECS}s" \
  --segment-size $((32 << 20)) --keep-size $((256 << 20)) -o "$tmp/rec" &
rec=$!
sleep 1
kill -USR1 $storm
samples=()
for ((i = 0; i < SECS; i++)); do
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' /proc/$rec/status 2>/dev/null || echo)
  anon=$(awk '/RssAnon/ {print $2}' /proc/$rec/status 2>/dev/null || echo 0)
  [ -n "$rss" ] || break
  samples+=("$rss")
  if (( i % 5 == 4 )); then echo "t=$((i + 1))s rss=$((rss / 1024)) MiB (anonymous $((anon / 1024)) MiB) disk=$(du -sm "$tmp/rec" | cut -f1) MiB"; fi
done
wait $rec || true
printf '%s\n' "${samples[@]:5}" | sort -n | awk 'NR==1{min=$1} {max=$1} END {printf "RSS after warm-up: min %d MiB, max %d MiB, spread %d MiB (goal <= 64)\n", min/1024, max/1024, (max-min)/1024}'
bin/ebpfrec info "$tmp/rec" 2>/dev/null | head -20 || true
