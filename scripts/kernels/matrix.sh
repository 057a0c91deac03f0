# The kernel matrix: which kernels the VM tests boot, from which Debian suite,
# and how qemu runs them. Sourced by fetch.sh and run.sh.
MATRIX_VM=(5.10 6.1 6.12)

suite_of() {
  case "$1" in
    5.10) echo bullseye ;;
    6.1) echo bookworm ;;
    6.12) echo trixie ;;
    *) echo "matrix.sh: unknown kernel $1 (known: ${MATRIX_VM[*]})" >&2; return 1 ;;
  esac
}
