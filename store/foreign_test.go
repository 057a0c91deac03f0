package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDuplicateAndForeignSegments: a copy of segment 1 saved as a later
// segment, and a segment of another recording saved among this one's, are
// damage named by segment, and none of their batches is delivered: Open
// and OpenLive give exactly the recording's batches, and Verify names both.
func TestDuplicateAndForeignSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 256 << 10})
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	last := segs[len(segs)-1].index
	dup, foreign := fmt.Sprintf("%06d", last+1), fmt.Sprintf("%06d", last+2)
	copyTo := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyTo(segs[0].path, filepath.Join(dir, dup+".seg"))
	other := filepath.Join(t.TempDir(), "other")
	otherMeta := testMeta()
	otherMeta.RecordingID = "another-recording"
	writeRecordingMeta(t, other, otherMeta, 50, WriterOptions{})
	copyTo(filepath.Join(other, "000001.seg"), filepath.Join(dir, foreign+".seg"))

	wantMsg := map[string]string{dup: "says it is segment 000001", foreign: "belongs to another recording"}
	for _, live := range []bool{false, true} {
		var r interface {
			Next() (*Batch, error)
			Close() error
		}
		if live {
			lr, err := OpenLive(dir, ReaderOptions{}, 1, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			r = lr
		} else {
			rd, err := Open(dir, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r = rd
		}
		got := 0
		var errs []string
		for {
			b, err := r.Next()
			if err != nil {
				if err.Error() == "EOF" {
					break
				}
				errs = append(errs, err.Error())
				continue
			}
			if b == nil {
				break
			}
			got++
		}
		r.Close()
		if got != len(want) {
			t.Errorf("live=%v: %d batches delivered, want the recording's %d", live, got, len(want))
		}
		for seg, msg := range wantMsg {
			found := false
			for _, e := range errs {
				found = found || (strings.Contains(e, "segment "+seg) && strings.Contains(e, msg))
			}
			if !found {
				t.Errorf("live=%v: no error names %s with %q: %q", live, seg, msg, errs)
			}
		}
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	for seg, msg := range wantMsg {
		found := false
		for _, p := range rep.Problems {
			found = found || (strings.Contains(p.Message, "segment "+seg) && strings.Contains(p.Message, msg))
		}
		if !found {
			t.Errorf("verify does not name %s with %q: %v", seg, msg, rep.Problems)
		}
	}
}
