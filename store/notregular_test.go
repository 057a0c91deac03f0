package store

import (
	"iter"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNonRegularSegmentsRefused: segment names on a symbolic link (to
// itself, to /dev/zero, to a real segment elsewhere) or on a FIFO are
// refused and named, never followed or opened (a FIFO would block, a link
// could read any file of the host), and every batch of the real segments is
// still read, by Open, OpenLive, Verify and Info.
func TestNonRegularSegmentsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 200, WriterOptions{})
	other := filepath.Join(t.TempDir(), "other")
	writeRecording(t, other, 10, WriterOptions{})
	bad := map[string]string{
		"000002.seg": "a symbolic link",
		"000003.seg": "a symbolic link",
		"000004.seg": "a FIFO",
		"000005.seg": "a symbolic link",
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("000002.seg", filepath.Join(dir, "000002.seg")))
	must(os.Symlink("/dev/zero", filepath.Join(dir, "000003.seg")))
	must(syscall.Mkfifo(filepath.Join(dir, "000004.seg"), 0o600))
	must(os.Symlink(filepath.Join(other, "000001.seg"), filepath.Join(dir, "000005.seg")))

	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, kind := range bad {
		seg := strings.TrimSuffix(name, ".seg")
		found := false
		for _, p := range rep.Problems {
			found = found || (strings.Contains(p.String(), "segment "+seg) && strings.Contains(p.String(), "not a regular file") && strings.Contains(p.String(), kind))
		}
		if !found {
			t.Errorf("verify does not name %s as %s: %v", name, kind, rep.Problems)
		}
	}
	if _, err := Info(dir); err != nil {
		t.Errorf("info: %v", err)
	}
	wantSeq := map[uint64]bool{}
	for _, b := range want {
		wantSeq[b.Seq] = true
	}
	for _, live := range []bool{false, true} {
		var r interface {
			All() iter.Seq2[*Batch, error]
			Close() error
		}
		if live {
			lr, err := OpenLive(dir, ReaderOptions{}, 1, t.TempDir())
			must(err)
			r = lr
		} else {
			rd, err := Open(dir, ReaderOptions{})
			must(err)
			r = rd
		}
		got, errs := 0, 0
		for b, err := range r.All() {
			if err != nil {
				errs++
				continue
			}
			if !wantSeq[b.Seq] {
				t.Errorf("live=%v: batch %d is not one of the recording's", live, b.Seq)
			}
			got++
		}
		r.Close()
		if got != len(want) {
			t.Errorf("live=%v: read %d batches, want %d", live, got, len(want))
		}
	}
}
