#!/usr/bin/env bash
# Fetches the kernels of the test matrix from Debian's own packages and
# unpacks each into $CACHE/<name>/ (vmlinuz, modules, config). Uses apt with
# a configuration of its own (sources list, lists and archives under $CACHE),
# so the machine's apt configuration stays untouched. The mirror is the one
# this machine's apt already uses. Cached: a kernel already unpacked is kept.
#
# usage: scripts/kernels/fetch.sh [NAME...]   (default: every kernel of the matrix)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/matrix.sh"
CACHE=${EBPFREC_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ebpfrec/kernels}
mkdir -p "$CACHE"

# The Debian archive this machine's apt reads from (deb822 or one-line form).
mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "fetch.sh: no Debian mirror found in this machine's apt sources" >&2; exit 1; }
  echo "$m"
}

fetch_one() {
  local name=$1 suite=$2 out="$CACHE/$1"
  if [ -f "$out/vmlinuz" ] && [ -f "$out/.complete" ]; then
    return 0
  fi
  local apt="$CACHE/.apt/$suite"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc"
  echo "deb $(mirror) $suite main" > "$apt/etc/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/etc/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::Cache=$apt/cache" -o "Dir::Cache::archives=$apt/archives"
    -o "Dir::State::status=/dev/null"
    -o "APT::Get::List-Cleanup=0"
    -o "Acquire::Languages=none" -o "APT::Sandbox::User=root"
    -o "APT::Architecture=amd64" -o "APT::Architectures=amd64"
  )
  mkdir -p "$apt/cache"
  echo "fetch.sh: $name: reading $suite's package lists" >&2
  apt-get "${opts[@]}" -qq update
  # linux-image-amd64 is a meta package: take the versioned image it depends on.
  local pkg
  pkg=$(apt-cache "${opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || { echo "fetch.sh: $name: no linux-image package in $suite" >&2; exit 1; }
  echo "fetch.sh: $name: downloading $pkg" >&2
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  (cd "$out.tmp" && apt-get "${opts[@]}" -qq download "$pkg")
  dpkg-deb -x "$out.tmp"/*.deb "$out.tmp/root"
  local vmlinuz
  vmlinuz=$(ls "$out.tmp"/root/boot/vmlinuz-* | head -1)
  local release=${vmlinuz##*/vmlinuz-}
  mv "$vmlinuz" "$out.tmp/vmlinuz"
  cp "$out.tmp/root/boot/config-$release" "$out.tmp/config"
  local mods="$out.tmp/root/lib/modules/$release"
  [ -d "$mods" ] || mods="$out.tmp/root/usr/lib/modules/$release"
  mv "$mods" "$out.tmp/modules"
  echo "$release" > "$out.tmp/release"
  echo "$pkg" > "$out.tmp/package"
  rm -rf "$out.tmp/root" "$out.tmp"/*.deb
  touch "$out.tmp/.complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "fetch.sh: $name: $release" >&2
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${MATRIX_VM[@]}")
for n in "${names[@]}"; do
  fetch_one "$n" "$(suite_of "$n")"
done
