#!/usr/bin/env bash
# Records a getpid storm with the syscalls tracer twice, the second time
# with `ebpfrec replay --follow` printing the recording while it is written
# (both on this machine's cores): the recorder's events, its losses and the
# storm's duration, alone and followed, and whether the follower printed
# every recorded event.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${STORM:-3000000}
. scripts/storm.sh
storm_setup bench-follow

# run MODE: MODE is alone or followed.
run() {
  local mode=$1 dir=$tmp/$1
  mkdir -p "$dir"
  storm_start "$N"
  local pid=$storm_pid
  bin/ebpfrec record -q --tracer syscalls --ringbuf-size 4194304 --pid "$pid" -o "$dir/rec" >"$dir/rec.out" 2>&1 &
  local rec=$! fol=
  sleep 2
  if [ "$mode" = followed ]; then
    bin/ebpfrec replay --follow "$dir/rec" >"$dir/follow.out" 2>"$dir/follow.err" &
    fol=$!
  fi
  local start end
  start=$(date +%s.%N)
  kill -USR1 "$pid"
  wait "$pid"
  storm_pid=
  end=$(date +%s.%N)
  wait "$rec"
  if [ -n "$fol" ]; then
    # Give the follower time to print the last segment, then stop it.
    sleep 5
    kill -INT "$fol"
    wait "$fol" || true
  fi
  local ev lost from to lines=-
  read -r ev lost from to < <(go run ./scripts/recstats "$dir/rec")
  [ -n "$fol" ] && lines=$(wc -l <"$dir/follow.out")
  printf '%-9s %9s %9s %8.2f %12s\n' "$mode" "$ev" "$lost" "$(echo "$end - $start" | bc)" "$lines"
}

printf '%-9s %9s %9s %8s %12s\n' mode events lost storm_s follow_lines
run alone
run followed
