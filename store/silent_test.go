package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// readCorrupt reads everything, collecting batches by seq and the
// *CorruptErrors; a terminal error, a batch delivered twice, more than 1000
// errors or a reader that does not end fail the test.
func readCorrupt(t *testing.T, dir string) (map[uint64]*Batch, []*CorruptError) {
	t.Helper()
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[uint64]*Batch{}
	var errs []*CorruptError
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("reader does not end")
		}
		b, err := r.Next()
		if err != nil {
			if err == io.EOF {
				break
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("terminal error: %v", err)
			}
			errs = append(errs, ce)
			if len(errs) > 1000 {
				t.Fatal("endless errors")
			}
			continue
		}
		if got[b.Seq] != nil {
			t.Fatalf("batch %d delivered twice", b.Seq)
		}
		got[b.Seq] = cloneBatch(b)
	}
	return got, errs
}

// checkAccounted checks that every delivered batch is exact and that every
// batch not delivered is named by an error of its segment: as the damaged
// batch, or in a missing range. It returns the missing batches.
func checkAccounted(t *testing.T, got map[uint64]*Batch, want []*Batch, errs []*CorruptError, segOf func(uint64) int) []uint64 {
	t.Helper()
	var missing []uint64
	for _, b := range want {
		if g := got[b.Seq]; g != nil {
			batchesEqual(t, g, b)
			continue
		}
		missing = append(missing, b.Seq)
		ok := false
		for _, ce := range errs {
			if ce.Segment != segOf(b.Seq) {
				continue
			}
			if (ce.Last != 0 && ce.Seq <= b.Seq && b.Seq <= ce.Last) || (ce.Last == 0 && !ce.After && ce.Seq == b.Seq) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("batch %d (%s) lost silently; errors: %v", b.Seq, segName(segOf(b.Seq)), errs)
		}
	}
	return missing
}

// updateChunk rewrites one log chunk of a segment through bbolt.
func updateChunk(t *testing.T, path string, chunk uint64, f func(v []byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		v := b.Get(u64key(chunk))
		if v == nil {
			t.Fatalf("no chunk %d", chunk)
		}
		return b.Put(u64key(chunk), f(bytes.Clone(v)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSilentBadChunkAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(v []byte) []byte
	}{
		{"bad size", func(v []byte) []byte { return v[:2] }},
		{"bad first offset", func(v []byte) []byte {
			binary.LittleEndian.PutUint32(v, uint32(len(v)+100))
			return v
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, want, segs := corruptRecording(t)
			segOf := segmentOf(t, segs)
			updateChunk(t, segs[1].path, 0, tc.f)
			got, errs := readCorrupt(t, dir)
			missing := checkAccounted(t, got, want, errs, segOf)
			if len(missing) == 0 || len(errs) == 0 {
				t.Fatalf("%d missing, errors %v", len(missing), errs)
			}
			first := inspectSegment(segs[1]).Summary.FirstSeq
			if missing[0] != first {
				t.Fatalf("first missing %d, want %d", missing[0], first)
			}
			for _, ce := range errs {
				if ce.Segment != segs[1].index {
					t.Fatalf("error names %s: %v", segName(ce.Segment), ce)
				}
			}
		})
	}
}

func TestSilentBadChunkAtResume(t *testing.T) {
	dir, want, segs := corruptRecording(t)
	segOf := segmentOf(t, segs)
	// Chunk 3 too short: an error, then the reader resyncs after it, where
	// chunk 4's first-record offset is damaged too.
	updateChunk(t, segs[1].path, 3, func(v []byte) []byte { return v[:3] })
	updateChunk(t, segs[1].path, 4, func(v []byte) []byte {
		binary.LittleEndian.PutUint32(v, uint32(len(v)+100))
		return v
	})
	got, errs := readCorrupt(t, dir)
	missing := checkAccounted(t, got, want, errs, segOf)
	if len(missing) == 0 {
		t.Fatal("nothing missing")
	}
}

// damageLastLeaf zeroes the page id of the leaf holding the segment's last
// log chunk (in every copy), so that the page checker drops the leaf.
func damageLastLeaf(t *testing.T, path string) {
	t.Helper()
	m := loadSegment(path)
	if m.fatal || len(m.refs) == 0 {
		t.Fatalf("bad segment: %v", m.msgs)
	}
	ref := m.refs[len(m.refs)-1]
	m.close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.Clone(data[ref.off : ref.off+int64(ref.n)])
	n := 0
	for at := 0; ; at++ {
		k := bytes.Index(data[at:], last)
		if k < 0 {
			break
		}
		at += k
		for p := at / pageSize; p >= 2; p-- {
			if binary.LittleEndian.Uint64(data[p*pageSize:]) == uint64(p) {
				binary.LittleEndian.PutUint64(data[p*pageSize:], 0)
				n++
				break
			}
		}
	}
	if n == 0 {
		t.Fatal("last chunk not found")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSilentLastLeafOfClosedSegment(t *testing.T) {
	dir, want, segs := corruptRecording(t)
	segOf := segmentOf(t, segs)
	sum := *inspectSegment(segs[1]).Summary
	damageLastLeaf(t, segs[1].path)
	got, errs := readCorrupt(t, dir)
	missing := checkAccounted(t, got, want, errs, segOf)
	if len(missing) == 0 || missing[len(missing)-1] != sum.LastSeq {
		t.Fatalf("missing %v, segment ends at %d", missing, sum.LastSeq)
	}
	var end *CorruptError
	for _, ce := range errs {
		if ce.Last == sum.LastSeq {
			end = ce
		}
	}
	if end == nil || end.Segment != segs[1].index {
		t.Fatalf("no error for the records missing at the end: %v", errs)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("verify found nothing")
	}
	n := 0
	for _, p := range rep.Problems {
		if bytes.Contains([]byte(p.Message), []byte("missing at the end")) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("verify reports the end %d times: %v", n, rep.Problems)
	}
}

func TestSilentMissingSegment(t *testing.T) {
	dir, want, segs := corruptRecording(t)
	segOf := segmentOf(t, segs)
	sum := *inspectSegment(segs[1]).Summary
	if err := os.Remove(segs[1].path); err != nil {
		t.Fatal(err)
	}
	got, errs := readCorrupt(t, dir)
	if len(errs) != 1 {
		t.Fatalf("errors: %v", errs)
	}
	ce := errs[0]
	if ce.Segment != segs[1].index || ce.Seq != sum.FirstSeq || ce.Last != sum.LastSeq {
		t.Fatalf("error %v names %d-%d, want %d-%d", ce, ce.Seq, ce.Last, sum.FirstSeq, sum.LastSeq)
	}
	for _, b := range want {
		if segOf(b.Seq) == segs[1].index {
			continue
		}
		if got[b.Seq] == nil {
			t.Fatalf("batch %d lost", b.Seq)
		}
		batchesEqual(t, got[b.Seq], b)
	}
}

func TestSilentNoErrorWhenIntact(t *testing.T) {
	dir, want, _ := corruptRecording(t)
	got, errs := readCorrupt(t, dir)
	if len(errs) != 0 || len(got) != len(want) {
		t.Fatalf("%d batches of %d, errors %v", len(got), len(want), errs)
	}
	// Seeking and stream filters skip records on purpose: no error.
	for _, opts := range []ReaderOptions{{Streams: []string{"sys"}}, {From: want[700].Events[0].Timestamp}} {
		r, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		for b, err := range r.All() {
			if err != nil {
				t.Fatalf("%+v: %v", opts, err)
			}
			_ = b
		}
		r.Close()
	}
}

// TestSilentRandomDamageAccounted damages a segment at random: whatever the
// reader cannot deliver, an error names it.
func TestSilentRandomDamageAccounted(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	runs := 40
	if testing.Short() { // the kernel matrix's VMs: the host runs them all
		runs = 8
	}
	for run := 0; run < runs; run++ {
		dir, want, segs := corruptRecording(t)
		segOf := segmentOf(t, segs)
		path := segs[rng.IntN(len(segs))].path
		data, _ := os.ReadFile(path)
		switch rng.IntN(3) {
		case 0: // bit flips anywhere
			for i := 0; i < 1+rng.IntN(20); i++ {
				data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
			}
		case 1: // a zeroed page, meta pages kept
			p := 2 + rng.IntN(len(data)/pageSize-2)
			clear(data[p*pageSize : (p+1)*pageSize])
		case 2: // a run of garbage
			at, n := rng.IntN(len(data)), 1+rng.IntN(300)
			for i := at; i < at+n && i < len(data); i++ {
				data[i] = byte(rng.Uint32())
			}
		}
		os.WriteFile(path, data, 0o600)
		got, errs := readCorrupt(t, dir)
		checkAccounted(t, got, want, errs, segOf)
	}
}
