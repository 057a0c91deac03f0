package store

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeRecording writes n batches (and a loss point every 10) and returns
// copies of what was written.
func writeRecording(t testing.TB, dir string, n int, opts WriterOptions) []*Batch {
	t.Helper()
	return writeRecordingMeta(t, dir, testMeta(), n, opts)
}

// writeRecordingMeta is writeRecording with the recording's metadata.
func writeRecordingMeta(t testing.TB, dir string, meta Meta, n int, opts WriterOptions) []*Batch {
	t.Helper()
	w, err := Create(dir, meta, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out []*Batch
	for i := 0; i < n; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, cloneBatch(b))
		if i%10 == 0 {
			if err := w.AppendLoss("exec", testBase.Add(time.Duration(i)*time.Millisecond), Loss{RingbufDropped: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func readAll(t testing.TB, dir string, opts ReaderOptions) []*Batch {
	t.Helper()
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []*Batch
	for b, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cloneBatch(b))
	}
	return got
}

func TestRoundTripSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 256 << 10})
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	got := readAll(t, dir, ReaderOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d batches, wrote %d", len(got), len(want))
	}
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Problems)
	}
	if rep.Batches != uint64(len(want)) {
		t.Fatalf("verify counted %d batches", rep.Batches)
	}
}

func TestRoundTripCompressed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 128 << 10, Sync: SyncNever})
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	got := readAll(t, dir, ReaderOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d batches, wrote %d", len(got), len(want))
	}
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, i := range []int{2500, 10, 1499} {
		r.Seek(want[i].Events[len(want[i].Events)-1].Timestamp)
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		batchesEqual(t, b, want[i])
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

func TestFiltersAndSeek(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 64 << 10})
	// Stream filter.
	got := readAll(t, dir, ReaderOptions{Streams: []string{"sys"}})
	var wantSys []*Batch
	for _, b := range want {
		if b.Stream == "sys" {
			wantSys = append(wantSys, b)
		}
	}
	if len(got) != len(wantSys) {
		t.Fatalf("stream filter: %d batches, want %d", len(got), len(wantSys))
	}
	for i := range got {
		batchesEqual(t, got[i], wantSys[i])
	}
	// Time range.
	from, to := testBase.Add(1234*time.Millisecond), testBase.Add(2345*time.Millisecond)
	got = readAll(t, dir, ReaderOptions{From: from, To: to})
	var wantRange []*Batch
	for _, b := range want {
		mn, mx := b.Events[0].Timestamp, b.Events[len(b.Events)-1].Timestamp
		if !mx.Before(from) && mn.Before(to) {
			wantRange = append(wantRange, b)
		}
	}
	if len(got) != len(wantRange) || len(got) == 0 {
		t.Fatalf("time filter: %d batches, want %d", len(got), len(wantRange))
	}
	for i := range got {
		batchesEqual(t, got[i], wantRange[i])
	}
	// Seek, repeatedly, forwards and backwards.
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, i := range []int{2500, 10, 0, 1499, 2999, 700} {
		if err := r.Seek(want[i].Events[len(want[i].Events)-1].Timestamp); err != nil {
			t.Fatal(err)
		}
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		batchesEqual(t, b, want[i])
		b, err = r.Next()
		if i+1 < len(want) {
			if err != nil {
				t.Fatal(err)
			}
			batchesEqual(t, b, want[i+1])
		} else if err != io.EOF {
			t.Fatalf("after the last batch: %v", err)
		}
	}
	if err := r.Seek(testBase.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("seek past the end: %v", err)
	}
}

func TestInfo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 1000, WriterOptions{MaxSegmentBytes: 1 << 20})
	s, err := Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	var events, bytes uint64
	for _, b := range want {
		events += uint64(len(b.Events))
		for _, e := range b.Events {
			bytes += uint64(len(e.Raw))
		}
	}
	if s.Batches != 1000 || s.Events != events || s.Bytes != bytes || s.FirstSeq != 1 || s.LastSeq != 1100 {
		t.Fatalf("info: %+v", s)
	}
	var lastExec *Batch
	for _, b := range want {
		if b.Stream == "exec" {
			lastExec = b
		}
	}
	if len(s.Streams) != 2 || s.Streams[0].Name != "exec" || s.Streams[0].LossPoints != 100 ||
		s.Streams[0].Loss != lastExec.Loss || s.Streams[1].PerfLost == 0 {
		t.Fatalf("streams: %+v", s.Streams)
	}
}

func TestFileModes(t *testing.T) {
	old := setUmask(0)
	defer setUmask(old)
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 100, WriterOptions{MaxSegmentBytes: 128 << 10})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %#o, want 0700", fi.Mode().Perm())
	}
	segs, _ := listSegments(dir)
	for _, s := range segs {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o, want 0600", s.path, fi.Mode().Perm())
		}
	}
}

// TestCreateKeepsExistingDirMode: recording into an existing directory
// (record -o .) does not change its mode; the segments are 0600, and
// verify notes the open directory without calling it a problem.
func TestCreateKeepsExistingDirMode(t *testing.T) {
	old := setUmask(0)
	defer setUmask(old)
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRecording(t, dir, 100, WriterOptions{})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Fatalf("existing directory's mode changed to %#o", fi.Mode().Perm())
	}
	segs, _ := listSegments(dir)
	for _, s := range segs {
		if fi, err := os.Stat(s.path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", s.path, err)
		}
	}
	rep, err := Verify(dir)
	if err != nil || !rep.OK() || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "0755") {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 10, WriterOptions{})
	if _, err := Create(dir, testMeta(), WriterOptions{}); err == nil {
		t.Fatal("Create over an existing recording succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nothing"), ReaderOptions{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing dir: %v", err)
	}
}

// TestReadWhileWriting: closed segments of a recording being written are
// readable; the open one is skipped, and said so.
func TestReadWhileWriting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 128 << 10, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var want []*Batch
	// 300 batches, and more if the last one rotated: the open segment
	// must hold some.
	for i := 0; i < 300 || w.openSegmentEmpty(); i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, cloneBatch(b))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// Readers see everything committed, the open segment through a copy
	// of its last commit.
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	segs := r.Segments()
	last := segs[len(segs)-1]
	if len(segs) < 2 || !last.Live || last.BeingWritten || last.Skipped != "" {
		t.Fatalf("segments: %+v", segs)
	}
	scratch := filepath.Dir(last.Path)
	i := 0
	for b, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		batchesEqual(t, b, want[i])
		i++
	}
	if i != len(want) {
		t.Fatalf("read %d of %d committed batches", i, len(want))
	}
	r.Close()
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Fatalf("the copy of the open segment is left behind in %s (%v)", scratch, err)
	}
	s, err := Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "being written: counted as of its last commit") || !s.Live || s.Batches != uint64(i) {
		t.Fatalf("info while writing: %d batches, live %v, notes %q", s.Batches, s.Live, s.Notes)
	}
	rep, err := Verify(dir)
	if err != nil || !rep.OK() || len(rep.Skipped) != 0 || len(rep.Notes) != 1 || rep.Batches != uint64(i) {
		t.Fatalf("verify while writing: %v %+v", err, rep)
	}
}

// TestLiveRecordingWithRetention reads a recording while its writer
// appends and retention deletes old segments: verify never reports damage
// (the deletion record is in the segment being written), and every read
// is gapless from the first segment it found to the last commit.
func TestLiveRecordingWithRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, FlushBytes: 16 << 10, FlushInterval: 5 * time.Millisecond, KeepSegments: 3, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- w.Close()
				return
			default:
			}
			if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
				done <- err
				return
			}
			if i%20 == 0 {
				// A commit every few milliseconds (a recorder's default
				// is one a second), so that copies of the open segment
				// mostly see no commit while they are made.
				time.Sleep(time.Millisecond)
			}
		}
	}()
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	verified, liveChecked, copyFailed, deletedSeen := 0, 0, 0, false
	for round := 0; round < rounds || !deletedSeen || liveChecked < 3; round++ {
		if round > 50*rounds {
			t.Fatalf("in %d rounds, retention deleted a segment: %v; the segment being written was checked %d times", round, deletedSeen, liveChecked)
		}
		rep, err := Verify(dir)
		if err != nil {
			if strings.Contains(err.Error(), "holds no recording") {
				continue
			}
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("round %d: verify of a healthy live recording reports %v (skipped %q)", round, rep.Problems, rep.Skipped)
		}
		verified++
		if len(rep.Notes) == 1 && strings.Contains(rep.Notes[0], "checked as of its last commit") {
			liveChecked++
		}
		if strings.Contains(strings.Join(rep.Skipped, "\n"), "being written by another process") {
			copyFailed++
		}
		s, err := Info(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Live {
			t.Fatalf("round %d: info does not say the recording is being written: %q", round, s.Notes)
		}
		if s.Deleted != nil {
			deletedSeen = true
		}
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var prev uint64
		for b, err := range r.All() {
			if err != nil {
				// A segment deleted between listing and reading is the
				// only thing a live reader may meet.
				if !errors.Is(err, ErrSegmentDeleted) {
					t.Fatalf("round %d: %v", round, err)
				}
				prev = 0
				continue
			}
			if prev != 0 && b.Seq != prev+1 {
				t.Fatalf("round %d: batch %d after %d", round, b.Seq, prev)
			}
			prev = b.Seq
		}
		r.Close()
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("after close: %v %v", err, rep.Problems)
	}
	// The segment being written is read through a copy of its last
	// commit. That can fail (the writer committing during every copy),
	// and there is none while the writer creates the next segment, which
	// with these tiny segments is much of the time.
	if liveChecked == 0 || copyFailed >= liveChecked {
		t.Fatalf("the segment being written was checked in %d of %d verifications, and could not be copied in %d", liveChecked, verified, copyFailed)
	}
	t.Logf("%d live verifications: the segment being written checked in %d, not copied in %d", verified, liveChecked, copyFailed)
}

// TestConcurrentAppendClose: appends racing with Close either land or get
// a clear error; nothing hangs, and what was accepted is in the recording.
func TestConcurrentAppendClose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{FlushBytes: 32 << 10, Sync: SyncNever, MaxSegmentBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var accepted sync.Map
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for i := 0; i < 400; i++ {
				b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
				if err := w.Append(b); err != nil {
					if !errors.Is(err, errClosed) {
						t.Errorf("append: %v", err)
					}
					return
				}
				accepted.Store(b.Seq, true)
				if i%50 == 0 {
					if err := w.Flush(); err != nil && !errors.Is(err, errClosed) {
						t.Errorf("flush: %v", err)
					}
				}
			}
		}(g)
	}
	time.Sleep(5 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	got := map[uint64]bool{}
	for _, b := range readAll(t, dir, ReaderOptions{}) {
		got[b.Seq] = true
	}
	accepted.Range(func(k, _ any) bool {
		if !got[k.(uint64)] {
			t.Errorf("accepted batch %d not in the recording", k)
		}
		return true
	})
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

func TestSyncAlwaysAndAgeRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{Sync: SyncAlways, FlushInterval: 5 * time.Millisecond, MaxSegmentAge: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []*Batch
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; w.Segment() < 3; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no rotation by age")
		}
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		if w.Committed() != b.Seq {
			t.Fatalf("SyncAlways: batch %d appended, %d committed", b.Seq, w.Committed())
		}
		want = append(want, cloneBatch(b))
		time.Sleep(2 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dir, ReaderOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d of %d", len(got), len(want))
	}
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Problems)
	}
}

// TestSmallSegmentLimit: a MaxSegmentBytes below the size of an empty
// segment (about 16-20 KiB) used to rotate at every record, leaving more
// segments than batches, some empty. Limits below 32 KiB are now raised to
// 32 KiB: every segment but the last holds a good part of that in records
// (so several batches), no segment is empty, and the recording reads back
// whole.
func TestSmallSegmentLimit(t *testing.T) {
	for _, limit := range []int64{1, 4 << 10, 8 << 10, 20 << 10} {
		t.Run(strconvU(uint64(limit)), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rec")
			want := writeRecording(t, dir, 40, WriterOptions{MaxSegmentBytes: limit, Sync: SyncNever})
			got := readAll(t, dir, ReaderOptions{})
			if len(got) != len(want) {
				t.Fatalf("read %d batches, wrote %d", len(got), len(want))
			}
			for i := range want {
				batchesEqual(t, got[i], want[i])
			}
			r, err := Open(dir, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			segs := r.Segments()
			var payload uint64
			for _, b := range want {
				for _, e := range b.Events {
					payload += uint64(len(e.Raw))
				}
			}
			limit := max(limit, minSegmentBytes)
			// Each full segment holds about limit/2 bytes of records.
			maxSegs := 1 + int(payload/uint64(limit/4))
			if len(segs) > maxSegs || len(segs) > len(want) {
				t.Errorf("%d segments for %d batches (%d payload bytes) with a limit of %d bytes; want at most %d", len(segs), len(want), payload, limit, min(maxSegs, len(want)))
			}
			for i, s := range segs {
				if s.Summary == nil || s.Summary.Records == 0 || (i < len(segs)-1 && s.Summary.Batches < 2) {
					t.Errorf("segment %d of %d is empty, not closed, or holds fewer than 2 batches before the last (%+v)", s.Index, len(segs), s.Summary)
				}
				if i < len(segs)-1 && s.Summary != nil && int64(s.Summary.Bytes) < limit/4 {
					t.Errorf("segment %d holds %d payload bytes, less than a quarter of the %d-byte limit", s.Index, s.Summary.Bytes, limit)
				}
			}
		})
	}
}

// TestReadMeta: ReadMeta gives what Open and Meta give (the streams added
// in later segments too), also when the newest segment is unreadable, and
// fails like Open on a directory without segments.
func TestReadMeta(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 64 << 10, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	// The stream is added in a segment that is not the newest (which the
	// test truncates): where the writer rotates depends on when it
	// flushed (a timer), so write until two more segments follow the one
	// that holds the addition (in the 6.1 VM the newest segment was once
	// the one that held it, and truncating it lost the stream).
	addedIn := -1
	for i := 0; ; i++ {
		if i == 200 {
			if err := w.AddStream(StreamInfo{Name: "late", Kind: KindPerfbuf}); err != nil {
				t.Fatal(err)
			}
			addedIn = w.Segment() // or the one before, if it rotated
		}
		if err := w.Append(genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
		if i >= 300 && addedIn >= 0 && w.Segment() >= addedIn+2 {
			break
		}
		if i == 20000 {
			t.Fatal("20,000 batches did not fill two segments after the stream was added")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	same := func(what string) {
		t.Helper()
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := r.Meta()
		r.Close()
		got, err := ReadMeta(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: ReadMeta %+v, Open %+v", what, got, want)
		}
		if _, ok := got.Stream("late"); !ok {
			t.Fatalf("%s: the stream added in a later segment is missing: %+v", what, got.Streams)
		}
	}
	same("intact")
	if err := os.Truncate(segs[len(segs)-1].path, 100); err != nil {
		t.Fatal(err)
	}
	same("newest segment truncated")
	empty := t.TempDir()
	if _, err := ReadMeta(empty); err == nil || !strings.Contains(err.Error(), "holds no recording") {
		t.Fatalf("empty directory: %v", err)
	}
}
