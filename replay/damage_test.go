package replay

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// damageBatch flips a byte inside the first event of the batch with the
// given sequence number, in its segment file, and returns the segment's
// index.
func damageBatch(t *testing.T, dir string, seq uint64) int {
	t.Helper()
	sr, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for b, err := range sr.All() {
		if err != nil {
			t.Fatal(err)
		}
		if b.Seq == seq {
			raw = bytes.Clone(b.Events[0].Raw)
			break
		}
	}
	sr.Close()
	if raw == nil {
		t.Fatalf("no batch %d", seq)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for i, p := range segs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if at := bytes.Index(data, raw); at >= 0 {
			if bytes.Contains(data[at+1:], raw) {
				t.Fatalf("event of batch %d is not unique", seq)
			}
			data[at+len(raw)/2] ^= 0x5a
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return i + 1
		}
	}
	t.Fatalf("event of batch %d not found in the segment files (compressed?)", seq)
	return 0
}

func TestDamagedBatch(t *testing.T) {
	dir := t.TempDir()
	all := replaytest.Generate(t, dir, 200, smallSegments)
	want := onlyBatches(all)
	// Batch 101 is an exec batch (i = 100, i%4 = 0); loss points take
	// sequence numbers too, so find its sequence number by position.
	const idx = 100
	seq := seqOfBatch(t, dir, idx)
	seg := damageBatch(t, dir, seq)

	// Stop: the replay ends at the damaged batch and names it.
	c := newCollector(t, dir, Options{})
	st, err := c.r.Run(context.Background())
	var de *DamageError
	if !errors.As(err, &de) {
		t.Fatalf("want a *DamageError, got %v", err)
	}
	if de.Segment != seg || de.Seq != seq || de.After {
		t.Fatalf("damage at segment %d batch %d (after %v), want segment %d batch %d: %v", de.Segment, de.Seq, de.After, seg, seq, err)
	}
	compareFingerprints(t, onlyBatches(c.fps), want[:idx])
	if st.Damaged != 0 {
		t.Fatalf("stop counted damage as skipped: %+v", st)
	}

	// Continue: every other batch, the damage counted and reported.
	var reported []error
	c = newCollector(t, dir, Options{OnDamage: Continue, Report: func(err error) { reported = append(reported, err) }})
	st, err = c.r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantSkip := append(append([]string(nil), want[:idx]...), want[idx+1:]...)
	compareFingerprints(t, onlyBatches(c.fps), wantSkip)
	if st.Damaged != 1 || len(reported) != 1 || !errors.As(reported[0], &de) || de.Seq != seq {
		t.Fatalf("damaged %d, reported %v", st.Damaged, reported)
	}
}

// seqOfBatch returns the sequence number of the idx-th batch.
func seqOfBatch(t *testing.T, dir string, idx int) uint64 {
	t.Helper()
	sr, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	i := 0
	for b, err := range sr.All() {
		if err != nil {
			t.Fatal(err)
		}
		if i == idx {
			return b.Seq
		}
		i++
	}
	t.Fatalf("no batch %d", idx)
	return 0
}
