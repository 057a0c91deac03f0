// Package lossterms is ebpfrec's one vocabulary for events that were not
// recorded. Every output names them with these terms: the record summary and
// progress line, info, replay's LOSS lines, summary, and the losses table of
// an export (with its running totals under the names plus TotalSuffix).
//
// Each term says where the event was lost. The kernel loses an event when a
// buffer is full (the program's reserve or output call fails); ebpfrec
// drops one it has read when it cannot take it further; a storage failure
// loses one that ebpfrec read and handed to the recording, which could not
// commit it. For every stream:
//
//	emitted = recorded + kernel_lost_perfbuf + kernel_lost_ringbuf + ebpfrec_dropped + storage_lost
//
// Before any of these, the kernel may not run a program at all: it skips a
// kprobe or tracepoint program on a CPU where a BPF program runs already,
// and a raw tracepoint or trampoline program while it runs itself. A
// skipped run emits nothing, so it is not in the equation; kernel_missed
// counts those runs per stream (each could have cost the stream one event),
// where the kernel counts them, and every output says "not counted" where
// it does not. The total of a stream's loss (store.Loss.Total) counts each
// skipped run as one event.
//
// The recording's own format keeps its field names (store.Loss:
// KernelLost, RingbufDropped, UserDropped, KernelMissed, also in `info
// --json`); Legend maps them.
package lossterms

// The terms, as column names and keys.
const (
	// KernelLostPerfbuf: lost in the kernel, the CPU's perf buffer full
	// (store.Loss.KernelLost).
	KernelLostPerfbuf = "kernel_lost_perfbuf"
	// KernelLostRingbuf: lost in the kernel, the ring buffer full
	// (store.Loss.RingbufDropped).
	KernelLostRingbuf = "kernel_lost_ringbuf"
	// EbpfrecDropped: read from the kernel, then dropped by ebpfrec: its
	// queue was full or a handler failed (store.Loss.UserDropped).
	EbpfrecDropped = "ebpfrec_dropped"
	// StorageLost: read from the kernel, then lost to a storage failure
	// (full disk, file or directory removed): never committed to the
	// recording. Only the recorder counts it, as the recording cannot hold
	// it: the record summary, and the recorder's note that info shows.
	StorageLost = "storage_lost"
	// KernelMissed: runs of the stream's programs that the kernel skipped,
	// because a BPF program was running on the CPU: whatever they would
	// have emitted never was (store.Loss.KernelMissed, from the programs'
	// recursion_misses). Counted from kernel 6.7 for kprobes and
	// tracepoints; NotCounted where the kernel does not count them.
	KernelMissed = "kernel_missed"
	// NotCounted stands for a count the kernel does not keep, where 0
	// would say "none" (a ring buffer without drop counter, kernel_missed
	// on a kernel that does not count skipped runs).
	NotCounted = "not counted"
	// TotalSuffix names a running total: a term's count from the start of
	// the recording (replay's LOSS lines, the losses table's *_total
	// columns), where the term alone is a count since the previous point.
	TotalSuffix = "_total"
)

// Legend explains the terms, for the --help of the commands that show them
// and for the README.
const Legend = `Events not recorded are named the same way in every output:
  kernel_lost_perfbuf  lost in the kernel: the CPU's perf buffer was full
  kernel_lost_ringbuf  lost in the kernel: the ring buffer was full
  ebpfrec_dropped      read, then dropped by ebpfrec: its queue was full or a
                       handler failed
  storage_lost         read, then lost to a storage failure (full disk, file
                       or directory removed): never committed
  kernel_missed        runs of the stream's programs the kernel skipped (a BPF
                       program was running on the CPU): never emitted; each
                       could have been an event ("not counted" on kernels
                       that do not count them: before 6.7 for tracepoints
                       and kprobes)
For each stream, emitted = recorded + the first four; kernel_missed comes
before emitted. A name alone counts events since the previous point (the
losses table's rows); NAME_total counts them from the start (replay's LOSS
lines, the losses table's *_total columns). The recording stores them as
kernel_lost, ringbuf_dropped, user_dropped and kernel_missed (info --json
shows these stored names). storage_lost only the recorder can count: its
summary says it, and info shows the recorder's note when it could leave
one.`
