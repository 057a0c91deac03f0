// filter.h: the kernel-side process filter shared by every built-in tracer,
// and the emit helpers (drop and emitted counters, batched wakeups).
//
// Every tracer includes this header, so every tracer's object has its own
// copy of the filter maps; ebpfrec creates them once per recording (Go:
// common.NewFilter) and hands the same maps to every tracer at load time
// through ebpf.CollectionOptions.MapReplacements, so one AllowPID selects the
// process for all tracers at once.
//
// Semantics of selected(), evaluated on the current task's process (tgid):
//   - a pid in pid_block is never selected (when FILTER_PID_BLOCK is on);
//   - when neither FILTER_PID_ALLOW nor FILTER_COMM_ALLOW is on, everything
//     else is selected;
//   - otherwise a process is selected if its tgid is in pid_allow (with
//     FILTER_PID_ALLOW on) or its comm is in comm_allow (with
//     FILTER_COMM_ALLOW on).
//
// With FILTER_EXEC, exec_allow lists executables by the kernel's identity
// of their file (inode number and superblock device): a process that execs
// one is allowed from its exec on (pid_allow, PID_EXEC), and forgotten when
// it execs another file or is freed (filter_exec; follow.c). Every program
// of sched_process_exec that calls selected() calls filter_exec first, so
// that it sees the process as selected whatever the order of the programs
// on the tracepoint.
#ifndef EBPFREC_FILTER_H
#define EBPFREC_FILTER_H

#define FILTER_PID_ALLOW (1U << 0)
#define FILTER_COMM_ALLOW (1U << 1)
#define FILTER_PID_BLOCK (1U << 2)
#define FILTER_FOLLOW (1U << 3)
#define FILTER_EXEC (1U << 4)

#define FILTER_MAX_PIDS 65536
#define FILTER_MAX_COMMS 1024
#define FILTER_MAX_EXECS 1024
#define COMM_LEN 16

// pid_allow values.
#define PID_ALLOWED 1  // allowed explicitly (AllowPID)
#define PID_FOLLOWED 2 // allowed because its parent was (follow program)
#define PID_EXEC 3     // allowed because it execs an executable of exec_allow

// The filter's configuration: flags is a bit set of FILTER_* (0 selects
// everything); gen changes with every change of the filter from user
// space, so programs may cache a task's selection until it changes.
struct filter_cfg {
	__u32 flags;
	__u32 gen;
};

// Key 0: the configuration.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_cfg);
} filter_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} pid_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} pid_block SEC(".maps");

struct comm_key {
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_COMMS);
	__type(key, struct comm_key);
	__type(value, __u8);
} comm_allow SEC(".maps");

// An executable as the kernel knows its file: the inode number and the
// device of its superblock (the kernel's dev_t, MKDEV(major, minor), not
// stat's st_dev encoding; Go: common.KernelDev).
struct exec_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_EXECS);
	__type(key, struct exec_key);
	__type(value, __u8);
} exec_allow SEC(".maps");

static __always_inline struct filter_cfg *filter_config_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&filter_config, &zero);
}

static __always_inline __u32 filter_flags(void)
{
	struct filter_cfg *cfg = filter_config_get();
	return cfg ? cfg->flags : 0;
}

// selected_with reports whether process tgid, whose comm is comm (may be
// NULL: then the current task's comm is used), passes a filter with flags.
static __always_inline bool selected_with(__u32 flags, __u32 tgid, const char *comm)
{
	if (!flags)
		return true;
	if ((flags & FILTER_PID_BLOCK) && bpf_map_lookup_elem(&pid_block, &tgid))
		return false;
	if (!(flags & (FILTER_PID_ALLOW | FILTER_COMM_ALLOW)))
		return true;
	if ((flags & FILTER_PID_ALLOW) && bpf_map_lookup_elem(&pid_allow, &tgid))
		return true;
	if (flags & FILTER_COMM_ALLOW) {
		struct comm_key key = {};
		if (comm)
			__builtin_memcpy(key.comm, comm, COMM_LEN);
		else
			bpf_get_current_comm(key.comm, sizeof(key.comm));
		if (bpf_map_lookup_elem(&comm_allow, &key))
			return true;
	}
	return false;
}

// selected_tgid reports whether process tgid, whose comm is comm (may be
// NULL: then the current task's comm is used), passes the filter.
static __always_inline bool selected_tgid(__u32 tgid, const char *comm)
{
	return selected_with(filter_flags(), tgid, comm);
}

// selected reports whether the current process passes the filter. Every
// program calls it first, so unselected events never reach user space.
static __always_inline bool selected(void)
{
	return selected_tgid(bpf_get_current_pid_tgid() >> 32, NULL);
}

// filter_exec applies exec_allow to process p, which has just exec'd the
// file of bprm (tp_btf/sched_process_exec; BTF pointers): a match allows
// it (PID_EXEC, unless it is allowed otherwise already), and undoes an
// earlier BlockPID of its pid (a pid that a released process had, reused);
// another file ends an allowance that an earlier exec gave.
static __always_inline void filter_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	if (!(filter_flags() & FILTER_EXEC))
		return;
	__u32 tgid = p->tgid;
	struct inode *ino = bprm->file->f_inode;
	struct exec_key k = {.ino = ino->i_ino, .dev = ino->i_sb->s_dev};
	if (bpf_map_lookup_elem(&exec_allow, &k)) {
		__u8 v = PID_EXEC;
		bpf_map_delete_elem(&pid_block, &tgid);
		bpf_map_update_elem(&pid_allow, &tgid, &v, BPF_NOEXIST);
		return;
	}
	__u8 *v = bpf_map_lookup_elem(&pid_allow, &tgid);
	if (v && *v == PID_EXEC)
		bpf_map_delete_elem(&pid_allow, &tgid);
}

// ---- emit helpers -------------------------------------------------------

// Force a reader wakeup every wakeup_every events per CPU; the others are
// submitted with BPF_RB_NO_WAKEUP, and the reader's deadline (flush
// interval) bounds their latency. 0 leaves the choice to the kernel (wake
// when the reader has caught up). Set from Go before load.
volatile const __u32 wakeup_every = 256;

// DEFINE_COUNTERS(prefix) defines the two per-CPU counters of a stream:
// prefix##_emitted (key 0: events the program tried to emit) and
// prefix##_drops (key 0: failed reserve/output calls). For every stream,
// sum(emitted) = received + sum(drops). For perf buffers, drops include the
// ENOSPC failures that perf also reports to the reader as lost samples.
#define DEFINE_COUNTERS(prefix)                                                \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                       \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} prefix##_emitted SEC(".maps");                                       \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                       \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} prefix##_drops SEC(".maps")

// count_emit adds one to a per-CPU counter map and returns the new value
// (0 if the map lookup failed, which cannot happen for a 1-entry array).
static __always_inline __u64 count_one(void *map)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(map, &zero);
	if (!c)
		return 0;
	*c += 1; // per-CPU slot, and BPF programs do not nest on one CPU's slot here
	return *c;
}

// rb_flags returns the bpf_ringbuf_submit flags for the n-th event of this CPU.
static __always_inline __u64 rb_flags(__u64 n)
{
	if (wakeup_every == 0)
		return 0;
	if (wakeup_every == 1 || n % wakeup_every == 0)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

#endif
