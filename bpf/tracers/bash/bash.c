//go:build ignore

// bash: the command lines that interactive bash reads, from a uretprobe on
// readline (in bash itself, which links readline statically on Debian, or
// in libreadline): the returned line, or NULL at end of input.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define BASH_LINE_LEN 480

// Layout (host byte order), 512 bytes:
//   0 ktime_ns u64 (readline's return), 8 pid u32, 12 tid u32, 16 uid u32,
//   20 cpu u32, 24 len u32 (bytes of line, the NUL excluded),
//   28 flags u32 (1: end of input, readline returned NULL; 2: the line
//   filled the buffer and may be cut), 32 line char[480] (NUL-terminated)
// New fields go at the end.
struct bash_event {
	__u64 ktime_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 cpu;
	__u32 len;
	__u32 flags;
	char line[BASH_LINE_LEN];
};

const struct bash_event *unused_bash_event __attribute__((unused));

#define FLAG_EOF 1
#define FLAG_TRUNCATED 2

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} bash_events SEC(".maps");

DEFINE_COUNTERS(bash);

// The return value register. vmlinux.h is the host's (x86): arm64's
// struct user_pt_regs is not in it; there regs[0] comes first.
#if defined(__TARGET_ARCH_arm64)
#define RET(ctx) (((__u64 *)(ctx))[0])
#else
#define RET(ctx) ((ctx)->ax)
#endif

SEC("uretprobe")
int bash_readline(struct pt_regs *ctx)
{
	if (!selected())
		return 0;
	__u64 line = RET(ctx);
	__u64 n = count_one(&bash_emitted);
	struct bash_event *e = bpf_ringbuf_reserve(&bash_events, sizeof(*e), 0);
	if (!e) {
		count_one(&bash_drops);
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->ktime_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cpu = bpf_get_smp_processor_id();
	e->len = 0;
	e->flags = 0;
	e->line[0] = 0;
	if (!line) {
		e->flags = FLAG_EOF;
	} else {
		long r = bpf_probe_read_user_str(e->line, sizeof(e->line), (void *)line);
		if (r > 0) {
			e->len = r - 1;
			if (r == BASH_LINE_LEN)
				e->flags = FLAG_TRUNCATED;
		}
	}
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}
