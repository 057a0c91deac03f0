package store

import (
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestReadAllocsPerBatch: reading a compressed recording sequentially
// allocates nothing per batch once its buffers have grown (the reader, its
// readahead and the zstd decoders reuse theirs): fewer allocations than a
// quarter of the batches read, in every way of decompressing (the slots of
// the readahead still grow their buffers now and then: up to a tenth).
func TestReadAllocsPerBatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{Sync: SyncNever})
	for _, m := range inflateModes {
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(m.procs))
			defer func(a, b bool) { inflateAhead, inflateByDecoder = a, b }(inflateAhead, inflateByDecoder)
			inflateAhead, inflateByDecoder = m.ahead, m.byDec
			// No collection while reading: one empties the sync.Pools
			// that keep windows and slots between readers, and refilling
			// them is not a cost per batch.
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			// A first reader grows the readahead windows' job lists to the
			// records a window holds (a window can hold most of this small
			// recording, so that growth fell in the measured part now and
			// then: ~950 allocations instead of tens); a second reader,
			// with the same windows, is measured.
			for pass := range 2 {
				r, err := Open(dir, ReaderOptions{RingbufEvents: true})
				if err != nil {
					t.Fatal(err)
				}
				var before, after runtime.MemStats
				n := 0
				for _, err := range r.All() {
					if err != nil {
						t.Fatal(err)
					}
					n++
					if n == 1000 {
						runtime.ReadMemStats(&before)
					}
				}
				runtime.ReadMemStats(&after)
				r.Close()
				if pass == 0 {
					continue
				}
				if n != len(want) {
					t.Fatalf("%s: read %d of %d batches", m.name, n, len(want))
				}
				allocs := after.Mallocs - before.Mallocs
				if allocs > uint64(n-1000)/4 {
					t.Fatalf("%s: %d allocations for the last %d batches", m.name, allocs, n-1000)
				}
				t.Logf("%s: %d allocations for the last %d batches", m.name, allocs, n-1000)
			}
		}()
	}
}
