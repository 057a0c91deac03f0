package store

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testdata/format1 is a recording made by the format 1 writer (commit
// 32d984e, 4 KiB log leaves) with compatBatches and
// WriterOptions{MaxSegmentBytes: 32 << 10, Sync: SyncNever}: 4 segments.

// compatBatches writes (if w is not nil) and returns the batches of the
// format compatibility recording: 60 batches of up to 5 events, a loss
// point every 10, with a fixed seed.
func compatBatches(t testing.TB, w *Writer) []*Batch {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	var out []*Batch
	for i := 0; i < 60; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		b.Events = b.Events[:min(len(b.Events), 5)]
		if w != nil {
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
			if i%10 == 0 {
				if err := w.AppendLoss("exec", testBase.Add(time.Duration(i)*time.Millisecond), Loss{RingbufDropped: uint64(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, cloneBatch(b))
	}
	return out
}

// copyRecording copies a recording directory with the modes a writer
// gives it (git does not keep 0600/0700).
func copyRecording(t *testing.T, from string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	if err := os.CopyFS(dir, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		os.Chmod(s.path, 0o600)
	}
	return dir
}

// segmentFormats returns the format version and the largest log chunk
// value of each segment of dir.
func segmentFormats(t *testing.T, dir string) (formats []uint32, maxValues []int) {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		db, err := openSegmentRO(s.path)
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			sm, err := readSegMeta(tx)
			if err != nil {
				return err
			}
			if sm.meta.FormatVersion != int(sm.format) {
				t.Errorf("%s: meta says format %d, format key %d", segName(s.index), sm.meta.FormatVersion, sm.format)
			}
			m := 0
			err = tx.Bucket(bucketLog).ForEach(func(k, v []byte) error { m = max(m, len(v)); return nil })
			formats, maxValues = append(formats, sm.format), append(maxValues, m)
			return err
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return formats, maxValues
}

// checkCompatRecording reads dir whole and from a time, verifies it, and
// compares it with compatBatches.
func checkCompatRecording(t *testing.T, dir string) {
	t.Helper()
	want := compatBatches(t, nil)
	var losses int
	got := readAll(t, dir, ReaderOptions{OnLoss: func(LossPoint) { losses++ }})
	if len(got) != len(want) || losses != 6 {
		t.Fatalf("read %d batches and %d loss points, want %d and 6", len(got), losses, len(want))
	}
	for i := range want {
		want[i].Seq = got[i].Seq
		batchesEqual(t, got[i], want[i])
	}
	from := testBase.Add(40 * time.Millisecond)
	late := readAll(t, dir, ReaderOptions{From: from})
	if len(late) != 20 || late[0].Seq != got[40].Seq {
		t.Fatalf("read from %v: %d batches, want 20 from seq %d", from, len(late), got[40].Seq)
	}
	rep, err := Verify(dir)
	if err != nil || !rep.OK() || rep.Batches != uint64(len(want)) {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestReadFormat1: a recording written by the format 1 writer reads back
// whole, seeks by time and verifies.
func TestReadFormat1(t *testing.T) {
	dir := copyRecording(t, "testdata/format1")
	formats, values := segmentFormats(t, dir)
	if len(formats) != 4 {
		t.Fatalf("%d segments", len(formats))
	}
	for i, f := range formats {
		if f != 1 || values[i] > chunkValueV1 {
			t.Fatalf("testdata segment %d: format %d, chunk values up to %d", i+1, f, values[i])
		}
	}
	checkCompatRecording(t, dir)
}

// TestWriteFormats: the writer's format 1 parameters still make format 1
// segments (4 KiB leaves), which read back; format 2 segments have the
// larger chunks.
func TestWriteFormats(t *testing.T) {
	for _, f := range []uint32{1, FormatVersion} {
		dir := filepath.Join(t.TempDir(), "rec")
		w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 32 << 10, Sync: SyncNever, Uncompressed: true, format: f})
		if err != nil {
			t.Fatal(err)
		}
		compatBatches(t, w)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkCompatRecording(t, dir)
		// Larger commits: format 2 writes its full chunks.
		dir2 := filepath.Join(t.TempDir(), "rec2")
		want := writeRecording(t, dir2, 150, WriterOptions{MaxSegmentBytes: 256 << 10, Sync: SyncNever, Uncompressed: true, format: f})
		got := readAll(t, dir2, ReaderOptions{})
		if len(got) != len(want) {
			t.Fatalf("format %d: read %d of %d batches", f, len(got), len(want))
		}
		for i := range want {
			batchesEqual(t, got[i], want[i])
		}
		big := false
		for _, d := range []string{dir, dir2} {
			formats, values := segmentFormats(t, d)
			for i := range formats {
				if formats[i] != f || values[i] > chunkValueOf(f) {
					t.Fatalf("format %d: segment %d has format %d, chunk values up to %d", f, i+1, formats[i], values[i])
				}
				big = big || values[i] > chunkValueV1
			}
		}
		if big != (f != 1) {
			t.Fatalf("format %d: chunk values larger than format 1's: %v", f, big)
		}
	}
}

// TestChunkSizeByFormat: the chunk size is taken from each segment's
// version: a segment with format 2 chunks that says format 1 is damaged,
// with problems named in that segment only, and the other segments stay
// readable.
func TestChunkSizeByFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 150, WriterOptions{MaxSegmentBytes: 256 << 10, Sync: SyncNever, Uncompressed: true})
	segs, _ := listSegments(dir)
	_, values := segmentFormats(t, dir)
	bad := -1
	for i, v := range values {
		if v > chunkValueV1 {
			bad = i
			break
		}
	}
	if bad < 0 {
		t.Fatalf("no segment with chunks larger than format 1's: %v", values)
	}
	before := readAll(t, dir, ReaderOptions{})
	si := inspectSegment(segs[bad])
	if si.Summary == nil {
		t.Fatal("no summary")
	}
	firstBad, lastBad := si.Summary.FirstSeq, si.Summary.LastSeq
	db, err := bolt.Open(segs[bad].path, 0o600, &bolt.Options{PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], 1)
		return tx.Bucket(bucketMeta).Put(keyFormat, v[:])
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir)
	if err != nil || rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	for _, p := range rep.Problems {
		if p.Segment != segs[bad].index {
			t.Fatalf("problem outside %s: %v", segName(segs[bad].index), p)
		}
	}
	// The other segments read whole.
	got, _ := readWithErrors(t, dir)
	n := 0
	for _, b := range before {
		if b.Seq >= firstBad && b.Seq <= lastBad {
			continue
		}
		n++
		if got[b.Seq] == nil {
			t.Fatalf("intact batch %d lost", b.Seq)
		}
		batchesEqual(t, got[b.Seq], b)
	}
	if n == 0 {
		t.Fatal("one segment only")
	}
}
