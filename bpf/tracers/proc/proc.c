//go:build ignore

// proc: the process table's kernel side. One event per new process (fork of
// a new thread group; new threads are not reported: every event resolves by
// tgid, so a thread adds volume and no information), per successful exec
// (with the new comm, the filename and the arguments) and per process exit
// (when its last thread exits). User space adds a snapshot of the processes
// alive at start to the same stream (snapshot.go).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"
#include "exec_image.h"

char LICENSE[] SEC("license") = "GPL";

#define FILENAME_LEN EXEC_FILENAME_LEN
#define ARGS_LEN EXEC_ARGS_LEN

// Event kinds (kind); 4 and 5 are written by user space.
#define PROC_FORK 1
#define PROC_EXEC 2
#define PROC_EXIT 3
#define PROC_RENAME 6

// Layout (host byte order). Every event starts with the 72-byte head:
//   0 ktime_ns u64, 8 kind u32, 12 pid u32, 16 tid u32, 20 ppid u32,
//   24 uid u32, 28 exit_code u32, 32 cgroup_id u64, 40 start_ns u64,
//   48 comm[16], 64 flags u32, 68 cpu u32 (records user space writes: 0xffffffff)
// fork, exit and rename events are the head alone; exec events go on with
//   72 filename[256] (NUL-terminated), 328 filename_trunc u32,
//   332 args_len u32, 336 args[256]   (592 bytes)
struct proc_head {
	__u64 ktime_ns;
	__u32 kind;
	__u32 pid;       // tgid (for fork: the child's)
	__u32 tid;       // the thread (fork: the child's; exec: the caller's; exit: the last)
	__u32 ppid;      // tgid of the real parent
	__u32 uid;       // real uid
	__u32 exit_code; // exit: raw wait status
	__u64 cgroup_id; // cgroup v2 id (fork: the child's, which clone3's CLONE_INTO_CGROUP may set)
	__u64 start_ns;  // the process's start (its leader's start_time, CLOCK_MONOTONIC)
	char comm[16];   // fork: the child's (the parent's), exec and rename: the new one
	__u32 flags;
	__u32 cpu;        // bpf_get_smp_processor_id(); user-space records: 0xffffffff
};

struct proc_exec_event {
	struct proc_head h;
	char filename[FILENAME_LEN];
	__u32 filename_trunc;
	__u32 args_len;
	char args[ARGS_LEN];
};

const struct proc_head *unused_proc_head __attribute__((unused));
const struct proc_exec_event *unused_proc_exec_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} proc_events SEC(".maps");

DEFINE_COUNTERS(proc);

// A process is dead when its signal_struct counts no live thread; do_exit
// decrements the count before the tracepoint, so two threads may both see
// 0: the first to claim (tgid, start time) reports. (The group_dead argument
// of newer kernels would spare the map, but 6.12 and older lack it.)
struct proc_exit_key {
	__u32 tgid;
	__u32 _pad;
	__u64 start_time;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct proc_exit_key);
	__type(value, __u8);
} proc_exit_seen SEC(".maps");

static __always_inline void fill_head(struct proc_head *h, __u32 kind, struct task_struct *p)
{
	h->ktime_ns = bpf_ktime_get_ns();
	h->kind = kind;
	h->pid = BPF_CORE_READ(p, tgid);
	h->tid = BPF_CORE_READ(p, pid);
	h->ppid = BPF_CORE_READ(p, real_parent, tgid);
	h->uid = BPF_CORE_READ(p, real_cred, uid.val);
	h->exit_code = 0;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->start_ns = BPF_CORE_READ(p, group_leader, start_time);
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(proc_fork, struct task_struct *parent, struct task_struct *child)
{
	if (parent->tgid == child->tgid) // a new thread
		return 0;
	// The fork is the parent's act: selected as the parent is (a followed
	// command's children are allowed by the follow program, which may run
	// after this one).
	if (!selected())
		return 0;
	__u64 n = count_one(&proc_emitted);
	struct proc_head *h = bpf_ringbuf_reserve(&proc_events, sizeof(*h), 0);
	if (!h) {
		count_one(&proc_drops);
		return 0;
	}
	fill_head(h, PROC_FORK, child);
	h->start_ns = child->start_time;
	// The child's own cgroup: its parent's, unless clone3 put it into
	// another (CLONE_INTO_CGROUP, as container runtimes do).
	h->cgroup_id = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(h->comm, sizeof(h->comm), child->comm);
	bpf_ringbuf_submit(h, rb_flags(n));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	filter_exec(p, bprm); // an executable of exec_allow selects it from here on
	if (!selected())
		return 0;
	__u64 n = count_one(&proc_emitted);
	struct proc_exec_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		count_one(&proc_drops);
		return 0;
	}
	fill_head(&e->h, PROC_EXEC, p);
	e->h.tid = old_pid;
	bpf_get_current_comm(e->h.comm, sizeof(e->h.comm));
	read_exec_image(p, bprm, e->filename, &e->filename_trunc, e->args, &e->args_len);
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(proc_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, signal, live.counter) != 0) // a thread of a live process
		return 0;
	if (!selected())
		return 0;
	struct proc_exit_key k = {.tgid = p->tgid, .start_time = BPF_CORE_READ(p, group_leader, start_time)};
	__u8 one = 1;
	if (bpf_map_update_elem(&proc_exit_seen, &k, &one, BPF_NOEXIST) != 0) // reported already
		return 0;
	__u64 n = count_one(&proc_emitted);
	struct proc_head *h = bpf_ringbuf_reserve(&proc_events, sizeof(*h), 0);
	if (!h) {
		count_one(&proc_drops);
		return 0;
	}
	fill_head(h, PROC_EXIT, p);
	h->exit_code = p->exit_code;
	bpf_probe_read_kernel_str(h->comm, sizeof(h->comm), p->group_leader->comm);
	bpf_ringbuf_submit(h, rb_flags(n));
	return 0;
}

// A process renaming itself (prctl PR_SET_NAME on its main thread, a write
// to /proc/PID/comm): its comm from then on. Only the thread-group
// leader's name is the process's (the others name threads); the rename
// that every exec makes, to the file's name, is left to the exec event
// (in_execve is set from the start of the exec to its end).
SEC("tp_btf/task_rename")
int BPF_PROG(proc_rename, struct task_struct *task, const char *comm)
{
	if (task->pid != task->tgid)
		return 0;
	if (BPF_CORE_READ_BITFIELD_PROBED(task, in_execve))
		return 0;
	if (!selected())
		return 0;
	__u64 n = count_one(&proc_emitted);
	struct proc_head *h = bpf_ringbuf_reserve(&proc_events, sizeof(*h), 0);
	if (!h) {
		count_one(&proc_drops);
		return 0;
	}
	fill_head(h, PROC_RENAME, task);
	// The renamed task's cgroup (a write to /proc/PID/comm comes from
	// another task of the process, in the same cgroup as a rule, but not
	// always).
	h->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(h->comm, sizeof(h->comm), comm);
	bpf_ringbuf_submit(h, rb_flags(n));
	return 0;
}
