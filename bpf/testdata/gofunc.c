//go:build ignore

// gofunc is the BPF program of package bpf's Go function probe tests: one
// program for a Go function's entry, one for each of its return
// instructions (attached as plain uprobes: Go moves its stacks, so no
// uretprobe). Both read Go's register ABI: on amd64 the first argument and
// the first result are in RAX and the goroutine (g) is in R14; on arm64 they
// are in R0 and R28.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// Set by the test before load: the process to count, and the offset of
// runtime.g's goid field (from the target's DWARF).
volatile const __u32 target_tgid = 0;
volatile const __u64 g_goid_offset = 0;

enum stat_slot {
	ST_ENTRIES = 0,    // entry probe hits
	ST_RETURNS = 1,    // return probe hits
	ST_ARG_SUM = 2,    // sum of the first argument at entry
	ST_RET_SUM = 3,    // sum of the first result at return
	ST_G = 4,          // the goroutine pointer of the first entry
	ST_G_MISMATCH = 5, // hits whose goroutine pointer differs from ST_G
	ST_GOID = 6,       // goid read from the goroutine at the first entry
	ST_GOID_ERR = 7,   // failed reads of the goid
	ST_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// The processes counted when target_tgid is 0: ProcessTracer's tests fill
// it through the tracer's AllowPID and BlockPID.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} allowed SEC(".maps");

// Go function entries, library function entries and library function
// returns, by process (tgid).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} go_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} lib_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} lib_returns SEC(".maps");

// Calls in progress, by goroutine and depth on its stack (stack.hi - SP,
// the same at the entry and at the return instruction, and unchanged when
// Go moves the stack). The entry probe fires again for the same call when
// the function's prologue calls morestack (to grow the stack, or for a
// preemption request, which poisons the stack guard): morestack jumps back
// to the first instruction. Such a re-entry finds its call here and is not
// counted.
struct go_call {
	__u64 g;
	__u64 depth;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct go_call);
	__type(value, __u8);
} go_open SEC(".maps");

// runtime.g's first field is its stack {lo, hi}: the runtime's assembly
// relies on that offset, so it is fixed.
#define G_STACK_HI 8

// Hits by probed address (the instruction pointer at the probe).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} hits SEC(".maps");

// The registers of the Go ABI. vmlinux.h is this host's (x86), so arm64's
// struct user_pt_regs is not in it: there regs[0..30] come first, then sp
// and pc.
#if defined(__TARGET_ARCH_arm64)
#define GO_R0(ctx) (((__u64 *)(ctx))[0])
#define GO_G(ctx) (((__u64 *)(ctx))[28])
#define GO_SP(ctx) (((__u64 *)(ctx))[31])
#define GO_IP(ctx) (((__u64 *)(ctx))[32])
#else
#define GO_R0(ctx) ((ctx)->ax)
#define GO_G(ctx) ((ctx)->r14)
#define GO_SP(ctx) ((ctx)->sp)
#define GO_IP(ctx) ((ctx)->ip)
#endif

// go_call_of returns the call at ctx: its goroutine and depth.
static __always_inline struct go_call go_call_of(struct pt_regs *ctx)
{
	__u64 g = GO_G(ctx), hi = 0;
	bpf_probe_read_user(&hi, sizeof(hi), (void *)(g + G_STACK_HI));
	struct go_call c = {.g = g, .depth = hi - GO_SP(ctx)};
	return c;
}

static __always_inline __u64 *slot(__u32 s)
{
	return bpf_map_lookup_elem(&stats, &s);
}

static __always_inline void add(__u32 s, __u64 v)
{
	__u64 *p = slot(s);
	if (p)
		__sync_fetch_and_add(p, v);
}

// count_hit counts a hit at ip and checks the goroutine g against the
// first one seen (the test calls the function from one goroutine).
static __always_inline void count_hit(__u64 ip, __u64 g)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(&hits, &ip);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&hits, &ip, &one, BPF_NOEXIST);
	__u64 *first = slot(ST_G);
	if (!first)
		return;
	if (*first == 0) {
		*first = g;
		__u64 goid = 0;
		if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + g_goid_offset)) == 0)
			add(ST_GOID, goid);
		else
			add(ST_GOID_ERR, 1);
	} else if (*first != g) {
		add(ST_G_MISMATCH, 1);
	}
}

static __always_inline __u32 tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline int selected(void)
{
	__u32 pid = tgid();
	if (target_tgid)
		return pid == target_tgid;
	return bpf_map_lookup_elem(&allowed, &pid) != 0;
}

static __always_inline void count_pid(void *map)
{
	__u32 pid = tgid();
	__u64 one = 1, *n = bpf_map_lookup_elem(map, &pid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(map, &pid, &one, BPF_NOEXIST);
}

SEC("uprobe")
int go_entry(struct pt_regs *ctx)
{
	if (!selected())
		return 0;
	struct go_call c = go_call_of(ctx);
	__u8 one = 1;
	if (bpf_map_update_elem(&go_open, &c, &one, BPF_NOEXIST) != 0)
		return 0; // the same call, entered again after morestack
	add(ST_ENTRIES, 1);
	add(ST_ARG_SUM, GO_R0(ctx));
	count_pid(&go_calls);
	count_hit(GO_IP(ctx), GO_G(ctx));
	return 0;
}

SEC("uprobe")
int go_return(struct pt_regs *ctx)
{
	if (!selected())
		return 0;
	struct go_call c = go_call_of(ctx);
	bpf_map_delete_elem(&go_open, &c);
	add(ST_RETURNS, 1);
	add(ST_RET_SUM, GO_R0(ctx));
	count_hit(GO_IP(ctx), GO_G(ctx));
	return 0;
}

// A C library function's entry and return (a uretprobe: C stacks stay put).
SEC("uprobe")
int lib_entry(struct pt_regs *ctx)
{
	if (selected())
		count_pid(&lib_calls);
	return 0;
}

SEC("uretprobe")
int lib_return(struct pt_regs *ctx)
{
	if (selected())
		count_pid(&lib_returns);
	return 0;
}
