//go:build ignore

// tracing: fentry and fexit programs for package bpf's tests, in an object of
// their own because kernels that refuse fentry (locked down, as the CI host
// is) refuse the whole collection at load. Each counts the calls of
// do_unlinkat (unlink(2), unlinkat(2)) by the target process.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

volatile const __u32 target_tgid = 0;

// Key 0: fentry runs, key 1: fexit runs.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} tracing_hits SEC(".maps");

static __always_inline void hit(__u32 key)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return;
	__u64 *c = bpf_map_lookup_elem(&tracing_hits, &key);
	if (c)
		*c += 1;
}

// do_unlinkat is in the BTF of every kernel of the matrix, where the
// syscall wrappers (__x64_sys_*) are not; it is what libbpf's examples
// attach fentry to.
SEC("fentry/do_unlinkat")
int BPF_PROG(count_fentry) { hit(0); return 0; }

SEC("fexit/do_unlinkat")
int BPF_PROG(count_fexit) { hit(1); return 0; }
