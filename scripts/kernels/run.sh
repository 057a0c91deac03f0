#!/usr/bin/env bash
# make test-kernels: boots each kernel of the matrix in qemu and runs every
# package's tests (the kernel tests included, skips counted as failures) in
# it, then prints a matrix kernel x package. The kernels come from Debian's
# packages (fetch.sh); the guest is an initramfs of static test binaries,
# busybox, a few host tools the tests exec (bash, true, setpriv, dmsetup,
# ...) and the kernel modules of store's power-loss test.
#
# usage: scripts/kernels/run.sh [KERNEL...]      KERNEL: 5.10 6.1 6.12 host
# env:   EBPFREC_VM_PKGS   packages to test (default: every package that
#                          builds without cgo; those whose tests link DuckDB,
#                          analyze, analyze/query and cmd/ebpfrec-query, are
#                          host-only)
#        EBPFREC_VM_RUN    -test.run pattern for every package
#        EBPFREC_VM_ACCEL  kvm or tcg (default: kvm if a guest boots, else tcg)
#        EBPFREC_VM_SHORT  1 (default) runs the VMs' tests with -test.short
#        EBPFREC_VM_OUT    where logs and the matrix go (default: bin/kernels)
set -euo pipefail
# Everything runs from main, which bash reads whole before running it: the
# script may be edited while a matrix runs.
main() {
cd "$(dirname "$0")/../.."
here=scripts/kernels
. $here/matrix.sh
OUT=${EBPFREC_VM_OUT:-bin/kernels}
CACHE=${EBPFREC_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ebpfrec/kernels}
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(host "${MATRIX_VM[@]}")
mkdir -p "$OUT"
# The guest's tree and image live under a dot folder, which go list ./...
# passes over (the copied fixtures are a Go package).
WORK="$OUT/.work"
rm -rf "$WORK" "$OUT"/*.log "$OUT/matrix.txt"
mkdir -p "$WORK"

vmk=()
for k in "${kernels[@]}"; do [ "$k" = host ] || vmk+=("$k"); done
if [ ${#vmk[@]} -gt 0 ]; then
  command -v qemu-system-x86_64 >/dev/null || { echo "run.sh: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 1; }
  command -v busybox >/dev/null || { echo "run.sh: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
  $here/fetch.sh "${vmk[@]}"
fi

# 1. Static test binaries, one directory per package with its testdata.
root="$WORK/root"
mkdir -p "$root/src"
pkgs=${EBPFREC_VM_PKGS:-$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./... | sed "s|^$PWD/||")}
built=()
hostonly=()
for p in $pkgs; do
  p=${p#./}
  mkdir -p "$root/src/$p"
  # Named as go test names it: some tests check the comm of their children.
  if CGO_ENABLED=0 go test -c -o "$root/src/$p/${p##*/}.test" "./$p" >"$WORK/build.err" 2>&1; then
    built+=("$p")
    [ -d "$p/testdata" ] && cp -r "$p/testdata" "$root/src/$p/"
  else
    if grep -q "cgo\|duckdb" "$WORK/build.err"; then
      hostonly+=("$p")
      rmdir "$root/src/$p" 2>/dev/null || true
    else
      cat "$WORK/build.err" >&2; exit 1
    fi
  fi
done
# Tests read the repository's fixtures by relative path, and cmd/ebpfrec's
# the test BPF objects of bpf/testdata (there already if bpf is tested).
cp -r fixtures "$root/src/" 2>/dev/null || true
mkdir -p "$root/src/bpf/testdata" && cp bpf/testdata/*.o "$root/src/bpf/testdata/"
# bpf/exeinfo's tests inspect the prebuilt Go target of bpf/testdata.
cp -r bpf/testdata/gotarget "$root/src/bpf/testdata/"
# record's and cmd/ebpfrec's user-space tracer tests run the gofunc test server.
mkdir -p "$root/src/bpf/tracers/gofunc/testdata" && cp bpf/tracers/gofunc/testdata/*.gz "$root/src/bpf/tracers/gofunc/testdata/"
{
  echo "PKGS='${built[*]}'"
  echo "TIMEOUT='${EBPFREC_VM_TIMEOUT:-20m}'"
  # -test.short: fewer repetitions of the kernel-independent stress tests
  # (the host runs them in full); it makes no test skip.
  args=""
  [ "${EBPFREC_VM_SHORT:-1}" = 1 ] && args="-test.short"
  [ -n "${EBPFREC_VM_RUN:-}" ] && args="$args -test.run=${EBPFREC_VM_RUN}"
  echo "RUNARGS='$args'"
} > "$root/src/tests.conf"

# 2. The initramfs: busybox for the shell and mounts, host tools the tests
# exec (with their shared libraries), and init.sh as PID 1.
mkinitrd() {
  local r="$WORK/initrd" lib
  rm -rf "$r" && mkdir -p "$r"/{bin,bb,etc,lib64,root,tmp}
  cp "$(command -v busybox)" "$r/bb/busybox"
  for a in $("$r/bb/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bb/$a"; done
  # dmsetup and mke2fs: store's power-loss test (sbin: not in every PATH).
  for tool in bash true false sleep cat setpriv prlimit getent env script dmsetup mke2fs; do
    local path; path=$(PATH="$PATH:/usr/sbin:/sbin" type -P "$tool") || continue
    cp -L "$path" "$r/bin/$tool"
    for lib in $(ldd "$path" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
      mkdir -p "$r$(dirname "$lib")"; cp -Ln "$lib" "$r$lib" 2>/dev/null || true
    done
  done
  ln -sf /bb/busybox "$r/bin/sh"
  ln -sf bin "$r/sbin"; mkdir -p "$r/usr"; ln -sf ../bin "$r/usr/bin"; ln -sf ../bb "$r/usr/sbin"
  [ -e "$r/lib" ] || mkdir -p "$r/lib"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' > "$r/etc/hosts"
  for k in "${vmk[@]}"; do pack_modules "$k" "$r"; done
  cp $here/init.sh "$r/init" && chmod +x "$r/init"
  cp -r "$root/src" "$r/src"
  (cd "$r" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"
}

# store's power-loss test makes ext4 on dm-flakey over a RAM disk (brd);
# Debian builds all of these as modules. They go to
# /lib/modules/<release>/powerloss/ uncompressed (the guest has no
# decompressing modprobe), with "order" listing them dependencies first:
# the test loads them itself. crc32c_generic is ext4's and jbd2's soft
# dependency (crypto-crc32c), which the kernel would ask a modprobe for.
# Anything missing is written to "error" there, which the test reports.
powerloss_modules="brd dm-flakey crc32c_generic ext4"
pack_modules() {
  local k=$1 src="$CACHE/$1/modules" dest order=() seen=" " err=""
  dest="$2/lib/modules/$(cat "$CACHE/$k/release")/powerloss"
  mkdir -p "$dest"
  # find_module NAME: the module's file (depends= names use - or _).
  find_module() {
    local n
    for n in "$1" "${1//-/_}" "${1//_/-}"; do
      find "$src/kernel" \( -name "$n.ko" -o -name "$n.ko.xz" -o -name "$n.ko.zst" \) -print -quit | grep . && return 0
    done
    return 1
  }
  add_module() {
    local m=$1 f d
    case "$seen" in *" $m "*) return 0 ;; esac
    seen="$seen$m "
    if ! f=$(find_module "$m"); then
      grep -q -e "/$m.ko\$" -e "/${m//-/_}.ko\$" -e "/${m//_/-}.ko\$" "$src/modules.builtin" 2>/dev/null ||
        err="$err module $m not found in $src;"
      return 0
    fi
    local out; out="$dest/$(basename "$f")"; out=${out%.xz}; out=${out%.zst}
    case "$f" in *.xz) busybox xzcat "$f" ;; *.zst) zstd -qdc "$f" ;; *) cat "$f" ;; esac > "$out"
    # The depends= field of the module's .modinfo section (NUL-separated).
    for d in $(tr '\0' '\n' < "$out" | sed -n 's/^depends=//p' | tr ',' ' '); do
      add_module "$d"
    done
    order+=("$(basename "$out")")
  }
  for m in $powerloss_modules; do add_module "$m"; done
  printf '%s\n' "${order[@]}" > "$dest/order"
  [ -z "$err" ] || { echo "run.sh: $k:$err" >&2; echo "$err" > "$dest/error"; }
}

# The accelerator: KVM when a guest actually boots with it (nested KVM hung
# in early boot on the machines we had), TCG otherwise.
pick_accel() {
  if [ -n "${EBPFREC_VM_ACCEL:-}" ]; then echo "$EBPFREC_VM_ACCEL"; return; fi
  [ -w /dev/kvm ] || { echo tcg; return; }
  local k=${vmk[0]} probe="$WORK/kvm-probe"
  rm -rf "$probe" && mkdir -p "$probe/bb"
  cp "$(command -v busybox)" "$probe/bb/busybox"
  printf '#!/bb/busybox sh\n/bb/busybox echo @@VM kvm-ok\n/bb/busybox poweroff -f\n' > "$probe/init"; chmod +x "$probe/init"
  (cd "$probe" && find . | cpio -o -H newc --quiet) > "$probe.cpio"
  if timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 -kernel "$CACHE/$k/vmlinuz" -initrd "$probe.cpio" \
      -append "console=ttyS0 quiet panic=-1 rdinit=/init" -display none -serial stdio -monitor none -no-reboot 2>/dev/null | grep -q "@@VM kvm-ok"; then
    echo kvm
  else
    echo tcg
  fi
}

boot() {
  local k=$1 log="$OUT/$1.log" smp=2 mem=3072 cpu=max accel=$ACCEL
  # Multi-threaded TCG let a vCPU spin forever in syscall_trace_enter once a
  # raw tracepoint flipped its static key (6.1 and 6.12, -smp 2): the code
  # patch was not seen by the other vCPU. One thread for all vCPUs keeps two
  # CPUs in the guest without that.
  [ "$ACCEL" = tcg ] && accel=tcg,thread=single
  [ "$ACCEL" = kvm ] && cpu=host
  echo "== $k: $(cat "$CACHE/$k/release"), $ACCEL, $smp cpu(s)" >&2
  timeout "${EBPFREC_VM_WALL:-1500}" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
    -kernel "$CACHE/$k/vmlinuz" -initrd "$WORK/initrd.cpio" \
    -append "console=ttyS0 quiet loglevel=${EBPFREC_VM_LOGLEVEL:-3} panic=-1 oops=panic rdinit=/init" \
    -display none -serial "file:$log" -monitor none -no-reboot -nic none || true
}

hostrun() {
  local log="$OUT/host.log" p rc start
  echo "== host: $(uname -r)" >&2
  scripts/mounts.sh
  {
    echo "@@VM kernel $(uname -r) cpus $(nproc)"
    for p in "${built[@]}"; do
      echo "@@VM begin $p"
      start=$(date +%s)
      (cd "$root/src/$p" && EBPFREC_REQUIRE_KERNEL_TESTS=1 "./${p##*/}.test" -test.v -test.count=1 -test.timeout "${EBPFREC_VM_TIMEOUT:-20m}" ${EBPFREC_VM_RUN:+-test.run="$EBPFREC_VM_RUN"} 2>&1) && rc=0 || rc=$?
      echo "@@VM end $p rc=$rc seconds=$(( $(date +%s) - start ))"
    done
    echo "@@VM done"
  } > "$log"
}

if [ ${#vmk[@]} -gt 0 ]; then
  mkinitrd
  ACCEL=$(pick_accel)
fi
t0=$(date +%s)
# Single-threaded TCG takes one core per VM: run as many at once as there
# are cores (the host's own run counts as one).
jobs=$(nproc)
for k in "${kernels[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  if [ "$k" = host ]; then hostrun & else boot "$k" & fi
done
wait
echo "== matrix ($(( $(date +%s) - t0 )) s)" >&2
status=0
logs=()
for k in "${kernels[@]}"; do logs+=("$OUT/$k.log"); done
awk -f $here/matrix.awk -v hostonly="${hostonly[*]}" "${logs[@]}" > "$OUT/matrix.txt" || status=1
cat "$OUT/matrix.txt"
exit $status
}
main "$@"
exit
