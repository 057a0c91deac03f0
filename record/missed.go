package record

// Runs of a stream's programs that the kernel skipped (kernel_missed): the
// kernel runs no kprobe or tracepoint program on a CPU where a BPF program
// runs already, and a raw tracepoint or trampoline program not while it
// runs itself. Such a run emits nothing and no counter of the program sees
// it; kernels that count it do so in the program's recursion_misses
// (bpf.RecursionMisses, bpf.RecursionMissesCounted).

import (
	"slices"
	"sort"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
)

// streamPrograms returns the programs of collection c (loaded as coll)
// whose skipped runs count against its stream of map m, and whether the
// kernel of release counts the skips of every one of them.
//
// A program that writes to the map (references it) counts against its
// stream. A program that writes to none of the collection's streams (one
// that notes a syscall's entry for the exit's program, say) may have
// prepared an event of any of them, so it counts against each. A program
// that writes to several streams counts against each of those. A skipped
// run is counted once per stream it may have cost an event: in a
// collection of several streams the sum of their kernel_missed can count
// one run more than once. Each run is counted as one event: a run of a
// program that emits more than one event at a time, or none, counts one
// all the same.
func streamPrograms(c Collection, coll *ebpf.Collection, m, release string) ([]*ebpf.Program, bool) {
	streamMaps := map[string]bool{}
	for _, us := range c.Streams {
		streamMaps[us.Map] = true
	}
	var names []string
	for name := range c.Spec.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	var progs []*ebpf.Program
	counted := true
	for _, name := range names {
		ps := c.Spec.Programs[name]
		p := coll.Programs[name]
		if p == nil {
			continue
		}
		var writes []string
		for _, ins := range ps.Instructions {
			if ref := ins.Reference(); streamMaps[ref] && !slices.Contains(writes, ref) {
				writes = append(writes, ref)
			}
		}
		if len(writes) > 0 && !slices.Contains(writes, m) {
			continue
		}
		progs = append(progs, p)
		counted = counted && bpf.RecursionMissesCounted(p.Type(), ps.AttachType, release)
	}
	return progs, counted
}

// missesEvery bounds how often a stream's programs' misses are read (a
// syscall per program) on the batch path.
const missesEvery = perfDropsEvery

// kernelMissed returns the runs of the stream's programs the kernel
// skipped so far, read afresh if exact or if the last read is older than
// missesEvery. A program whose statistics cannot be read keeps its share
// of the last sum: the count never goes down.
func (st *streamState) kernelMissed(exact bool) uint64 {
	if len(st.progs) == 0 {
		return 0
	}
	st.missMu.Lock()
	defer st.missMu.Unlock()
	if now := time.Now(); exact || now.Sub(st.missRead) >= missesEvery {
		var sum uint64
		for _, p := range st.progs {
			n, err := bpf.RecursionMisses(p)
			if err != nil {
				st.missRead = now // not again before missesEvery
				return st.missed
			}
			sum += n
		}
		st.missed, st.missRead = max(st.missed, sum), now
	}
	return st.missed
}
