#!/bin/sh
# PID 1 of the test VM (busybox sh): mounts what the kernel tests need, runs
# every test binary under /src and powers off. Each package's output is framed
# by marker lines that run.sh reads back from the serial console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/bb
export HOME=/root TMPDIR=/tmp EBPFREC_REQUIRE_KERNEL_TESTS=1 EBPFREC_IN_VM=1
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /sys/fs/cgroup /dev/shm /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
hostname ebpfrec-vm
echo "@@VM kernel $(uname -r) cpus $(grep -c ^processor /proc/cpuinfo)"
. /src/tests.conf
for pkg in $PKGS; do
  cd "/src/$pkg" || continue
  echo "@@VM begin $pkg"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "./${pkg##*/}.test" -test.v -test.count=1 -test.timeout "$TIMEOUT" $RUNARGS 2>&1
  rc=$?
  echo "@@VM end $pkg rc=$rc seconds=$(( $(date +%s) - start ))"
done
echo "@@VM done"
sync
poweroff -f
