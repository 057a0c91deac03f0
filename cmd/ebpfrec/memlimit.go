package main

import (
	"os"
	"runtime/debug"

	"github.com/ebpfrec/ebpfrec/store"
)

// A recording's Go heap is mostly the store writer's buffers of about
// FlushBytes: at most three (one filling, one waiting, one being
// committed), plus a few MiB of its own (kernel BTF, the compressor, the
// readers). Under the default pacing (GOGC=100) the heap grew to twice what
// was live while a busy recording started and made those buffers: through
// a 3 M-event getpid storm the recorder peaked at 53-68 MiB resident, over
// the 64 MiB it may take; with this limit, at 50-57 MiB, for 1.02-1.17
// times the recorder's CPU (scripts/bench-footprint.sh, same runs).

// recordMemoryBase is what a recording's Go runtime needs besides the
// store writer's buffers, with room to spare.
const recordMemoryBase = 16 << 20

// limitMemory sets the Go runtime's soft memory limit for a recording
// whose writer commits every flushBytes (0: store.DefaultFlushBytes):
// recordMemoryBase and four buffers (the three in use, and the garbage of
// one), unless GOMEMLIMIT says otherwise. It returns the limit set, 0 if
// none. The limit is soft: past it the collector runs more often, at most
// half the CPU, and nothing fails for it.
func limitMemory(flushBytes int) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	if flushBytes <= 0 {
		flushBytes = store.DefaultFlushBytes
	}
	limit := recordMemoryBase + 4*int64(flushBytes)
	debug.SetMemoryLimit(limit)
	return limit
}
