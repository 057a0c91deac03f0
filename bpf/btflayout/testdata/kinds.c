//go:build ignore

// kinds is the test object of package btflayout: struct kinds holds a
// member of every kind the layout decoder types (and a union, which it
// keeps as bytes). fill_kinds writes known values into one and submits it
// to the ring buffer at every getppid(2) of target_tgid, so the tests decode
// bytes written by a real BPF program on the real kernel.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

volatile const __u32 target_tgid = 0;

enum kinds_color {
	KINDS_RED = 1,
	KINDS_GREEN = 2,
	KINDS_NEG = -3,
};

struct kinds_inner {
	__u16 a;
	__s16 b;
};

struct kinds {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	_Bool flag;
	enum kinds_color color;
	enum kinds_color neg;
	enum kinds_color unknown; // a value the enum does not name
	char name[16];            // text with a NUL
	char full[4];             // text without one: truncated
	__u32 arr[3];
	__s8 sarr[2];
	struct kinds_inner in;
	struct {                  // anonymous: flattened without a prefix
		__u32 x;
		__u32 y;
	};
	__u32 bf_a : 3;
	__s32 bf_b : 5;
	__u32 bf_c : 24;
	union {
		__u32 i;
		__u8 c[4];
	} un;                     // a union stays bytes
	void *ptr;                // a pointer is an unsigned 64-bit value
	__u64 seq;
};

// The struct is in the object's BTF only if a global references it.
const struct kinds *unused_kinds __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} kinds_rb SEC(".maps");

__u64 kinds_seq = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int fill_kinds(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	struct kinds *e = bpf_ringbuf_reserve(&kinds_rb, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	__u64 seq = kinds_seq++;
	e->u8 = 0xfe;
	e->s8 = -2;
	e->u16 = 0xfedc;
	e->s16 = -300;
	e->u32 = 0xfedcba98;
	e->s32 = -70000;
	e->u64 = 0xfedcba9876543210ULL;
	e->s64 = -5000000000LL;
	e->flag = 1;
	e->color = KINDS_GREEN;
	e->neg = KINDS_NEG;
	e->unknown = (enum kinds_color)7;
	__builtin_memcpy(e->name, "hello", 6);
	__builtin_memcpy(e->full, "abcd", 4);
	e->arr[0] = 1;
	e->arr[1] = 2;
	e->arr[2] = 0xffffffff;
	e->sarr[0] = -1;
	e->sarr[1] = 127;
	e->in.a = 7;
	e->in.b = -7;
	e->x = 11;
	e->y = 12;
	e->bf_a = 5;
	e->bf_b = -9;
	e->bf_c = 0xabcdef;
	e->un.i = 0x04030201;
	e->ptr = (void *)0xffff888812345678ULL;
	e->seq = seq;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
