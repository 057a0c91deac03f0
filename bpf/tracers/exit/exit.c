//go:build ignore

// exit: one event per process exit (when the last thread of a process
// exits), from the BTF tracepoint sched_process_exit, emitted through a
// perf event array (so perf buffers are recorded in everyday use).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

// Layout (host byte order), 48 bytes:
//   0 ktime_ns u64, 8 lifetime_ns u64, 16 pid u32, 20 ppid u32, 24 tid u32,
//   28 exit_code u32, 32 comm[16]
struct exit_event {
	__u64 ktime_ns;
	__u64 lifetime_ns; // since the process started
	__u32 pid;         // tgid
	__u32 ppid;        // tgid of the real parent
	__u32 tid;         // the thread that exited last
	__u32 exit_code;   // raw wait status: (code << 8) | core dump 0x80 | signal
	char comm[16];     // the process's (thread group leader's) comm
};

const struct exit_event *unused_exit_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} exit_events SEC(".maps");

DEFINE_COUNTERS(exit);

#ifdef EXIT_NO_GROUP_DEAD
// Kernels before the tracepoint had group_dead (6.12 and older): the process
// is dead when its signal_struct counts no live thread. do_exit decrements
// that count before the tracepoint, so a thread that decremented earlier may
// still reach the tracepoint after the last one did and see 0 too: the first
// to claim (tgid, start time) in exit_seen reports, the others do not.
struct exit_key {
	__u32 tgid;
	__u32 _pad;
	__u64 start_time;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} exit_seen SEC(".maps");

static __always_inline bool last_thread(struct task_struct *p)
{
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return false;
	struct exit_key k = {.tgid = BPF_CORE_READ(p, tgid), .start_time = BPF_CORE_READ(p, group_leader, start_time)};
	__u8 one = 1;
	return bpf_map_update_elem(&exit_seen, &k, &one, BPF_NOEXIST) == 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exit_sched_process_exit, struct task_struct *p)
{
	if (!last_thread(p)) // a thread of a live process, or reported already
		return 0;
#else
SEC("tp_btf/sched_process_exit")
int BPF_PROG(exit_sched_process_exit, struct task_struct *p, bool group_dead)
{
	if (!group_dead) // a thread of a live process
		return 0;
#endif
	if (!selected())
		return 0;
	count_one(&exit_emitted);
	struct exit_event e = {};
	e.ktime_ns = bpf_ktime_get_ns();
	e.pid = p->tgid;
	e.tid = p->pid;
	e.ppid = p->real_parent->tgid;
	e.exit_code = p->exit_code;
	__u64 start = p->group_leader->start_time;
	e.lifetime_ns = e.ktime_ns > start ? e.ktime_ns - start : 0;
	bpf_probe_read_kernel_str(e.comm, sizeof(e.comm), p->group_leader->comm);
	if (bpf_perf_event_output(ctx, &exit_events, BPF_F_CURRENT_CPU, &e, sizeof(e)) < 0)
		count_one(&exit_drops);
	return 0;
}
