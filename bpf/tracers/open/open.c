//go:build ignore

// open: file opens through the openat family (open, creat, openat,
// openat2), entry and exit paired in the kernel: the syscall-entry
// tracepoints save the arguments in a hash keyed by pid_tgid, the exit
// tracepoints emit one event with the result and drop the entry.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define PATH_LEN 256
#define AT_FDCWD -100
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000

// Syscall numbers (x86_64), as the event's nr.
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_OPENAT2 437

struct open_start {
	__u64 ktime_ns;
	__u64 flags;
	__u64 upath; // the user's path, read again at exit if unread at entry
	__u32 mode;
	__s32 dfd;
	__u32 nr;
	__u32 path_len; // bytes read including the NUL, 0 if the read failed
	char path[PATH_LEN];
};

// Layout (host byte order), 328 bytes:
//   0 ktime_ns u64 (entry), 8 latency_ns u64, 16 flags u64, 24 pid u32,
//   28 tid u32, 32 ret s32, 36 dfd s32, 40 mode u32, 44 nr u32,
//   48 comm[16], 64 path[256], 320 cpu u32, 324 pad u32
// Earlier layout (the Go decoder reads it by size): 320 bytes (no cpu).
// New fields go at the end.
struct open_event {
	__u64 ktime_ns;
	__u64 latency_ns;
	__u64 flags; // open flags (O_*)
	__u32 pid;
	__u32 tid;
	__s32 ret; // the file descriptor, or -errno
	__s32 dfd; // directory fd of a relative path (AT_FDCWD = -100)
	__u32 mode;
	__u32 nr; // syscall number
	char comm[16];
	char path[PATH_LEN]; // NUL-terminated; "" if unreadable
	__u32 cpu;           // bpf_get_smp_processor_id() at exit
	__u32 _pad;
};

const struct open_event *unused_open_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} open_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); // pid_tgid
	__type(value, struct open_start);
} open_starts SEC(".maps");

DEFINE_COUNTERS(open);

static __always_inline int enter(__u32 nr, long dfd, const char *path, __u64 flags, __u32 mode)
{
	if (!selected())
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct open_start s = {};
	s.ktime_ns = bpf_ktime_get_ns();
	s.flags = flags;
	s.mode = mode;
	s.dfd = (__s32)dfd;
	s.nr = nr;
	s.upath = (__u64)path;
	long n = bpf_probe_read_user_str(s.path, sizeof(s.path), path);
	s.path_len = n > 0 ? n : 0;
	if (n <= 0)
		s.path[0] = 0;
	bpf_map_update_elem(&open_starts, &id, &s, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int open_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter(NR_OPENAT, ctx->args[0], (const char *)ctx->args[1], (__u32)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_open")
int open_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter(NR_OPEN, AT_FDCWD, (const char *)ctx->args[0], (__u32)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int open_enter_creat(struct trace_event_raw_sys_enter *ctx)
{
	return enter(NR_CREAT, AT_FDCWD, (const char *)ctx->args[0], O_CREAT | O_WRONLY | O_TRUNC, (__u32)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int open_enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};
	const struct open_how *uhow = (const struct open_how *)ctx->args[2];
	if (bpf_probe_read_user(&how, sizeof(how), uhow) < 0)
		how.flags = how.mode = 0;
	return enter(NR_OPENAT2, ctx->args[0], (const char *)ctx->args[1], how.flags, (__u32)how.mode);
}

static __always_inline int leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct open_start *s = bpf_map_lookup_elem(&open_starts, &id);
	if (!s) // not selected at entry (or the tracer started mid-call)
		return 0;
	__u64 n = count_one(&open_emitted);
	struct open_event *e = bpf_ringbuf_reserve(&open_events, sizeof(*e), 0);
	if (!e) {
		count_one(&open_drops);
		bpf_map_delete_elem(&open_starts, &id);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	e->ktime_ns = s->ktime_ns;
	e->latency_ns = now - s->ktime_ns;
	e->flags = s->flags;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ret = (__s32)ret;
	e->dfd = s->dfd;
	e->mode = s->mode;
	e->nr = s->nr;
	e->cpu = bpf_get_smp_processor_id();
	e->_pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(e->path, s->path, PATH_LEN);
	// The entry's read fails where the string's page is not mapped yet
	// (typically just after an exec: BPF cannot fault pages in). The
	// syscall itself has faulted it in by now, so read it again. Only
	// then: the entry's copy is what the kernel went on to use, which a
	// read at exit might not be (another thread may have changed it), and
	// most opens need no second copy.
	if (s->path_len == 0 && bpf_probe_read_user_str(e->path, PATH_LEN, (const char *)s->upath) <= 0)
		e->path[0] = 0;
	bpf_ringbuf_submit(e, rb_flags(n));
	bpf_map_delete_elem(&open_starts, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int open_exit_openat(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_open")
int open_exit_open(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_creat")
int open_exit_creat(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_openat2")
int open_exit_openat2(struct trace_event_raw_sys_exit *ctx) { return leave(ctx->ret); }
