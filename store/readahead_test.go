package store

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readWith reads dir with opts and GOMAXPROCS set to procs (1: no
// readahead, no preloading) and returns the batches and the errors, in
// order.
func readWith(t *testing.T, dir string, procs int, opts ReaderOptions) ([]*Batch, []string) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []*Batch
	var errs []string
	for b, err := range r.All() {
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		got = append(got, cloneBatch(b))
	}
	return got, errs
}

// TestReadaheadSameResult reads an intact and a damaged recording on one
// core (the chunks read in line) and on two (read ahead, checksums checked
// ahead, the next segment loaded ahead): the batches and the errors must be
// the same, and on the intact one equal what was written.
func TestReadaheadSameResult(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 256 << 10, Sync: SyncNever})
	check := func(what string) {
		one, oneErrs := readWith(t, dir, 1, ReaderOptions{})
		two, twoErrs := readWith(t, dir, 2, ReaderOptions{})
		// Whether the readahead or the decoder checks a window's
		// checksums depends on which is ahead: pin each way too.
		defer func(f func(*chunkCursor) bool) { verifyAhead = f }(verifyAhead)
		for _, ahead := range []bool{true, false} {
			verifyAhead = func(*chunkCursor) bool { return ahead }
			pinned, pinnedErrs := readWith(t, dir, 2, ReaderOptions{})
			if len(pinned) != len(one) || strings.Join(pinnedErrs, "\n") != strings.Join(oneErrs, "\n") {
				t.Fatalf("%s: checksums checked ahead %v: %d batches, errors %q; one core %d batches, errors %q", what, ahead, len(pinned), pinnedErrs, len(one), oneErrs)
			}
			for i := range one {
				batchesEqual(t, pinned[i], one[i])
			}
		}
		if len(one) != len(two) || len(oneErrs) != len(twoErrs) {
			t.Fatalf("%s: one core %d batches %d errors, two cores %d batches %d errors", what, len(one), len(oneErrs), len(two), len(twoErrs))
		}
		for i := range one {
			batchesEqual(t, two[i], one[i])
		}
		for i := range oneErrs {
			if oneErrs[i] != twoErrs[i] {
				t.Fatalf("%s: error %d: one core %q, two cores %q", what, i, oneErrs[i], twoErrs[i])
			}
		}
		t.Logf("%s: %d batches, %d errors", what, len(one), len(oneErrs))
	}
	check("intact")
	got, _ := readWith(t, dir, 2, ReaderOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d batches, wrote %d", len(got), len(want))
	}
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}

	flipBytes(t, dir, 5)
	check("damaged")
}

// flipBytes damages the recording in dir: it flips 20 bytes past the meta
// pages of each of its first two segments (of at least three), at places
// drawn with seed.
func flipBytes(t *testing.T, dir string, seed uint64) {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for _, s := range segs[:2] {
		data, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			data[4*pageSize+rng.IntN(len(data)-4*pageSize)] ^= 0x5a
		}
		if err := os.WriteFile(s.path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReaderCloseStopsGoroutines: a Reader closed in the middle of a
// segment leaves no goroutine (readahead) and no open file (the segment
// preloaded) behind.
func TestReaderCloseStopsGoroutines(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	// Segments of more chunks than the readahead holds windows, so that it
	// is still running when the reader is closed.
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 12000, WriterOptions{MaxSegmentBytes: 6 << 20, FlushBytes: 1 << 20, Sync: SyncNever})
	if segs, _ := listSegments(dir); len(segs) < 2 {
		t.Fatalf("%d segments", len(segs))
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before, fdsBefore := settledGoroutines(), fds()
	for _, n := range []int{1, 10, 500, 1500} {
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after closing the readers, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := fds(); n > fdsBefore {
		t.Fatalf("%d open files after closing the readers, %d before", n, fdsBefore)
	}
}

// TestAbandonedReaderStops: a Reader dropped in the middle of a segment
// without Close has its readahead stopped once it is garbage collected.
func TestAbandonedReaderStops(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 12000, WriterOptions{MaxSegmentBytes: 6 << 20, FlushBytes: 1 << 20, Sync: SyncNever})
	before := settledGoroutines()
	func() {
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	for end := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(end) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after dropping a Reader, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// settledGoroutines waits (up to 2 s) for the number of goroutines to stop
// changing, as the goroutines of a closed Writer end, and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}
