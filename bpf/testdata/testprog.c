//go:build ignore

// testprog is the BPF program that package bpf's tests load on the real
// kernel. Every program filters on target_tgid so that concurrent activity on
// the machine never reaches the test, and counts what it emitted so tests can
// check "emitted = received + lost" to the event.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// Set by the test before load.
volatile const __u32 target_tgid = 0;
// Force a reader wakeup every wakeup_every events (1: wake on every event).
volatile const __u32 wakeup_every = 1;

enum counter_slot {
	SLOT_RB_EMITTED = 0,   // ring buffer events the program tried to emit
	SLOT_PERF_EMITTED = 1, // perf events the program tried to emit
	SLOT_UPROBE_HITS = 2,  // uprobe program invocations
	SLOT_KPROBE_HITS = 3,  // kprobe program invocations
	SLOT_UPROBE_RC = 4,    // sum of the return register at each uprobe hit
	SLOT_MAX = 5,
};

struct test_event {
	__u64 seq;      // per-kind sequence number, starting at 0
	__u64 ktime_ns; // bpf_ktime_get_ns at emission
	__u32 tgid;
	__u32 cpu;
	__u8 tag[40];   // seq-derived pattern: tag[i] = (seq + i) & 0xff
};

// bpf2go -type only finds types that a global references.
const struct test_event *unused_test_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events_perf SEC(".maps");

// Failed bpf_ringbuf_reserve calls, per CPU (key 0).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rb_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int selected(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

// next_seq returns the slot's count and adds one. A plain read and write,
// not __sync_fetch_and_add: an atomic add that returns the old value is a
// BPF_FETCH instruction, which kernels before 5.12 reject ("BPF_STX uses
// reserved fields"). The tests cause the events from one thread at a time
// (the target process's syscalls, in sequence), so no two runs overlap.
static __always_inline __u64 next_seq(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (!c)
		return 0;
	__u64 v = *c;
	*c = v + 1;
	return v;
}

static __always_inline void fill(struct test_event *e, __u64 seq)
{
	e->seq = seq;
	e->ktime_ns = bpf_ktime_get_ns();
	e->tgid = target_tgid;
	e->cpu = bpf_get_smp_processor_id();
	for (int i = 0; i < sizeof(e->tag); i++)
		e->tag[i] = (seq + i) & 0xff;
}

// Ring buffer producer: one event per getppid(2) of the target process.
SEC("tracepoint/syscalls/sys_enter_getppid")
int rb_getppid(void *ctx)
{
	if (!selected())
		return 0;
	__u64 seq = next_seq(SLOT_RB_EMITTED);
	struct test_event *e = bpf_ringbuf_reserve(&events_rb, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *drops = bpf_map_lookup_elem(&rb_drops, &zero);
		if (drops)
			*drops += 1; // per-CPU slot: no other writer
		return 0;
	}
	fill(e, seq);
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (wakeup_every <= 1 || (seq + 1) % wakeup_every == 0)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
	return 0;
}

// Perf buffer producer: one event per getpgid(2) of the target process.
SEC("tracepoint/syscalls/sys_enter_getpgid")
int perf_getpgid(void *ctx)
{
	if (!selected())
		return 0;
	struct test_event e = {};
	fill(&e, next_seq(SLOT_PERF_EMITTED));
	bpf_perf_event_output(ctx, &events_perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

// return_reg reads the return value register. vmlinux.h is this host's
// (x86), so arm64's struct user_pt_regs is not in it: there x0, the
// register, is the struct's first u64.
static __always_inline __u64 return_reg(struct pt_regs *ctx)
{
#if defined(__TARGET_ARCH_arm64)
	return *(__u64 *)ctx;
#else
	return PT_REGS_RC(ctx);
#endif
}

// Counts calls of whatever user-space function the test attaches it to,
// and sums the return register: at a function's entry it holds (in Go's
// register ABI) the first argument, at its return the result, so the sum
// tells an entry probe from a return probe.
SEC("uprobe")
int count_uprobe(struct pt_regs *ctx)
{
	if (!selected())
		return 0;
	next_seq(SLOT_UPROBE_HITS);
	__u32 slot = SLOT_UPROBE_RC;
	__u64 *sum = bpf_map_lookup_elem(&counters, &slot);
	if (sum)
		*sum += return_reg(ctx);
	return 0;
}

// A kprobe program: it loads on any kernel, attaches only where kprobes exist.
SEC("kprobe/do_sys_openat2")
int count_kprobe(struct pt_regs *ctx)
{
	if (!selected())
		return 0;
	next_seq(SLOT_KPROBE_HITS);
	return 0;
}
