// ebpfrec_filter.h: opts a BPF object of your own into ebpfrec's process
// filter, so that `ebpfrec record --object prog.o` can record only the
// processes chosen with --pid, --comm or `-- COMMAND` (the command and all
// its descendants), and never ebpfrec itself.
//
// Include it after vmlinux.h (or <linux/types.h>) and <bpf/bpf_helpers.h>,
// and start every program that emits events with
//
//	if (!ebpfrec_selected())
//		return 0;
//
// ebpfrec finds the four maps below in the object by their names and, at
// load time, puts the recording's own filter maps in their place (the maps
// its built-in tracers share); it then fills them from --pid, --comm and
// `-- COMMAND`. Without a selection every process but ebpfrec is selected.
// Keep the definitions as they are: ebpfrec checks each map's type, key and
// value sizes and max_entries against its own, and that every program
// writing to a recorded ring buffer or perf event array reads
// ebpfrec_filter_config (which ebpfrec_selected() does).
//
// An object without these maps cannot be filtered by process, and ebpfrec
// refuses --pid, --comm and `-- COMMAND` for it instead of recording every
// process.
//
// The same filter as filter.h of ebpfrec's built-in tracers, under names of
// its own, so that an object's maps are never taken for the filter by
// chance. The header is self-contained: copy it into your project.
#ifndef EBPFREC_FILTER_USER_H
#define EBPFREC_FILTER_USER_H

#define EBPFREC_FILTER_PID_ALLOW (1U << 0)
#define EBPFREC_FILTER_COMM_ALLOW (1U << 1)
#define EBPFREC_FILTER_PID_BLOCK (1U << 2)
#define EBPFREC_FILTER_FOLLOW (1U << 3)

#define EBPFREC_FILTER_MAX_PIDS 65536
#define EBPFREC_FILTER_MAX_COMMS 1024
#define EBPFREC_COMM_LEN 16

// flags: EBPFREC_FILTER_* in force (0 selects every process); gen changes
// with every change of the filter.
struct ebpfrec_filter_cfg {
	__u32 flags;
	__u32 gen;
};

struct ebpfrec_comm_key {
	char comm[EBPFREC_COMM_LEN];
};

// Key 0: the configuration.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ebpfrec_filter_cfg);
} ebpfrec_filter_config SEC(".maps");

// Selected processes (tgid), by --pid or by following `-- COMMAND`.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFREC_FILTER_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} ebpfrec_pid_allow SEC(".maps");

// Processes never selected (ebpfrec itself).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFREC_FILTER_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} ebpfrec_pid_block SEC(".maps");

// Selected command names (--comm), NUL-padded as the kernel keeps them.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EBPFREC_FILTER_MAX_COMMS);
	__type(key, struct ebpfrec_comm_key);
	__type(value, __u8);
} ebpfrec_comm_allow SEC(".maps");

// ebpfrec_selected returns 1 if the current process is to be recorded, else 0:
// never if it is blocked; otherwise always when no selection is in force,
// else when its tgid or its comm is selected.
static __always_inline int ebpfrec_selected(void)
{
	__u32 zero = 0;
	struct ebpfrec_filter_cfg *cfg = bpf_map_lookup_elem(&ebpfrec_filter_config, &zero);
	__u32 flags = cfg ? cfg->flags : 0;
	if (!flags)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if ((flags & EBPFREC_FILTER_PID_BLOCK) && bpf_map_lookup_elem(&ebpfrec_pid_block, &tgid))
		return 0;
	if (!(flags & (EBPFREC_FILTER_PID_ALLOW | EBPFREC_FILTER_COMM_ALLOW)))
		return 1;
	if ((flags & EBPFREC_FILTER_PID_ALLOW) && bpf_map_lookup_elem(&ebpfrec_pid_allow, &tgid))
		return 1;
	if (flags & EBPFREC_FILTER_COMM_ALLOW) {
		struct ebpfrec_comm_key key = {};
		bpf_get_current_comm(key.comm, sizeof(key.comm));
		if (bpf_map_lookup_elem(&ebpfrec_comm_allow, &key))
			return 1;
	}
	return 0;
}

#endif
