package store

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGapOfSegmentsDeletedWhileListed: a running writer's retention
// deletes the oldest segments first, so a listing made while it deleted
// segments 1 and 2 can hold 1 but not 2 (the CI's 5.10 VM met that). The
// reader then finds 1 deleted and 2 absent: both are ErrSegmentDeleted,
// never damage. Segment 2 absent while 1, older, is still there cannot be
// retention: that gap stays damage ("missing or unreadable").
func TestGapOfSegmentsDeletedWhileListed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, FlushBytes: 16 << 10, FlushInterval: time.Hour, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; ; i++ {
		if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, segmentName(5))); err == nil {
			break
		}
	}
	seg := func(i int) string { return filepath.Join(dir, segmentName(i)) }
	if err := os.Rename(seg(2), seg(2)+".away"); err != nil {
		t.Fatal(err)
	}
	read := func(deleteFirst bool) (errs []error) {
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if !r.live {
			t.Fatal("the recording does not read as being written")
		}
		if deleteFirst {
			if err := os.Remove(seg(1)); err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range r.All() {
			if err != nil {
				errs = append(errs, err)
			}
		}
		return errs
	}
	errs := read(false)
	if len(errs) != 1 || errors.Is(errs[0], ErrSegmentDeleted) || !strings.Contains(errs[0].Error(), "segment 000002 missing or unreadable") {
		t.Errorf("segment 2 missing, 1 there: %v, want one error naming segment 2 missing or unreadable", errs)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "segments 000002-000002 missing") {
		t.Errorf("verify with segment 2 missing, 1 there: %v, want segment 2 missing", rep.Problems)
	}
	errs = read(true)
	if len(errs) != 2 {
		t.Errorf("segment 2 missing, 1 deleted after the listing: %v, want two errors", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrSegmentDeleted) {
			t.Errorf("segments 1 and 2 deleted by retention: %v does not say deleted", err)
		}
	}
	t.Log(errs)
}
