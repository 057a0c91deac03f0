package store

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ways of decompressing a compressed recording (see inflate.go): on one
// core (no readahead: the decoder does every record), on two with the
// readahead and the decoder sharing the records (the default), with the
// readahead doing every record it can (the decoder waits for it), and with
// the readahead decompressing none.
var inflateModes = []struct {
	name         string
	procs        int
	ahead, byDec bool
}{
	{"one core", 1, true, true},
	{"shared", 2, true, true},
	{"readahead only", 2, true, false},
	{"decoder only", 2, false, true},
}

// readInflate reads dir as mode says and returns the batches, the errors
// (in order) and the number of records whose bodies the readahead or a
// decoder working ahead decoded.
func readInflate(t *testing.T, dir string, procs int, ahead, byDec bool, opts ReaderOptions) ([]*Batch, []string, int) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	defer func(a, b bool) { inflateAhead, inflateByDecoder = a, b }(inflateAhead, inflateByDecoder)
	inflateAhead, inflateByDecoder = ahead, byDec
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
	return got, errs, r.bg.inflated
}

// compressedRecording writes a compressed recording of three or more
// segments and checks that most of its batches are compressed records.
func compressedRecording(t *testing.T) (string, []*Batch, []segFile) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 64 << 10, Sync: SyncNever})
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	return dir, want, segs
}

// TestInflateAheadOrder: a compressed recording reads the same, batch for
// batch and in order, whoever decompresses its records; with the readahead
// doing it, it does most of them (the rest span chunks or are not
// compressed), and on its own none.
func TestInflateAheadOrder(t *testing.T) {
	dir, want, _ := compressedRecording(t)
	for _, m := range inflateModes {
		got, errs, inflated := readInflate(t, dir, m.procs, m.ahead, m.byDec, ReaderOptions{RingbufEvents: m.name == "shared"})
		if len(errs) != 0 {
			t.Fatalf("%s: errors %q", m.name, errs)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d batches, wrote %d", m.name, len(got), len(want))
		}
		for i := range want {
			if m.name == "shared" {
				ringbufEqual(t, got[i], want[i])
			} else {
				batchesEqual(t, got[i], want[i])
			}
		}
		switch {
		case m.procs == 1 || !m.ahead:
			if inflated != 0 {
				t.Fatalf("%s: %d records decoded ahead, want none", m.name, inflated)
			}
		case !m.byDec:
			if inflated < len(want)/2 {
				t.Fatalf("%s: %d of %d records decoded by the readahead", m.name, inflated, len(want))
			}
		}
		t.Logf("%s: %d batches, %d decoded ahead", m.name, len(got), inflated)
	}
}

// ringbufEqual compares a batch read with RingbufEvents to the one written.
func ringbufEqual(t *testing.T, got, want *Batch) {
	t.Helper()
	if got.Seq != want.Seq || got.Stream != want.Stream {
		t.Fatalf("batch %d %q, want %d %q", got.Seq, got.Stream, want.Seq, want.Stream)
	}
	if want.Kind != KindRingbuf {
		batchesEqual(t, got, want)
		return
	}
	if len(got.Ringbuf) != len(want.Events) {
		t.Fatalf("batch %d: %d events, want %d", got.Seq, len(got.Ringbuf), len(want.Events))
	}
	for i, e := range got.Ringbuf {
		if !bytes.Equal(e.Raw, want.Events[i].Raw) || !e.Timestamp.Equal(want.Events[i].Timestamp) {
			t.Fatalf("batch %d event %d differs", got.Seq, i)
		}
	}
}

// findRecord returns the offsets in data of the compressed batch record of
// sequence number seq (every copy: bbolt may keep stale ones in freed
// pages), and the record's length; none if it is not in one piece (it
// spans chunks) or not compressed.
func findRecord(t *testing.T, data []byte, seq uint64) ([]int, int) {
	t.Helper()
	var key [8]byte
	binary.LittleEndian.PutUint64(key[:], seq)
	var at []int
	n := 0
	for from := 0; ; {
		k := bytes.Index(data[from:], key[:])
		if k < 0 {
			break
		}
		p := from + k - 12
		from += k + 1
		if p < 0 || data[p+8] != recBatch || data[p+9]&flagZstd == 0 || data[p+11] != 0 || data[p+22] != 0 || data[p+23] != 0 {
			continue
		}
		l := int(binary.LittleEndian.Uint32(data[p:]))
		if l < headerSize || p+l > len(data) || crc32.Checksum(data[p+8:p+l], castagnoli) != binary.LittleEndian.Uint32(data[p+4:]) {
			continue
		}
		at, n = append(at, p), l
	}
	return at, n
}

// TestInflateAheadDamage damages a compressed record in the middle of a
// segment three ways: a flipped bit (its checksum fails), a flipped bit
// with the checksum made to match (zstd fails), and a declared size that
// is not what the body decompresses to (checksum matching). Whoever
// decompresses, the reader reports the same error naming the segment and
// the batch, once, and delivers every other batch, in order.
func TestInflateAheadDamage(t *testing.T) {
	cases := []struct {
		name, msg string
		damage    func(rec []byte)
	}{
		{"bit flip", "crc mismatch", func(rec []byte) { rec[headerSize+len(rec[headerSize:])/2] ^= 0x08 }},
		{"zstd", "zstd:", func(rec []byte) {
			// The frame's magic number: no decoder takes it.
			rec[headerSize] ^= 0xff
			binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], castagnoli))
		}},
		{"size", "decompressed", func(rec []byte) {
			binary.LittleEndian.PutUint32(rec[28:], binary.LittleEndian.Uint32(rec[28:])-1)
			binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], castagnoli))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, want, segs := compressedRecording(t)
			// A batch in the middle of the second segment.
			si := inspectSegment(segs[1])
			if si.Summary == nil {
				t.Fatal("second segment has no summary")
			}
			data, err := os.ReadFile(segs[1].path)
			if err != nil {
				t.Fatal(err)
			}
			target := (si.Summary.FirstSeq + si.Summary.LastSeq) / 2
			at, n := findRecord(t, data, target)
			for ; len(at) == 0 && target < si.Summary.LastSeq; at, n = findRecord(t, data, target) {
				target++
			}
			if len(at) == 0 {
				t.Fatal("no compressed record in one piece in the second half of the segment")
			}
			for _, p := range at {
				c.damage(data[p : p+n])
			}
			if err := os.WriteFile(segs[1].path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			wantMsg := segName(segs[1].index) + ": batch " + itoa(target) + ": "
			var first []string
			for _, m := range inflateModes {
				got, errs, inflated := readInflate(t, dir, m.procs, m.ahead, m.byDec, ReaderOptions{})
				if len(errs) != 1 || !strings.Contains(errs[0], wantMsg) || !strings.Contains(errs[0], c.msg) {
					t.Fatalf("%s: errors %q, want one saying %q and %q", m.name, errs, wantMsg, c.msg)
				}
				if first == nil {
					first = errs
				} else if errs[0] != first[0] {
					t.Fatalf("%s: error %q; one core: %q", m.name, errs[0], first[0])
				}
				if len(got) != len(want)-1 {
					t.Fatalf("%s: %d batches, want %d", m.name, len(got), len(want)-1)
				}
				i := 0
				for _, w := range want {
					if w.Seq == target {
						continue
					}
					batchesEqual(t, got[i], w)
					i++
				}
				t.Logf("%s: %q, %d decoded ahead", m.name, errs[0], inflated)
			}
		})
	}
}

// TestInflateAheadClose closes readers in the middle of segments while the
// readahead decompresses ahead (and holds bodies the decoder has not
// taken): no goroutine is left, and a reader opened next reads everything.
func TestInflateAheadClose(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	defer func(b bool) { inflateByDecoder = b }(inflateByDecoder)
	dir, want, _ := compressedRecording(t)
	before := settledGoroutines()
	for _, byDec := range []bool{true, false} {
		inflateByDecoder = byDec
		for _, n := range []int{1, 7, 300, 1100, 2999} {
			r, err := Open(dir, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				b, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				batchesEqual(t, b, want[i])
			}
			r.Close()
		}
	}
	waitGoroutines(t, before)
	if got := readAll(t, dir, ReaderOptions{}); len(got) != len(want) {
		t.Fatalf("read %d of %d batches after the closes", len(got), len(want))
	}
}

// waitGoroutines waits up to 5 s for no more than n goroutines to run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > n; {
		if time.Now().After(end) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInflateAheadFollow reads a compressed recording while its writer
// appends, as a follower does (each pass from the last one's LastSeq), with
// the readahead decompressing: every batch committed is delivered once, in
// order, with nothing reported missing.
func TestInflateAheadFollow(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	defer func(b bool) { inflateByDecoder = b }(inflateByDecoder)
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 32 << 10, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	var mu sync.Mutex
	var want []*Batch
	done := make(chan error, 1)
	// Halfway, the writer waits for a pass to have read the segment it is
	// writing, so that at least one does, however the two are scheduled.
	liveRead := make(chan struct{})
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range total {
			if i == total/2 {
				<-liveRead
			}
			b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
			if err := w.Append(b); err != nil {
				done <- err
				return
			}
			mu.Lock()
			want = append(want, cloneBatch(b))
			mu.Unlock()
			if i%100 == 0 {
				if err := w.Flush(); err != nil {
					done <- err
					return
				}
			}
		}
		done <- w.Close()
	}()
	var got []*Batch
	var after uint64
	var writerErr error
	finished := false
	livePasses := 0
	for pass := 0; ; pass++ {
		if pass > 20000 {
			t.Fatalf("%d passes, none read the segment being written", pass)
		}
		inflateByDecoder = pass%2 == 0
		if !finished {
			select {
			case writerErr = <-done:
				finished = true
			default:
			}
		}
		r, err := Open(dir, ReaderOptions{After: after, AfterSet: pass > 0})
		if err != nil {
			if strings.Contains(err.Error(), "holds no recording") {
				continue
			}
			t.Fatal(err)
		}
		n := len(got)
		for b, err := range r.All() {
			if err != nil {
				t.Fatalf("pass %d: %v", pass, err)
			}
			got = append(got, cloneBatch(b))
		}
		if segs := r.Segments(); r.Live() && segs[len(segs)-1].Live && len(got) > n {
			if livePasses++; livePasses == 1 {
				close(liveRead)
			}
		}
		after = r.LastSeq()
		r.Close()
		if finished {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	if len(got) != total || livePasses == 0 {
		t.Fatalf("followed %d batches, wrote %d; %d passes read the segment being written", len(got), total, livePasses)
	}
	t.Logf("%d passes read the segment being written", livePasses)
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}
}
