//go:build ignore

// dns: name lookups through the C library's getaddrinfo: the host name,
// the result code, the addresses and the latency. A uprobe at the entry
// keeps the call's arguments per thread; a uretprobe (C stacks stay put)
// reads the result list and emits one event per call.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define DNS_HOST_LEN 256
#define DNS_MAX_ADDRS 8

// One address of the result list: its family (AF_INET 2, AF_INET6 10) and
// the address, in network byte order (4 or 16 bytes).
struct dns_addr {
	__u16 family;
	__u16 _pad;
	__u32 _pad2;
	__u8 addr[16];
};

// Layout (host byte order), 464 bytes:
//   0 ktime_ns u64 (entry), 8 latency_ns u64, 16 pid u32, 20 tid u32,
//   24 cpu u32, 28 ret s32 (getaddrinfo's result: 0 or an EAI_ code),
//   32 naddrs u32 (entries of the result list read, at most 8),
//   36 more u32 (1 if the list went on), 40 addrs[8] (24 bytes each),
//   232 host char[232] (NUL-terminated, cut)
// New fields go at the end.
struct dns_event {
	__u64 ktime_ns;
	__u64 latency_ns;
	__u32 pid;
	__u32 tid;
	__u32 cpu;
	__s32 ret;
	__u32 naddrs;
	__u32 more;
	struct dns_addr addrs[DNS_MAX_ADDRS];
	char host[232];
};

const struct dns_event *unused_dns_event __attribute__((unused));

// A call in progress, by thread.
struct dns_call {
	__u64 ktime_ns;
	__u64 node; // const char *
	__u64 res;  // struct addrinfo **
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dns_call);
} dns_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} dns_events SEC(".maps");

DEFINE_COUNTERS(dns);

// struct addrinfo on 64-bit Linux: ai_family at 4, ai_addr at 24,
// ai_next at 40; sockaddr_in's address at 4, sockaddr_in6's at 8.
#define AI_FAMILY 4
#define AI_ADDR 24
#define AI_NEXT 40

// The C calling convention's registers. vmlinux.h is the host's (x86), so
// arm64's struct user_pt_regs is not in it (nor bpf_tracing.h's PT_REGS
// macros for arm64): there regs[0..30] come first.
#if defined(__TARGET_ARCH_arm64)
#define ARG1(ctx) (((__u64 *)(ctx))[0])
#define ARG4(ctx) (((__u64 *)(ctx))[3])
#define RET(ctx) (((__u64 *)(ctx))[0])
#else
#define ARG1(ctx) ((ctx)->di)
#define ARG4(ctx) ((ctx)->cx)
#define RET(ctx) ((ctx)->ax)
#endif

SEC("uprobe")
int dns_entry(struct pt_regs *ctx)
{
	__u64 node = ARG1(ctx), res = ARG4(ctx);
	if (!selected())
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_call c = {.ktime_ns = bpf_ktime_get_ns(), .node = (__u64)node, .res = (__u64)res};
	bpf_map_update_elem(&dns_calls, &id, &c, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int dns_return(struct pt_regs *ctx)
{
	int ret = (int)RET(ctx);
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_call *c = bpf_map_lookup_elem(&dns_calls, &id);
	if (!c)
		return 0;
	struct dns_call call = *c;
	bpf_map_delete_elem(&dns_calls, &id);
	__u64 n = count_one(&dns_emitted);
	struct dns_event *e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
	if (!e) {
		count_one(&dns_drops);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	e->ktime_ns = call.ktime_ns;
	e->latency_ns = now - call.ktime_ns;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->ret = ret;
	e->naddrs = 0;
	e->more = 0;
	__builtin_memset(e->addrs, 0, sizeof(e->addrs));
	e->host[0] = 0;
	if (call.node)
		bpf_probe_read_user_str(e->host, sizeof(e->host), (void *)call.node);
	__u64 ai = 0;
	if (ret == 0 && call.res)
		bpf_probe_read_user(&ai, sizeof(ai), (void *)call.res);
#pragma unroll
	for (int i = 0; i < DNS_MAX_ADDRS; i++) {
		if (!ai)
			continue; // not break: the loop is unrolled
		int family = 0;
		__u64 sa = 0;
		bpf_probe_read_user(&family, sizeof(family), (void *)(ai + AI_FAMILY));
		bpf_probe_read_user(&sa, sizeof(sa), (void *)(ai + AI_ADDR));
		e->addrs[i].family = family;
		if (sa && family == 2)
			bpf_probe_read_user(e->addrs[i].addr, 4, (void *)(sa + 4));
		else if (sa && family == 10)
			bpf_probe_read_user(e->addrs[i].addr, 16, (void *)(sa + 8));
		e->naddrs = i + 1;
		bpf_probe_read_user(&ai, sizeof(ai), (void *)(ai + AI_NEXT));
	}
	if (ai)
		e->more = 1;
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}
