#!/usr/bin/env bash
# Mounts the pseudo file systems that the kernel tests and `ebpfrec record`
# need, where they are missing. Needs root; without it, says so and does
# nothing (the kernel tests then skip with their own message).
set -u
if [ "$(id -u)" != 0 ]; then
  echo "mounts.sh: not root: tracefs/bpffs left as they are; kernel tests will skip" >&2
  exit 0
fi
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || echo "mounts.sh: could not mount tracefs" >&2
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || echo "mounts.sh: could not mount bpffs" >&2
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
exit 0
