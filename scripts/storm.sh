# Sourced by the bench-*.sh scripts that record a getpid storm: what they
# share. Call from the repository's root, under set -euo pipefail.

# storm_setup NAME: skips the calling script (exit 0, saying so) unless run
# as root; builds bin/ebpfrec and bin/ebpfrec-workload; sets tmp to a
# temporary directory removed at exit.
storm_setup() {
  [ "$(id -u)" = 0 ] || { echo "$1: needs root; skipped"; exit 0; }
  make -s build
  go build -o bin/ebpfrec-workload ./internal/cmd/workload
  tmp=$(mktemp -d)
  trap 'kill ${storm_pid:-} 2>/dev/null || true; rm -rf "$tmp"' EXIT
}

# storm_start N: starts a storm of N getpid calls, held until SIGUSR1, and
# sets storm_pid once the workload runs under its own name (so that a
# recorder following it by PID sees its calls).
storm_start() {
  bin/ebpfrec-workload storm "$1" wait &
  storm_pid=$!
  until grep -q ebpfrec-workloa /proc/$storm_pid/comm 2>/dev/null; do sleep 0.1; done
}
