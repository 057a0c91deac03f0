//go:build ignore

// filtered is a user object that opts into ebpfrec's process filter
// (bpf/include/ebpfrec_filter.h): the record tests check that --pid, --comm
// and `-- COMMAND` select its events. It emits one event per getsid(2) call of
// a selected process (a call that neither the shell of `-- COMMAND` nor the
// Go runtime makes), and counts every call it sees (hits) and every
// event it tried to emit (emitted), so a test can tell that unselected calls
// happened and were filtered out, and that the accounting balances.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ebpfrec_filter.h"

char LICENSE[] SEC("license") = "GPL";

struct filtered_event {
	__u32 tgid;
	__u32 tid;
	__u64 n; // this CPU's emitted count at the event
};

// bpf2go -type only finds types that a global references.
const struct filtered_event *unused_filtered_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

#define COUNTER(name)                                                          \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                       \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} name SEC(".maps")

COUNTER(hits);           // getsid calls seen, selected or not
COUNTER(events_emitted); // events the program tried to emit
COUNTER(events_drops);   // failed reservations

static __always_inline __u64 count_one(void *map)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(map, &zero);
	if (!c)
		return 0;
	*c += 1;
	return *c;
}

SEC("tracepoint/syscalls/sys_enter_getsid")
int on_getsid(void *ctx)
{
	count_one(&hits);
	if (!ebpfrec_selected())
		return 0;
	__u64 n = count_one(&events_emitted);
	struct filtered_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_one(&events_drops);
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->n = n;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
