#!/usr/bin/env bash
# Replay into a no-op handler vs iterating the same batches in memory
# (BenchmarkReplayNoop): the median, over interleaved runs, of each run's
# same-run ratio, for a zstd recording (the default), an uncompressed one
# and a zstd recording of events shaped like the syscalls tracer's under a
# getpid storm, with the load average before and after (the machine is
# shared: a busy second core takes the readahead's share of decompressing
# away).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${BENCHCOUNT_REPLAY:-6}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
before=$(cut -d' ' -f1-3 /proc/loadavg)
go test -run '^$' -bench 'ReplayNoop' -count "$count" ./replay/ >"$out"
after=$(cut -d' ' -f1-3 /proc/loadavg)
for kind in zstd none syscalls; do
  grep "^BenchmarkReplayNoop/$kind" "$out" |
    awk '{for (i = 2; i <= NF; i++) if ($i == "ratio") print $(i-1)}' | sort -g |
    awk -v kind="$kind" '{r[NR] = $1; all = all sprintf(" %.2f", $1)} END {
      if (NR == 0) { print kind ": no runs"; exit 1 }
      m = (NR % 2) ? r[(NR+1)/2] : (r[NR/2] + r[NR/2+1]) / 2
      printf "replay/mem ratio, %s recording: median %.2f of %d runs (goal >= 0.8):%s\n", kind, m, NR, all
    }'
done
echo "load average: $before before, $after after (2 cores; the benchmark itself adds up to 2)"
