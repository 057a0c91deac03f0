//go:build ignore

// follow: the process-tree follower of `ebpfrec record -- COMMAND`, and the
// exec program of the executable allow-list (filter.h: filter_exec). Loaded
// once per recording with the shared filter maps (MapReplacements), it
// allows every new process whose parent is allowed, and forgets followed
// processes once they are freed (after every tracer saw their exit), so a
// reused pid is not selected by mistake. Processes in follow_parents (the
// recorder while it starts the command) have their children allowed from
// the fork on, so the command is recorded from its very exec. It only acts while FILTER_FOLLOW is
// set in filter_config.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

// Processes allowed by the follower (key 0), for tests and diagnostics.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} follow_count SEC(".maps");

// Processes whose children are allowed, though they are not themselves
// (the recorder, while it starts the command to record).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} follow_parents SEC(".maps");

SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!(filter_flags() & FILTER_FOLLOW))
		return 0;
	__u32 ptgid = parent->tgid;
	__u32 ctgid = child->tgid;
	if (ptgid == ctgid) // a new thread: its process is already known
		return 0;
	if (!bpf_map_lookup_elem(&pid_allow, &ptgid) && !bpf_map_lookup_elem(&follow_parents, &ptgid))
		return 0;
	__u8 v = PID_FOLLOWED;
	if (bpf_map_update_elem(&pid_allow, &ctgid, &v, BPF_NOEXIST) == 0)
		count_one(&follow_count);
	return 0;
}

// The processes that the filter allowed by itself (followed, or running
// an executable of exec_allow) are forgotten once freed.
SEC("tp_btf/sched_process_free")
int BPF_PROG(follow_free, struct task_struct *p)
{
	if (!(filter_flags() & (FILTER_FOLLOW | FILTER_EXEC)))
		return 0;
	if (p->pid != p->tgid) // only the thread group leader ends the process
		return 0;
	__u32 tgid = p->tgid;
	__u8 *v = bpf_map_lookup_elem(&pid_allow, &tgid);
	if (v && (*v == PID_FOLLOWED || *v == PID_EXEC))
		bpf_map_delete_elem(&pid_allow, &tgid);
	return 0;
}

// Execs of the executables of exec_allow, in recordings where no tracer
// of sched_process_exec calls filter_exec itself (no proc stream, no exec
// tracer): the uprobes of user-space tracers need the process selected.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(follow_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	filter_exec(p, bprm);
	return 0;
}
