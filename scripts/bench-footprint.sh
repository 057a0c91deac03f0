#!/usr/bin/env bash
# The recorder's footprint (issue 13): the lean ebpfrec (no cgo, no DuckDB)
# against the same source built with DuckDB linked (-tags ebpfrec_duckdb,
# as ebpfrec was before ebpfrec-query), alternately in the same run:
#   - binary size (the flags of make build);
#   - resident memory of an idle `ebpfrec record` (default tracers, no
#     load), after IDLE seconds;
#   - peak resident memory (VmHWM, /usr/bin/time's maximum) of `ebpfrec
#     record --tracer syscalls` through a STORM-call getpid storm, with the
#     events recorded and lost and the recorder's CPU seconds.
# The lean ebpfrec runs a third time with GOMEMLIMIT=off, without the
# memory limit that record sets (cmd/ebpfrec/memlimit.go): what it costs
# in CPU and saves in memory.
# Goals: binary <= 40 MB, peak <= 64 MiB. Needs root and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${STORM:-3000000}
RUNS=${RUNS:-3}
IDLE=${IDLE:-3}
command -v /usr/bin/time >/dev/null || { echo "bench-footprint: /usr/bin/time is missing (apt-get install time); skipped"; exit 0; }
. scripts/storm.sh
storm_setup bench-footprint
VERSION=$(git describe --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=1 go build -tags ebpfrec_duckdb -ldflags "-X main.version=$VERSION" -o "$tmp/ebpfrec-duckdb" ./cmd/ebpfrec
go build -o "$tmp/recstats" ./scripts/recstats
declare -A bin=([lean]=bin/ebpfrec [nolimit]=bin/ebpfrec [duckdb]=$tmp/ebpfrec-duckdb)
declare -A env=([lean]= [nolimit]=GOMEMLIMIT=off [duckdb]=)
kinds=(lean nolimit duckdb)

# idle KIND: prints "RSS ANON FILE" (KiB) of an idle recorder after IDLE s.
idle() {
  env ${env[$1]} "${bin[$1]}" record -q --duration $((IDLE + 2))s -o "$tmp/idle-$1" &
  local rec=$!
  sleep "$IDLE"
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r, a, f}' /proc/$rec/status
  wait "$rec" || true
  rm -rf "$tmp/idle-$1"
}

# storm KIND: prints "MAXRSS CPU EVENTS LOST" (KiB, s) of a recorder
# through the storm.
storm() {
  storm_start "$N"
  local pid=$storm_pid
  env ${env[$1]} /usr/bin/time -f "%M %U %S" -o "$tmp/time" "${bin[$1]}" record -q --tracer syscalls --pid "$pid" -o "$tmp/storm-$1" &
  local rec=$!
  sleep 2
  kill -USR1 "$pid"
  wait "$pid"
  storm_pid=
  wait "$rec" || true
  local m u s
  read -r m u s <"$tmp/time"
  echo "$m $(echo "$u + $s" | bc -l) $("$tmp/recstats" "$tmp/storm-$1" | cut -d' ' -f1,2)"
  rm -rf "$tmp/storm-$1"
}

declare -A size
for k in lean duckdb; do size[$k]=$(stat -c %s "${bin[$k]}"); done
results=$tmp/results
: >"$results"
for ((i = 1; i <= RUNS; i++)); do
  for k in "${kinds[@]}"; do
    echo "$k idle $(idle "$k")" >>"$results"
    echo "$k storm $(storm "$k")" >>"$results"
  done
done

awk -v N="$N" -v ls="${size[lean]}" -v ds="${size[duckdb]}" '
function mib(k) { return k / 1024 }
$2 == "idle"  { n[$1]++; idle[$1, n[$1]] = $3; anon[$1, n[$1]] = $4; file[$1, n[$1]] = $5 }
$2 == "storm" { m[$1]++; peak[$1, m[$1]] = $3; cpu[$1, m[$1]] = $4; ev[$1, m[$1]] = $5; lost[$1, m[$1]] = $6 }
function add(list, v) { return list (list == "" ? "" : ", ") sprintf("%.2f", v) }
END {
  split("lean nolimit duckdb", kinds, " ")
  printf "binary: lean %.1f MB, with DuckDB %.1f MB: %.2f (goal <= 40 MB)\n", ls / 1e6, ds / 1e6, ls / ds
  printf "%-4s %-8s %9s %7s %7s   %9s %6s %9s %8s\n", "run", "", "idle MiB", "anon", "file", "peak MiB", "cpu-s", "events", "lost"
  for (i = 1; i <= n["lean"]; i++) {
    for (j = 1; j <= 3; j++) {
      k = kinds[j]
      printf "%-4d %-8s %9.1f %7.1f %7.1f   %9.1f %6.2f %9d %8d\n", i, k, mib(idle[k, i]), mib(anon[k, i]), mib(file[k, i]), mib(peak[k, i]), cpu[k, i], ev[k, i], lost[k, i]
    }
    ri = add(ri, idle["lean", i] / idle["duckdb", i])
    rp = add(rp, peak["lean", i] / peak["duckdb", i])
    lp = add(lp, peak["lean", i] / peak["nolimit", i])
    lc = add(lc, cpu["lean", i] / cpu["nolimit", i])
    if (peak["lean", i] > maxpeak) maxpeak = peak["lean", i]
  }
  printf "lean/duckdb, same runs: idle RSS %s; peak RSS %s\n", ri, rp
  printf "memory limit vs none (lean/nolimit), same runs: peak RSS %s; CPU %s\n", lp, lc
  printf "lean peak RSS through a %d-call getpid storm: at most %.1f MiB (goal <= 64)\n", N, mib(maxpeak)
}' "$results"
