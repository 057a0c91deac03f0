package store

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRecordingDirectory: the functions through which other packages see a
// recording directory count, remove and watch exactly its segments.
func TestRecordingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	if HasSegments(dir) {
		t.Fatal("a missing directory has segments")
	}
	if u, err := DiskUsage(dir); err != nil || u != (Usage{}) {
		t.Fatalf("usage of a missing directory: %+v %v", u, err)
	}
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, Uncompressed: true, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	tok := ChangeToken(dir, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if ChangeToken(dir, 0) == tok {
		t.Fatal("ChangeToken did not change after a commit")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := listSegments(dir)
	if len(segs) < 3 || !HasSegments(dir) {
		t.Fatalf("%d segments", len(segs))
	}
	// Files beside the segments: a leftover of an interrupted creation,
	// a note, and names that only look like segments.
	for _, n := range []string{"000099.seg.creating", "recorder.note", "x.seg", "000000.seg"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("12345"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var bytes int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, _ := e.Info()
		bytes += fi.Size()
	}
	u, err := DiskUsage(dir)
	if err != nil || u.Segments != len(segs) || u.Bytes != bytes {
		t.Fatalf("usage %+v (%v), want %d segments, %d bytes", u, err, len(segs), bytes)
	}
	if ChangeToken(dir, segs[len(segs)-1].index) == ChangeToken(dir, 0) {
		t.Fatal("ChangeToken does not depend on fromSegment")
	}
	if err := RemoveSegments(dir); err != nil {
		t.Fatal(err)
	}
	var left []string
	ents, _ = os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if HasSegments(dir) || len(left) != 3 {
		t.Fatalf("after RemoveSegments: %v", left)
	}
}

// TestWallTime: kernel time to wall time, in the one place every reader
// uses, with the read time where the recording cannot say.
func TestWallTime(t *testing.T) {
	read := time.Unix(1700000000, 123)
	m := Meta{MonoToWall: 1_600_000_000_000_000_000}
	for _, c := range []struct {
		meta Meta
		kt   uint64
		want int64
	}{
		{m, 5_000_000_000, 1_600_000_005_000_000_000},
		{m, 0, read.UnixNano()},       // no kernel time
		{m, 1 << 63, read.UnixNano()}, // not a time
		{Meta{}, 5_000_000_000, read.UnixNano()},
	} {
		if got := c.meta.WallTime(c.kt, read); got != c.want {
			t.Errorf("WallTime(%d) with offset %d = %d, want %d", c.kt, c.meta.MonoToWall, got, c.want)
		}
	}
}

// TestChangeTokenSameTick: a commit that leaves a segment's size and
// modification time as they were (the kernel's coarse clock: the same
// tick; a bbolt file keeps its size while its pages fill) still changes
// the token, or a follower that looked just before it never reads it.
func TestChangeTokenSameTick(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{Uncompressed: true, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	commit := func(i int) {
		if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	commit(0)
	seg := filepath.Join(dir, segmentName(1))
	// A commit that does not grow the file: bbolt grows it in steps.
	for i := 1; i < 200; i++ {
		before, err := os.Stat(seg)
		if err != nil {
			t.Fatal(err)
		}
		tok := ChangeToken(dir, 0)
		commit(i)
		after, err := os.Stat(seg)
		if err != nil {
			t.Fatal(err)
		}
		if after.Size() != before.Size() {
			continue
		}
		if err := os.Chtimes(seg, before.ModTime(), before.ModTime()); err != nil { // the same tick
			t.Fatal(err)
		}
		if ChangeToken(dir, 0) == tok {
			t.Fatalf("ChangeToken did not change after commit %d, in the same tick and of the same size", i)
		}
		return
	}
	t.Fatal("every commit grew the segment")
}

// TestDeletedSegmentTheCallerHas: a segment deleted after OpenLive listed
// it, all of whose records the caller already has (ReaderOptions.After),
// is not reported missing (a follower counted such records twice, as
// delivered and as missed, in the 6.12 VM).
func TestDeletedSegmentTheCallerHas(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, Uncompressed: true, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Segments) < 3 || info.Segments[1].Summary == nil {
		t.Fatalf("%d segments", len(info.Segments))
	}
	s2 := info.Segments[1]
	r, err := OpenLive(dir, ReaderOptions{After: s2.Summary.LastSeq, AfterSet: true}, s2.Index, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Remove(filepath.Join(dir, segmentName(s2.Index))); err != nil {
		t.Fatal(err)
	}
	b, err := r.Next()
	if err != nil {
		t.Fatalf("Next: %v (the caller has every record of the deleted segment, up to %d)", err, s2.Summary.LastSeq)
	}
	if b.Seq != s2.Summary.LastSeq+1 {
		t.Fatalf("first batch %d, want %d", b.Seq, s2.Summary.LastSeq+1)
	}
}
