//go:build ignore

// syscalls: every syscall of the selected processes, with its latency, from
// the raw tracepoints sys_enter and sys_exit (the start time waits in the
// thread's task local storage: measured faster than a hash keyed by thread
// id, and freed with the thread). Built for rate: a 40-byte event, no string copies,
// batched reader wakeups.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

// Syscall numbers by architecture (bpf2go -target sets __TARGET_ARCH_*).
#if defined(__TARGET_ARCH_arm64)
#define NR_EXIT 93
#define NR_EXIT_GROUP 94
#define NR_EXECVE 221
#define NR_EXECVEAT 281
#else
#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#define NR_EXECVE 59
#define NR_EXECVEAT 322
#endif

// Layout (host byte order), 40 bytes:
//   0 ktime_ns u64 (entry), 8 latency_ns u64, 16 ret s64, 24 pid u32,
//   28 nr u32, 32 cpu u32, 36 pad u32
// Earlier layout (the Go decoder reads it by size): 32 bytes (no cpu).
// New fields go at the end. SYS_NO_CPU builds the earlier layout, for the
// benchmark that measures what the cpu field costs.
struct sys_event {
	__u64 ktime_ns;
	__u64 latency_ns; // 0 for exit and exit_group, which never return
	__s64 ret;
	__u32 pid; // tgid
	__u32 nr;  // syscall number
#ifndef SYS_NO_CPU
	__u32 cpu; // bpf_get_smp_processor_id() (at exit)
	__u32 _pad;
#endif
};

const struct sys_event *unused_sys_event __attribute__((unused));

// Per-thread state, in task local storage.
struct sys_task {
	__u64 ktime_ns; // start of the syscall in progress, 0 if not traced
	__u32 nr;       // its number
	__u32 gen;      // filter generation + 1 that sel was computed at (0: never)
	__u32 sel;      // the thread's process passes the filter
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} sys_events SEC(".maps");

// Per-thread state: the start of the syscall in progress, and the thread's
// selection by the filter, cached until the filter changes (or the thread
// execs: its comm changes) so most syscalls skip the filter's hash
// lookups. Task local storage is freed with the thread, and measured
// cheaper than a hash keyed by thread id; kernels without it for tracing
// programs (before 5.11) get the SYS_STATE_HASH build: an LRU hash keyed by
// thread id, whose entry the thread's exit or exit_group removes (an entry
// of a thread killed otherwise ages out of the LRU).
#ifdef SYS_STATE_HASH
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sys_task);
} sys_tasks SEC(".maps");

static __always_inline struct sys_task *task_state(bool create)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sys_task *st = bpf_map_lookup_elem(&sys_tasks, &tid);
	if (st || !create)
		return st;
	struct sys_task zero = {};
	bpf_map_update_elem(&sys_tasks, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sys_tasks, &tid);
}

static __always_inline void task_state_exit(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&sys_tasks, &tid);
}
#else
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sys_task);
} sys_tasks SEC(".maps");

static __always_inline struct sys_task *task_state(bool create)
{
	return bpf_task_storage_get(&sys_tasks, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

static __always_inline void task_state_exit(void) {} // freed with the task
#endif

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
#ifndef SYS_NO_CPU
	e->cpu = bpf_get_smp_processor_id();
	e->_pad = 0;
#endif
	bpf_ringbuf_submit(e, rb_flags(n));
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	struct filter_cfg *cfg = filter_config_get();
	__u32 flags = 0, gen = 0;
	if (cfg) {
		flags = cfg->flags;
		gen = cfg->gen;
	}
	struct sys_task *st = task_state(true);
	if (!st)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (st->gen != gen + 1) {
		st->sel = selected_with(flags, pid_tgid >> 32, NULL);
		st->gen = gen + 1;
	}
	if (id == NR_EXECVE || id == NR_EXECVEAT)
		st->gen = 0; // the comm may change: select again at the next syscall
	if (!st->sel)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (id == NR_EXIT || id == NR_EXIT_GROUP) {
		// These never return: report them now.
		st->ktime_ns = 0;
		emit(now, 0, 0, pid_tgid >> 32, id);
		task_state_exit();
		return 0;
	}
	st->ktime_ns = now;
	st->nr = id;
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	struct sys_task *st = task_state(false);
	if (!st || !st->ktime_ns) // not selected at entry
		return 0;
	__u64 start = st->ktime_ns;
	__u32 nr = st->nr;
	st->ktime_ns = 0;
	emit(start, bpf_ktime_get_ns() - start, ret, bpf_get_current_pid_tgid() >> 32, nr);
	return 0;
}
