//go:build ignore

// syscalls: every syscall of the selected processes, with its latency, from
// the raw tracepoints sys_enter and sys_exit (the start time waits in a
// per-thread hash). Built for rate: a 32-byte event, no string copies,
// batched reader wakeups.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define NR_EXIT 60
#define NR_EXIT_GROUP 231

// Layout (host byte order), 32 bytes:
//   0 ktime_ns u64 (entry), 8 latency_ns u64, 16 ret s64, 24 pid u32, 28 nr u32
struct sys_event {
	__u64 ktime_ns;
	__u64 latency_ns; // 0 for exit and exit_group, which never return
	__s64 ret;
	__u32 pid; // tgid
	__u32 nr;  // syscall number
};

const struct sys_event *unused_sys_event __attribute__((unused));

struct sys_start {
	__u64 ktime_ns;
	__u64 nr;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} sys_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); // thread id
	__type(value, struct sys_start);
} sys_starts SEC(".maps");

DEFINE_COUNTERS(sys);

static __always_inline void emit(__u64 start, __u64 latency, __s64 ret, __u32 pid, __u32 nr)
{
	__u64 n = count_one(&sys_emitted);
	struct sys_event *e = bpf_ringbuf_reserve(&sys_events, sizeof(*e), 0);
	if (!e) {
		count_one(&sys_drops);
		return;
	}
	e->ktime_ns = start;
	e->latency_ns = latency;
	e->ret = ret;
	e->pid = pid;
	e->nr = nr;
	bpf_ringbuf_submit(e, rb_flags(n));
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	if (!selected())
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u64 now = bpf_ktime_get_ns();
	if (id == NR_EXIT || id == NR_EXIT_GROUP) {
		// These never return: report them now, and forget the thread.
		bpf_map_delete_elem(&sys_starts, &tid);
		emit(now, 0, 0, pid_tgid >> 32, id);
		return 0;
	}
	struct sys_start s = {.ktime_ns = now, .nr = id};
	bpf_map_update_elem(&sys_starts, &tid, &s, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct sys_start *s = bpf_map_lookup_elem(&sys_starts, &tid);
	if (!s) // not selected at entry
		return 0;
	__u64 start = s->ktime_ns;
	__u32 nr = s->nr;
	bpf_map_delete_elem(&sys_starts, &tid);
	emit(start, bpf_ktime_get_ns() - start, ret, pid_tgid >> 32, nr);
	return 0;
}
