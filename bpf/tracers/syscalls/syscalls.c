//go:build ignore

// syscalls: every syscall of the selected processes, with its latency, from
// the raw tracepoints sys_enter and sys_exit (the start time waits in the
// thread's task local storage: measured faster than a hash keyed by thread
// id, and freed with the thread). Built for rate: a 32-byte event, no string copies,
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

// Per-thread start of the syscall in progress (task local storage: freed
// with the thread, cheaper than a hash keyed by thread id).
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
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
	__u64 now = bpf_ktime_get_ns();
	struct task_struct *task = bpf_get_current_task_btf();
	if (id == NR_EXIT || id == NR_EXIT_GROUP) {
		// These never return: report them now.
		struct sys_start *s = bpf_task_storage_get(&sys_starts, task, 0, 0);
		if (s)
			s->ktime_ns = 0;
		emit(now, 0, 0, pid_tgid >> 32, id);
		return 0;
	}
	struct sys_start *s = bpf_task_storage_get(&sys_starts, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->ktime_ns = now;
	s->nr = id;
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	struct sys_start *s = bpf_task_storage_get(&sys_starts, bpf_get_current_task_btf(), 0, 0);
	if (!s || !s->ktime_ns) // not selected at entry
		return 0;
	__u64 start = s->ktime_ns;
	__u32 nr = s->nr;
	s->ktime_ns = 0;
	emit(start, bpf_ktime_get_ns() - start, ret, bpf_get_current_pid_tgid() >> 32, nr);
	return 0;
}
