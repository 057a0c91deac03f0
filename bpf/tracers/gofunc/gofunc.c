//go:build ignore

// gofunc: entry, exit and latency of chosen Go functions, with their
// goroutine. Programs are attached as plain uprobes, at a function's first
// instruction and at each of its return instructions (never uretprobes: Go
// moves its stacks, and a uretprobe's rewritten return address kills the
// program at the next stack copy or scan). User space fills go_funcs with
// every probed instruction: the executable's inode and the instruction's
// address relative to the start of the executable's code where the process
// mapped it (mm->start_code), which is the same in every process of a
// position-independent executable too.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define GO_NAME_LEN 128

#define KIND_ENTRY 1
#define KIND_EXIT 2

// FLAG_NO_ENTRY: an exit whose entry was not seen (the function was
// entered before the probes were attached): latency_ns is 0.
#define FLAG_NO_ENTRY 1

// Layout (host byte order), 176 bytes:
//   0 ktime_ns u64, 8 latency_ns u64 (exit), 16 goid u64, 24 pid u32,
//   28 tid u32, 32 cpu u32, 36 kind u8, 37 flags u8, 38 pad u16,
//   40 func_id u32, 44 pad u32, 48 name char[128] (NUL-terminated)
// New fields go at the end.
struct go_event {
	__u64 ktime_ns;
	__u64 latency_ns;
	__u64 goid;
	__u32 pid; // tgid
	__u32 tid;
	__u32 cpu;
	__u8 kind;
	__u8 flags;
	__u16 _pad;
	__u32 func_id;
	__u32 _pad2;
	char name[GO_NAME_LEN];
};

const struct go_event *unused_go_event __attribute__((unused));

// A probed instruction: the executable's inode and the instruction's
// address minus the process's mm->start_code (the lowest address of the
// executable's executable segments, load bias included: binfmt_elf).
struct go_addr {
	__u64 ino;
	__u64 ip;
};

// What user space says about a probed instruction's function.
struct go_func {
	__u32 id;           // unique among the recording's probed functions
	__u32 goid_off;     // offset of runtime.g's goid in this executable
	__u32 stack_hi_off; // offset of runtime.g's stack.hi
	__u32 _pad;
	char name[GO_NAME_LEN];
};

const struct go_func *unused_go_func __attribute__((unused));
const struct go_addr *unused_go_addr __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_addr);
	__type(value, struct go_func);
} go_funcs SEC(".maps");

// A call in progress: its goroutine, process and function, and its depth
// on the goroutine's stack (stack.hi - SP, the same at the entry and at
// the return instruction, and unchanged when Go moves the stack). The
// depth tells a recursive call from the function's re-entry after its
// prologue grew the stack (morestack jumps back to the first instruction,
// so the entry probe fires twice for one call).
struct go_call {
	__u64 goid;
	__u64 depth;
	__u32 tgid;
	__u32 id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_call);
	__type(value, __u64);
} go_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} go_events SEC(".maps");

DEFINE_COUNTERS(go);

// The registers of Go's ABI: the goroutine (g) is in R14 on amd64 and R28
// on arm64. vmlinux.h is the host's (x86), so arm64's struct
// user_pt_regs is not in it: there regs[0..30] come first, then sp and pc.
#if defined(__TARGET_ARCH_arm64)
#define GO_G(ctx) (((__u64 *)(ctx))[28])
#define GO_SP(ctx) (((__u64 *)(ctx))[31])
#define GO_IP(ctx) (((__u64 *)(ctx))[32])
#else
#define GO_G(ctx) ((ctx)->r14)
#define GO_SP(ctx) ((ctx)->sp)
#define GO_IP(ctx) ((ctx)->ip)
#endif

static __always_inline void probed_addr(struct go_addr *a, __u64 ip)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct mm_struct *mm = BPF_CORE_READ(t, mm);
	a->ino = BPF_CORE_READ(mm, exe_file, f_inode, i_ino);
	a->ip = ip - BPF_CORE_READ(mm, start_code);
}

static __always_inline int probe(struct pt_regs *ctx, __u8 kind)
{
	if (!selected())
		return 0;
	struct go_addr a = {};
	probed_addr(&a, GO_IP(ctx));
	struct go_func *f = bpf_map_lookup_elem(&go_funcs, &a);
	if (!f)
		return 0; // an address user space did not register
	__u64 now = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 g = GO_G(ctx), goid = 0, hi = 0;
	bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + f->goid_off));
	bpf_probe_read_user(&hi, sizeof(hi), (void *)(g + f->stack_hi_off));
	struct go_call c = {.goid = goid, .depth = hi - GO_SP(ctx), .tgid = pid_tgid >> 32, .id = f->id};
	__u64 latency = 0;
	__u8 flags = 0;
	if (kind == KIND_ENTRY) {
		// An entry already there at this depth: the same call, entered
		// again after morestack. Keep its time; report it once.
		if (bpf_map_update_elem(&go_calls, &c, &now, BPF_NOEXIST) != 0)
			return 0;
	} else {
		__u64 *start = bpf_map_lookup_elem(&go_calls, &c);
		if (start && *start <= now) {
			latency = now - *start;
			bpf_map_delete_elem(&go_calls, &c);
		} else {
			flags |= FLAG_NO_ENTRY;
		}
	}
	__u64 n = count_one(&go_emitted);
	struct go_event *e = bpf_ringbuf_reserve(&go_events, sizeof(*e), 0);
	if (!e) {
		count_one(&go_drops);
		return 0;
	}
	e->ktime_ns = now;
	e->latency_ns = latency;
	e->goid = goid;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->flags = flags;
	e->_pad = 0;
	e->func_id = f->id;
	e->_pad2 = 0;
	__builtin_memcpy(e->name, f->name, GO_NAME_LEN);
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}

SEC("uprobe")
int go_entry(struct pt_regs *ctx)
{
	return probe(ctx, KIND_ENTRY);
}

SEC("uprobe")
int go_exit(struct pt_regs *ctx)
{
	return probe(ctx, KIND_EXIT);
}
