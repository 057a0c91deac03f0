//go:build ignore

// exec: one event per successful execve/execveat, from the BTF tracepoint
// sched_process_exec (after the new image is set up, so comm is the new one).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"
#include "exec_image.h"

char LICENSE[] SEC("license") = "GPL";

#define FILENAME_LEN EXEC_FILENAME_LEN
#define ARGS_LEN EXEC_ARGS_LEN

// Layout (host byte order), 568 bytes:
//   0 ktime_ns u64, 8 pid u32, 12 ppid u32, 16 uid u32, 20 old_pid u32,
//   24 comm[16], 40 filename[256] (NUL-terminated), 296 filename_trunc u32,
//   300 args_len u32, 304 args[256], 560 cpu u32, 564 pad u32
// Earlier layouts (the Go decoder reads them by size): 560 bytes (no cpu),
// 304 bytes (no args_len, args, cpu). New fields go at the end.
struct exec_event {
	__u64 ktime_ns;
	__u32 pid;     // tgid of the process
	__u32 ppid;    // tgid of its real parent
	__u32 uid;     // real uid
	__u32 old_pid; // the thread id that called exec (differs for a non-leader thread)
	char comm[16];
	char filename[FILENAME_LEN];
	__u32 filename_trunc; // 1 if filename filled its buffer (it may be cut)
	__u32 args_len;       // length of all arguments (0 if unreadable); args holds the first ARGS_LEN bytes
	char args[ARGS_LEN];  // argv[0..], each NUL-terminated, as in the new stack
	__u32 cpu;            // bpf_get_smp_processor_id(): ring buffers do not say
	__u32 _pad;
};

// bpf2go -type only finds types that a global references.
const struct exec_event *unused_exec_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} exec_events SEC(".maps");

DEFINE_COUNTERS(exec);

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	filter_exec(p, bprm); // an executable of exec_allow selects it from here on
	if (!selected())
		return 0;
	__u64 n = count_one(&exec_emitted);
	struct exec_event *e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		count_one(&exec_drops);
		return 0;
	}
	e->ktime_ns = bpf_ktime_get_ns();
	e->cpu = bpf_get_smp_processor_id();
	e->_pad = 0;
	e->pid = p->tgid;
	e->ppid = p->real_parent->tgid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->old_pid = old_pid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	read_exec_image(p, bprm, e->filename, &e->filename_trunc, e->args, &e->args_len);
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}
