#!/usr/bin/env bash
# Compares `ebpfrec record --tracer syscalls` with `perf record -e
# raw_syscalls:sys_enter` on the same getpid storm, one after the other in
# the same run: events captured per second, loss ratio, CPU seconds of the
# recorder per million events, bytes on disk per event.
#
# The storm (ebpfrec-workload storm N wait) is started first and released
# with SIGUSR1 once the recorder runs; both recorders follow it by PID and
# stop when it exits, so /usr/bin/time measures the recorder alone.
# Needs root, perf (Debian: linux-perf) and /usr/bin/time (Debian: time).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${STORM:-2000000}
RING=${RING:-4194304}
for tool in perf /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-perf: $tool is missing (apt-get install linux-perf time); skipped"; exit 0; }
done
. scripts/storm.sh
storm_setup bench-perf

# run NAME CMD...: starts the storm, runs CMD with PID substituted for @PID,
# releases the storm after the recorder had time to attach, and records
# elapsed/user/sys seconds of CMD.
run() {
  local name=$1; shift
  storm_start "$N"
  local pid=$storm_pid
  local args=("${@//@PID/$pid}")
  /usr/bin/time -f "%e %U %S" -o "$tmp/$name.time" "${args[@]}" >"$tmp/$name.out" 2>&1 &
  local rec=$!
  sleep 2
  kill -USR1 "$pid"
  wait "$pid"
  storm_pid=
  wait "$rec"
}

run ebpfrec bin/ebpfrec record -q --tracer syscalls --ringbuf-size "$RING" --pid @PID -o "$tmp/rec"
run perf perf record -q -e raw_syscalls:sys_enter -p @PID -o "$tmp/perf.data"

# Events and loss.
read -r eb_events eb_lost eb_from eb_to < <(go run ./scripts/recstats "$tmp/rec")
pf_stats=$(perf report -i "$tmp/perf.data" --stats 2>/dev/null)
pf_events=$(echo "$pf_stats" | awk '/SAMPLE events:/ {print $3; exit}')
pf_lost=$(echo "$pf_stats" | awk '/LOST_SAMPLES events:/ {n=$3} END {print n+0}')
pf_span=$(perf script -i "$tmp/perf.data" -F time 2>/dev/null | awk 'NR==1{f=$1} {l=$1} END {sub(":","",f); sub(":","",l); print l-f}')

read -r eb_el eb_u eb_s <"$tmp/ebpfrec.time"
read -r pf_el pf_u pf_s <"$tmp/perf.time"
eb_bytes=$(du -sb "$tmp/rec" | cut -f1)
pf_bytes=$(stat -c %s "$tmp/perf.data")

awk -v N="$N" \
  -v ee="$eb_events" -v el="$eb_lost" -v espan="$(echo "$eb_to - $eb_from" | bc -l)" -v eu="$eb_u" -v es="$eb_s" -v eb="$eb_bytes" \
  -v pe="$pf_events" -v pl="$pf_lost" -v pspan="$pf_span" -v pu="$pf_u" -v ps="$pf_s" -v pb="$pf_bytes" '
BEGIN {
  printf "getpid storm of %d calls; recorder CPU from /usr/bin/time (the storm is not its child)\n", N
  printf "%-9s %14s %14s %10s %14s %10s\n", "recorder", "events", "events/s", "loss", "cpu-s/Mev", "B/event"
  printf "%-9s %14d %14.0f %9.3f%% %14.3f %10.1f\n", "ebpfrec", ee, ee/espan, 100*el/(ee+el), (eu+es)/(ee/1e6), eb/ee
  printf "%-9s %14d %14.0f %9.3f%% %14.3f %10.1f\n", "perf", pe, pe/pspan, 100*pl/(pe+pl), (pu+ps)/(pe/1e6), pb/pe
  printf "ratios ebpfrec/perf: events/s %.2f, cpu-s/Mev %.2f, B/event %.2f\n", (ee/espan)/(pe/pspan), ((eu+es)/(ee/1e6))/((pu+ps)/(pe/1e6)), (eb/ee)/(pb/pe)
}'
