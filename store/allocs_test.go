package store

import (
	"path/filepath"
	"runtime"
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
			r, err := Open(dir, ReaderOptions{RingbufEvents: true})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
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
			if n != len(want) {
				t.Fatalf("%s: read %d of %d batches", m.name, n, len(want))
			}
			allocs := after.Mallocs - before.Mallocs
			if allocs > uint64(n-1000)/4 {
				t.Fatalf("%s: %d allocations for the last %d batches", m.name, allocs, n-1000)
			}
			t.Logf("%s: %d allocations for the last %d batches", m.name, allocs, n-1000)
		}()
	}
}
