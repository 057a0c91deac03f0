//go:build ignore

// missed makes the kernel skip a program, for the tests of recursion misses
// (kernel_missed). on_printk, on the bpf_trace:bpf_trace_printk tracepoint,
// writes missed_events; that tracepoint fires only inside a BPF program
// (bpf_trace_printk), so the kernel skips on_printk every time:
//   - sample_printk, a perf_event program on a CPU clock event, calls
//     bpf_trace_printk from the timer's interrupt, where the kernel runs it
//     with bpf_prog_active held and perf's recursion guard not: the kernel
//     skips on_printk in trace_call_bpf, and kernels from 6.7 count the skip
//     in on_printk's recursion_misses. printk_calls[0] counts its calls.
//   - getpid_printk, on sys_enter_getpid of the thread target_tid, calls it
//     from a tracepoint program, which holds perf's recursion guard of the
//     task context: perf drops the nested tracepoint before trace_call_bpf,
//     and no kernel counts that skip. printk_calls[1] counts its calls.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

// Set by the test before load: the thread whose getpid calls count.
volatile const __u32 target_tid = 0;

struct missed_event {
	__u32 tid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} missed_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} printk_calls SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&printk_calls, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("perf_event")
int sample_printk(void *ctx)
{
	count(0);
	bpf_printk("ebpfrec: a program runs");
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int getpid_printk(void *ctx)
{
	if ((__u32)bpf_get_current_pid_tgid() != target_tid)
		return 0;
	count(1);
	bpf_printk("ebpfrec: a program runs");
	return 0;
}

SEC("tracepoint/bpf_trace/bpf_trace_printk")
int on_printk(void *ctx)
{
	struct missed_event *e = bpf_ringbuf_reserve(&missed_events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
