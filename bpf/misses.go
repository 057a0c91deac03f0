package bpf

// The runs of a program that the kernel skips because a BPF program already
// runs on the CPU, and which kernels count them.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// RecursionMisses returns how many times the kernel skipped p because
// another BPF program was running on the CPU (bpf_prog_info's
// recursion_misses; RecursionMissesCounted says whether the kernel counts
// them for p's kind of program). A skipped run never executed: whatever
// it would have emitted was never emitted, and no counter of the program
// saw it. The kernel counts misses whether or not BPF statistics are
// enabled.
func RecursionMisses(p *ebpf.Program) (uint64, error) {
	s, err := p.Stats()
	if err != nil {
		return 0, fmt.Errorf("recursion misses of program %s: %w", p, err)
	}
	return s.RecursionMisses, nil
}

// RecursionMissesCounted reports whether a kernel of the given release
// (uname -r) counts the runs it skips of a program of type typ, attached
// as attach (the program spec's AttachType), in recursion_misses. A
// program that the kernel never skips (not a tracing program: XDP, TC,
// sockets, cgroups, ...) has its misses counted: they are 0.
//
// From the kernel's history:
//   - recursion_misses is in bpf_prog_info since 5.12 ("bpf: Count the
//     number of times recursion was prevented"), counted there for the
//     programs of BPF trampolines (fentry, fexit, fmod_ret, LSM).
//   - Raw tracepoints (raw_tp/, tp_btf/) skip a program already running on
//     the CPU and count it from "bpf: Prevent bpf program recursion for raw
//     tracepoint probes" (bpf_prog_inc_misses_counter, in 6.2 and not in
//     5.19; Debian's 6.1.0-50 has it too, but an earlier 6.1 may not:
//     taken here from 6.2).
//   - Kprobes and tracepoints run their programs through trace_call_bpf,
//     which skips them all while any BPF program runs on the CPU
//     (bpf_prog_active); it counts the skips from 6.7 (dd8657894c11, "bpf:
//     Count missed stats in trace_call_bpf").
//   - Perf event programs are skipped the same way (bpf_overflow_handler),
//     and no kernel counts it.
//
// Kernels older than a line above may skip such programs without counting
// them: their misses are "not counted", never 0. A distribution kernel
// with the change backported reads as not counted too.
//
// One skip no kernel counts, whatever this says: a tracepoint that fires
// inside a BPF program running in the same context (task, softirq,
// hardirq, NMI) from a tracepoint (a helper's own tracepoint, such as
// bpf_trace_printk's) is dropped by perf's recursion guard before the
// BPF program is looked at.
func RecursionMissesCounted(typ ebpf.ProgramType, attach ebpf.AttachType, release string) bool {
	since := func(major, minor int) bool { return kernelAtLeast(release, major, minor) }
	switch typ {
	case ebpf.PerfEvent:
		return false
	case ebpf.Kprobe, ebpf.TracePoint:
		return since(6, 7)
	case ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		return since(6, 2)
	case ebpf.Tracing:
		if attach == ebpf.AttachTraceRawTp {
			return since(6, 2)
		}
		return since(5, 12)
	case ebpf.LSM, ebpf.Extension:
		return since(5, 12)
	}
	return true
}

// kernelAtLeast reports whether release ("6.1.0-50-amd64", "5.10.0")
// is major.minor or later; a release it cannot read is not.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	mi := parts[1]
	if i := strings.IndexFunc(mi, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mi = mi[:i]
	}
	mn, err := strconv.Atoi(mi)
	if err != nil {
		return false
	}
	return ma > major || ma == major && mn >= minor
}
