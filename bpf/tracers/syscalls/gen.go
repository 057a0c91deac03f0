package syscalls

// Two builds of syscalls.c: per-thread state in task local storage (the
// default), and in an LRU hash for kernels without task storage for tracing
// programs (see Variants).
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type sys_event -output-stem syscalls bpf syscalls.c -- -I../../headers -I../common
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem syscalls_hash bpfHash syscalls.c -- -I../../headers -I../common -DSYS_STATE_HASH

// The earlier 32-byte layout without the cpu field, built for tests only:
// BenchmarkGetpidStorm measures what the field costs against it.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -output-stem syscalls_nocpu -output-suffix _test bpfNoCPU syscalls.c -- -I../../headers -I../common -DSYS_NO_CPU
