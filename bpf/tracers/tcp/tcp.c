//go:build ignore

// tcp: TCP state changes (IPv4 and IPv6) from sock/inet_sock_set_state.
//
// Many transitions run in softirq context, where the current task is
// whoever was interrupted; so each socket is attributed to its owner: the
// process that connected or listened (seen in process context), or for an
// accepted socket the process that listens on its local port. Owners are
// kept in hashes until the socket closes, and the filter applies to them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

// Linux TCP states (include/net/tcp_states.h).
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

// Layout (host byte order), 80 bytes:
//   0 ktime_ns u64, 8 skaddr u64, 16 pid u32, 20 family u16, 22 sport u16,
//   24 dport u16, 26 oldstate u8, 27 newstate u8, 28 saddr[16],
//   44 daddr[16], 60 comm[16], 76 pad u32
struct tcp_event {
	__u64 ktime_ns;
	__u64 skaddr; // the socket's kernel address: an id for its lifetime
	__u32 pid;    // the socket's owner process
	__u16 family; // AF_INET or AF_INET6
	__u16 sport;  // host byte order
	__u16 dport;
	__u8 oldstate;
	__u8 newstate;
	__u8 saddr[16]; // IPv4: the first 4 bytes
	__u8 daddr[16];
	char comm[16]; // the owner's comm
	__u32 _pad;
};

const struct tcp_event *unused_tcp_event __attribute__((unused));

struct owner {
	__u32 pid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} tcp_events SEC(".maps");

// Socket (kernel address) -> owner, until the socket closes.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} tcp_owners SEC(".maps");

// Listening port -> owner, for sockets accepted on that port.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct owner);
} tcp_listeners SEC(".maps");

DEFINE_COUNTERS(tcp);

static __always_inline void current_owner(struct owner *o)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	int oldstate = ctx->oldstate, newstate = ctx->newstate;
	__u32 port = ctx->sport;
	struct owner o = {};
	struct owner *known = bpf_map_lookup_elem(&tcp_owners, &sk);
	if (known) {
		o = *known;
	} else {
		struct owner *l = NULL;
		if (newstate == TCP_SYN_RECV || oldstate == TCP_SYN_RECV || (oldstate == TCP_LISTEN && newstate != TCP_CLOSE))
			l = bpf_map_lookup_elem(&tcp_listeners, &port);
		if (l)
			o = *l; // a connection accepted on a known listener
		else
			current_owner(&o); // connect() or listen(): process context
		if (newstate != TCP_CLOSE)
			bpf_map_update_elem(&tcp_owners, &sk, &o, BPF_ANY);
	}
	if (newstate == TCP_LISTEN)
		bpf_map_update_elem(&tcp_listeners, &port, &o, BPF_ANY);
	if (newstate == TCP_CLOSE) {
		bpf_map_delete_elem(&tcp_owners, &sk);
		if (oldstate == TCP_LISTEN)
			bpf_map_delete_elem(&tcp_listeners, &port);
	}

	if (!selected_tgid(o.pid, o.comm))
		return 0;
	__u64 n = count_one(&tcp_emitted);
	struct tcp_event *e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	if (!e) {
		count_one(&tcp_drops);
		return 0;
	}
	e->ktime_ns = bpf_ktime_get_ns();
	e->skaddr = sk;
	e->pid = o.pid;
	e->family = ctx->family;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	e->oldstate = oldstate;
	e->newstate = newstate;
	// The verifier refuses ctx reads at computed offsets: copy with
	// bpf_probe_read_kernel (the tracepoint record is kernel memory).
	if (ctx->family == AF_INET6) {
		bpf_probe_read_kernel(e->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e->daddr, 16, ctx->daddr_v6);
	} else {
		__builtin_memset(e->saddr, 0, 16);
		__builtin_memset(e->daddr, 0, 16);
		bpf_probe_read_kernel(e->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(e->daddr, 4, ctx->daddr);
	}
	__builtin_memcpy(e->comm, o.comm, 16);
	e->_pad = 0;
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}
