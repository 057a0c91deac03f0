package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var (
	templateOnce  sync.Once
	templateDir   string
	templateWant  []*Batch
	templateError error
)

// corruptRecording returns a fresh copy of a 3-or-more-segment recording
// (written once per test process), with the batches it holds.
func corruptRecording(t *testing.T) (string, []*Batch, []segFile) {
	t.Helper()
	templateOnce.Do(func() {
		templateDir, templateError = os.MkdirTemp("", "ebpfrec-store-template-")
		if templateError != nil {
			return
		}
		templateWant = writeRecording(t, filepath.Join(templateDir, "rec"), 1200, WriterOptions{MaxSegmentBytes: 400 << 10, FlushBytes: 64 << 10, Sync: SyncNever, Uncompressed: true})
	})
	if templateError != nil {
		t.Fatal(templateError)
	}
	dir := filepath.Join(t.TempDir(), "rec")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(templateDir, "rec"))); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700) // CopyFS does not keep modes
	for _, s := range segs {
		os.Chmod(s.path, 0o600)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	return dir, templateWant, segs
}

// readWithErrors reads everything, collecting batches by seq and errors
// (see readCorrupt).
func readWithErrors(t *testing.T, dir string) (map[uint64]*Batch, []error) {
	t.Helper()
	got, ces := readCorrupt(t, dir)
	errs := make([]error, len(ces))
	for i, ce := range ces {
		errs[i] = ce
	}
	return got, errs
}

// segmentOf says which segment holds each batch (from the summaries).
func segmentOf(t *testing.T, segs []segFile) func(seq uint64) int {
	var sums []SegmentSummary
	for _, s := range segs {
		si := inspectSegment(s)
		if si.Summary == nil {
			t.Fatalf("%s: no summary", s.path)
		}
		sums = append(sums, *si.Summary)
	}
	return func(seq uint64) int {
		for i, s := range sums {
			if seq >= s.FirstSeq && seq <= s.LastSeq {
				return segs[i].index
			}
		}
		return 0
	}
}

func TestCorruptBitFlipInBatch(t *testing.T) {
	dir, want, segs := corruptRecording(t)
	// Find batch 500's first event in its segment file and flip a bit.
	target := want[499]
	seg := segmentOf(t, segs)(target.Seq)
	path := segs[seg-1].path
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Flip the bit in every copy: besides the live one, the file may hold
	// stale copies in pages that bbolt freed when it rewrote a leaf.
	raw := target.Events[0].Raw
	found := 0
	for at := 0; ; at++ {
		k := bytes.Index(data[at:], raw[:48])
		if k < 0 {
			break
		}
		at += k
		data[at+20] ^= 0x10
		found++
	}
	if found == 0 {
		t.Fatal("event not found in file")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, errs := readWithErrors(t, dir)
	if len(errs) != 1 {
		t.Fatalf("%d errors: %v", len(errs), errs)
	}
	wantMsg := segName(seg) + ": batch " + itoa(target.Seq) + ": crc mismatch"
	if !strings.Contains(errs[0].Error(), wantMsg) {
		t.Fatalf("error %q does not say %q", errs[0], wantMsg)
	}
	for _, b := range want {
		if b.Seq == target.Seq {
			if got[b.Seq] != nil {
				t.Fatal("damaged batch delivered")
			}
			continue
		}
		if got[b.Seq] == nil {
			t.Fatalf("intact batch %d lost", b.Seq)
		}
		batchesEqual(t, got[b.Seq], b)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.Problems[0].Message, wantMsg) {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func TestCorruptRandomBitFlips(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	runs := 20
	if testing.Short() { // the kernel matrix's VMs: the host runs them all
		runs = 4
	}
	for run := 0; run < runs; run++ {
		dir, want, segs := corruptRecording(t)
		// Damage the middle segment anywhere (bbolt pages included).
		path := segs[1].path
		data, _ := os.ReadFile(path)
		for i := 0; i < 1+rng.IntN(20); i++ {
			data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
		}
		os.WriteFile(path, data, 0o600)
		got, _ := readWithErrors(t, dir)
		checkOtherSegmentsIntact(t, got, want, segs, 2)
		if _, err := Verify(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := Info(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// checkOtherSegmentsIntact checks that every batch outside the damaged
// segment was read exactly.
func checkOtherSegmentsIntact(t *testing.T, got map[uint64]*Batch, want []*Batch, segs []segFile, damaged int) {
	t.Helper()
	var ranges []SegmentSummary
	for _, s := range segs {
		if s.index == damaged {
			ranges = append(ranges, SegmentSummary{})
			continue
		}
		si := inspectSegment(s)
		ranges = append(ranges, *si.Summary)
	}
	for _, b := range want {
		for i, r := range ranges {
			if segs[i].index != damaged && b.Seq >= r.FirstSeq && b.Seq <= r.LastSeq {
				if got[b.Seq] == nil {
					t.Fatalf("batch %d of intact %s lost", b.Seq, segName(segs[i].index))
				}
				batchesEqual(t, got[b.Seq], b)
			}
		}
	}
}

func TestCorruptTruncated(t *testing.T) {
	for _, frac := range []float64{0.9, 0.5, 0.1, 0} {
		dir, want, segs := corruptRecording(t)
		last := segs[len(segs)-1]
		fi, _ := os.Stat(last.path)
		if err := os.Truncate(last.path, int64(float64(fi.Size())*frac)); err != nil {
			t.Fatal(err)
		}
		got, errs := readWithErrors(t, dir)
		if frac == 0 {
			// An empty last segment is what a writer killed while creating
			// it leaves: skipped, and said so.
			checkOtherSegmentsIntact(t, got, want, segs, last.index)
			rep, err := Verify(dir)
			if err != nil || len(rep.Skipped) != 1 {
				t.Fatalf("verify of an empty last segment: %v %+v", err, rep)
			}
			continue
		}
		if len(errs) == 0 {
			t.Fatalf("truncated to %.0f%%: no error", frac*100)
		}
		for _, err := range errs {
			if !strings.Contains(err.Error(), segName(last.index)) {
				t.Fatalf("error does not name the segment: %v", err)
			}
		}
		// The message says what happened, the same on every read (not
		// what bbolt says of bytes past the end of the file).
		_, again := readWithErrors(t, dir)
		if len(again) != len(errs) || !strings.Contains(errs[0].Error(), "file truncated") {
			t.Fatalf("truncated to %.0f%%: %d then %d errors, first %v", frac*100, len(errs), len(again), errs[0])
		}
		for i := range errs {
			if errs[i].Error() != again[i].Error() {
				t.Fatalf("truncated to %.0f%%: error %q, then %q", frac*100, errs[i], again[i])
			}
		}
		checkOtherSegmentsIntact(t, got, want, segs, last.index)
		rep, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Fatalf("truncated to %.0f%%: verify found nothing", frac*100)
		}
	}
}

func TestCorruptZeroPages(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for run := 0; run < 10; run++ {
		dir, want, segs := corruptRecording(t)
		path := segs[1].path
		data, _ := os.ReadFile(path)
		pages := len(data) / pageSize
		for i := 0; i < 1+rng.IntN(3); i++ {
			p := 2 + rng.IntN(pages-2) // keep the meta pages: see below for those
			if run == 0 {
				p = rng.IntN(2)
			}
			clear(data[p*pageSize : (p+1)*pageSize])
		}
		os.WriteFile(path, data, 0o600)
		got, _ := readWithErrors(t, dir)
		checkOtherSegmentsIntact(t, got, want, segs, 2)
		rep, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Problems {
			if p.Segment != 2 {
				t.Fatalf("problem outside the damaged segment: %v", p)
			}
		}
	}
}

func TestCorruptGarbageFiles(t *testing.T) {
	dir, want, segs := corruptRecording(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for i, size := range []int{10, 0, 4096, 20000, 1 << 20} {
		junk := make([]byte, size)
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		index := len(segs) + 1 + i
		if err := os.WriteFile(filepath.Join(dir, segmentName(index)), junk, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, errs := readWithErrors(t, dir)
	if len(errs) != 5 {
		t.Fatalf("%d errors for 5 garbage files: %v", len(errs), errs)
	}
	for _, err := range errs {
		if !strings.Contains(err.Error(), "store: segment 0000") {
			t.Fatalf("error does not name a segment: %v", err)
		}
	}
	checkOtherSegmentsIntact(t, got, want, segs, -1)
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) < 5 {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func TestNewerVersionRefused(t *testing.T) {
	dir, _, segs := corruptRecording(t)
	db, err := bolt.Open(segs[1].path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], FormatVersion+6)
		return tx.Bucket(bucketMeta).Put(keyFormat, v[:])
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, ReaderOptions{})
	if err == nil || !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("open: %v", err)
	}
	for _, want := range []string{"segment 000002", "format version " + itoa(FormatVersion+6), "version " + itoa(FormatVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if _, err := Info(dir); err == nil {
		t.Fatal("info accepted a newer version")
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.Problems[0].Message, "newer") {
		t.Fatalf("verify: %v", rep.Problems)
	}
}

func itoa(v uint64) string { return strconvU(v) }
