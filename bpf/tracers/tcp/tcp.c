//go:build ignore

// tcp: TCP state changes (IPv4 and IPv6) from sock/inet_sock_set_state.
//
// Many transitions run in softirq context, where the current task is
// whoever was interrupted; so each socket is attributed to its owner, kept
// in tcp_owners until the socket closes:
//   - a socket that connects (CLOSE->SYN_SENT) or listens (->LISTEN) is
//     owned by the current task: those run in the process's own syscall;
//   - a socket accepted from a listener (created LISTEN->SYN_RECV in
//     softirq) is owned by the listener's owner, found by the listening
//     port in tcp_listeners, until a process accepts it (accept/accept4
//     exit): the acceptor owns it from then on;
//   - a socket that existed before the recording is owned by the task that
//     closes it (->FIN_WAIT1, ->LAST_ACK: close() or shutdown()), or by a
//     listener's owner; its transitions before that are unknown's; user space seeds tcp_listeners at load with the
//     listeners that exist then (from /proc), so that their connections
//     are known;
//   - any other socket's owner is unknown: pid 0, comm "" (never the
//     interrupted task).
// The filter applies to the owner.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

// Linux TCP states (include/net/tcp_states.h).
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

// Layout (host byte order), 88 bytes:
//   0 ktime_ns u64, 8 skaddr u64, 16 pid u32, 20 family u16, 22 sport u16,
//   24 dport u16, 26 oldstate u8, 27 newstate u8, 28 saddr[16],
//   44 daddr[16], 60 comm[16], 76 pad u32, 80 cpu u32, 84 pad u32
// Earlier layout (the Go decoder reads it by size): 80 bytes (no cpu).
// New fields go at the end, so that the size tells the layouts apart.
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
	__u32 cpu; // bpf_get_smp_processor_id()
	__u32 _pad2;
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

// Listening port -> owner, for sockets accepted on that port (seeded from
// user space with the listeners that existed before the load; the port
// alone is the key: of two listeners on one port in different network
// namespaces or on different addresses, the last seen wins).
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

// in_process_context reports whether a transition runs in a syscall of
// the process that holds the socket: connect(), listen(), and close() or
// shutdown() (which are the only ways to FIN_WAIT1 and LAST_ACK).
static __always_inline bool in_process_context(int oldstate, int newstate)
{
	return (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) || newstate == TCP_LISTEN ||
	       newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK;
}

// starts_life reports whether a transition is a socket's first: connect(),
// listen(), or a connection accepted on a listener (the new socket,
// cloned from the listener, leaves LISTEN).
static __always_inline bool starts_life(int oldstate, int newstate)
{
	return (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) || newstate == TCP_LISTEN ||
	       (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV);
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	int oldstate = ctx->oldstate, newstate = ctx->newstate;
	__u32 port = ctx->sport;
	struct owner o = {}; // unknown: pid 0, comm ""
	// A transition that starts a socket's life has no owner yet: what
	// tcp_owners holds for its address is an earlier socket's, freed there
	// with its ->CLOSE missed (the kernel runs no tracing program on a CPU
	// where one runs already).
	struct owner *known = NULL;
	if (!starts_life(oldstate, newstate))
		known = bpf_map_lookup_elem(&tcp_owners, &sk);
	if (known && known->pid) {
		o = *known;
	} else { // unseen, or seen with its owner unknown: learn it if we can
		struct owner *l = NULL;
		if (oldstate == TCP_LISTEN || oldstate == TCP_SYN_RECV || newstate == TCP_SYN_RECV)
			l = bpf_map_lookup_elem(&tcp_listeners, &port);
		if (l)
			o = *l; // a connection accepted on a known listener, or the listener
		else if (in_process_context(oldstate, newstate))
			current_owner(&o);
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
	e->cpu = bpf_get_smp_processor_id();
	e->_pad2 = 0;
	bpf_ringbuf_submit(e, rb_flags(n));
	return 0;
}

// accepted makes the current task the owner of the socket that accept or
// accept4 returned as fd, if it is a TCP socket the tracer follows.
static __always_inline int accepted(long fd)
{
	if (fd < 0)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) < 0 || !file)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	__u64 sk = (__u64)BPF_CORE_READ(sock, sk);
	if (!bpf_map_lookup_elem(&tcp_owners, &sk))
		return 0; // not a TCP socket seen by the tracer
	struct owner o = {};
	current_owner(&o);
	bpf_map_update_elem(&tcp_owners, &sk, &o, BPF_EXIST);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcp_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return accepted(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_accept")
int tcp_exit_accept(struct trace_event_raw_sys_exit *ctx) { return accepted(ctx->ret); }
