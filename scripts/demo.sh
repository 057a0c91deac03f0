#!/usr/bin/env bash
# The main job on a built-in default, end to end: build, record the default
# tracers while a small known workload runs, show the recording, replay its
# first events, export it to Parquet and ask DuckDB one question.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo: recording loads BPF programs and needs root: run 'sudo make demo'" >&2
  exit 1
fi
scripts/mounts.sh
make -s build
go build -o bin/ebpfrec-workload ./internal/cmd/workload
E=bin/ebpfrec
out=demo-out
rm -rf "$out" /tmp/ebpfrec-demo
mkdir -p "$out"

has() { $E "$1" --help >/dev/null 2>&1; }

echo "== record: default tracers (exec, exit, open, tcp) on a small workload"
$E record -o "$out/rec" -- bin/ebpfrec-workload demo /tmp/ebpfrec-demo
echo
if has info; then
  echo "== info"
  $E info "$out/rec"
  echo
fi
if has replay; then
  echo "== replay (first 15 events)"
  $E replay "$out/rec" | head -15
  echo
fi
if has export; then
  echo "== export to Parquet"
  $E export -o "$out/parquet" "$out/rec"
  echo
fi
if has query; then
  echo "== DuckDB: top processes by executions"
  $E query "$out/parquet" "SELECT comm, count(*) AS execs FROM exec GROUP BY comm ORDER BY execs DESC, comm LIMIT 10"
fi
echo
echo "recording: $out/rec"
