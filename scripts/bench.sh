#!/usr/bin/env bash
# Runs the benchmarks of every package and prints their figures. Each
# benchmark reports its goal metrics (ratios against a baseline measured in
# the same run) with b.ReportMetric, so the figures below are what to quote.
set -euo pipefail
benchtime=${BENCHTIME:-1s}
count=${BENCHCOUNT:-1}
out=$(mktemp)
go test -run '^$' -bench . -benchmem -benchtime "$benchtime" -count "$count" -timeout 60m ./... | tee "$out"
echo
echo "== figures (see each package's bench_test.go for what the goals are)"
grep -E '^Benchmark' "$out" || true
rm -f "$out"

echo
echo "== replay of a compressed recording vs iterating in memory (scripts/bench-replay.sh)"
scripts/bench-replay.sh || echo "bench-replay failed"

echo
echo "== ebpfrec record vs perf record (scripts/bench-perf.sh)"
scripts/bench-perf.sh || echo "bench-perf failed"

echo
echo "== replay --follow beside a live recording (scripts/bench-follow.sh)"
scripts/bench-follow.sh || echo "bench-follow failed"

echo
echo "== resident memory over a long recording (scripts/bench-memory.sh)"
scripts/bench-memory.sh || echo "bench-memory failed"

echo
echo "== the recorder's footprint: lean vs DuckDB linked (scripts/bench-footprint.sh)"
scripts/bench-footprint.sh || echo "bench-footprint failed"
