package replay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// smallSegments rotates every few dozen batches.
// smallSegments makes many segments of few batches each (uncompressed,
// so that tests can find and damage recorded events in the files).
var smallSegments = store.WriterOptions{MaxSegmentBytes: 32 << 10, FlushBytes: 8 << 10, Uncompressed: true}

func TestExactBatchByBatch(t *testing.T) {
	dir := t.TempDir()
	want := replaytest.Generate(t, dir, 400, smallSegments)
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	c := newCollector(t, dir, Options{})
	st, err := c.r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	compareFingerprints(t, c.fps, want)
	if st.Batches != 400 || st.HandlerErrors != 0 || st.Damaged != 0 {
		t.Fatalf("stats %+v", st)
	}
	var events, bytes uint64
	for _, f := range onlyBatches(want) {
		_ = f
	}
	for _, s := range st.Streams {
		events += s.Events
		bytes += s.Bytes
	}
	if events != st.Events || bytes != st.Bytes || st.Events == 0 {
		t.Fatalf("per-stream sums %d events %d bytes, totals %d %d", events, bytes, st.Events, st.Bytes)
	}
	// The loss counters the recording carried: the latest per stream.
	info, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range info.Streams {
		if got := st.Streams[s.Name].Loss; got != s.Loss {
			t.Errorf("stream %s: loss %+v, store says %+v", s.Name, got, s.Loss)
		}
	}
}

func TestPerStreamHandlersAndInterleaving(t *testing.T) {
	dir := t.TempDir()
	want := onlyBatches(replaytest.Generate(t, dir, 120, smallSegments))
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	r.HandleRingbuf("exec", func(_ context.Context, evs []bpf.RingbufEvent) error {
		got = append(got, replaytest.FingerprintRing("exec", evs))
		return nil
	})
	r.HandlePerfbuf("exit", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		got = append(got, replaytest.FingerprintPerf("exit", evs))
		return nil
	})
	st, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wantSel []string
	for _, f := range want {
		if f[:5] == "exec " || f[:5] == "exit " {
			wantSel = append(wantSel, f)
		}
	}
	compareFingerprints(t, got, wantSel)
	if st.Streams["custom"] != nil && st.Streams["custom"].Batches != 0 {
		t.Fatalf("custom has no handler but was delivered: %+v", st.Streams["custom"])
	}
}

func TestStreamFilter(t *testing.T) {
	dir := t.TempDir()
	want := replaytest.Generate(t, dir, 200, smallSegments)
	c := newCollector(t, dir, Options{Streams: []string{"exit", "custom"}})
	if _, err := c.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wantSel []string
	for _, f := range want {
		if hasStream(f, "exit") || hasStream(f, "custom") {
			wantSel = append(wantSel, f)
		}
	}
	compareFingerprints(t, c.fps, wantSel)
}

func hasStream(fp, s string) bool {
	if len(fp) > 5 && fp[:5] == "LOSS " {
		fp = fp[5:]
	}
	return len(fp) > len(s) && fp[:len(s)] == s && fp[len(s)] == ' '
}

func TestTimeRange(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 300, smallSegments)
	// Everything, to know the batch times.
	var times []time.Time
	r, _ := Open(dir, Options{})
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		times = append(times, evs[0].Timestamp)
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		times = append(times, evs[0].Timestamp)
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	from, to := times[100], times[200]
	var want int
	for _, tm := range times {
		if !tm.Before(from) && tm.Before(to) {
			want++
		}
	}
	var got []time.Time
	r, _ = Open(dir, Options{From: from, To: to})
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		got = append(got, evs[0].Timestamp)
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		got = append(got, evs[0].Timestamp)
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != want {
		t.Fatalf("got %d batches in [%v, %v), want %d", len(got), from, to, want)
	}
	for _, tm := range got {
		if tm.Before(from) || !tm.Before(to) {
			t.Fatalf("batch at %v outside [%v, %v)", tm, from, to)
		}
	}
}

func TestPacing(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 30, store.WriterOptions{})
	var times []time.Time
	r, _ := Open(dir, Options{})
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		times = append(times, evs[len(evs)-1].Timestamp)
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		times = append(times, evs[len(evs)-1].Timestamp)
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, speed := range []float64{1, 2, 0.5} {
		clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		var at []time.Time
		r, _ := Open(dir, Options{Speed: speed, Clock: clk})
		r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
			at = append(at, clk.Now())
			return nil
		})
		r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
			at = append(at, clk.Now())
			return nil
		})
		if _, err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		var want []time.Duration
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d > 0 {
				want = append(want, time.Duration(float64(d)/speed))
			}
		}
		if len(clk.waits) != len(want) {
			t.Fatalf("speed %v: %d waits, want %d", speed, len(clk.waits), len(want))
		}
		for i := range want {
			if clk.waits[i] != want[i] {
				t.Fatalf("speed %v: wait %d is %v, want %v (all: %v)", speed, i, clk.waits[i], want[i], clk.waits)
			}
		}
		// Each batch is delivered at start + (its time - first time)/speed.
		for i := range at {
			if want := at[0].Add(time.Duration(float64(times[i].Sub(times[0])) / speed)); !at[i].Equal(want) {
				t.Fatalf("speed %v: batch %d at %v, want %v", speed, i, at[i], want)
			}
		}
	}
	// Speed 0: no wait at all.
	clk := &fakeClock{now: time.Now()}
	r, _ = Open(dir, Options{Clock: clk})
	r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error { return nil })
	r.HandlePerfbuf("", func(context.Context, []bpf.PerfbufEvent) error { return nil })
	if _, err := r.Run(context.Background()); err != nil || len(clk.waits) != 0 {
		t.Fatalf("speed 0: %v, waits %v", err, clk.waits)
	}
	if _, err := Open(dir, Options{Speed: -1}); err == nil {
		t.Fatal("negative speed accepted")
	}
}

// TestPacingZeroTimes: batches whose events carry zero times (a hand-made
// recording) have no time to pace by: they go at once, and the batches
// around them keep their pace.
func TestPacingZeroTimes(t *testing.T) {
	base := time.Unix(1700000000, 0)
	for _, times := range [][]time.Time{
		{base, {}, base.Add(time.Second)},
		{{}, base, base.Add(time.Second)},
	} {
		dir := filepath.Join(t.TempDir(), "rec")
		meta := store.Meta{RecordingID: "zero", Started: base, Streams: []store.StreamInfo{{Name: "ev", Kind: store.KindRingbuf}}}
		w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range times {
			if err := w.Append(&store.Batch{Stream: "ev", Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte{1}, Timestamp: ts, CPU: -1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		clk := &fakeClock{now: base}
		r, err := Open(dir, Options{Speed: 1, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error { return nil })
		st, err := r.Run(context.Background())
		if err != nil || st.Batches != 3 {
			t.Fatalf("%v: %v, %d batches", times, err, st.Batches)
		}
		if len(clk.waits) != 1 || clk.waits[0] != time.Second {
			t.Fatalf("%v: waits %v, want [1s]", times, clk.waits)
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	dir := t.TempDir()
	want := onlyBatches(replaytest.Generate(t, dir, 100, smallSegments))
	boom := errors.New("boom")
	run := func(p Policy) ([]string, Stats, []error, error) {
		var got []string
		var reported []error
		r, _ := Open(dir, Options{OnHandlerError: p, Report: func(err error) { reported = append(reported, err) }})
		n := 0
		r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
			got = append(got, replaytest.FingerprintRing(r.Current().Stream, evs))
			if n++; n%10 == 5 {
				return boom
			}
			return nil
		})
		r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
			got = append(got, replaytest.FingerprintPerf(r.Current().Stream, evs))
			return nil
		})
		st, err := r.Run(context.Background())
		return got, st, reported, err
	}
	// Stop: at the 5th ring buffer batch, with its position.
	got, st, _, err := run(Stop)
	var he *HandlerError
	if !errors.As(err, &he) || !errors.Is(err, boom) {
		t.Fatalf("stop: error %v", err)
	}
	compareFingerprints(t, got, want[:len(got)])
	if he.Seq != st.LastSeq || st.HandlerErrors != 1 || he.Stream == "" {
		t.Fatalf("stop: error %+v, stats %+v", he, st)
	}
	// Continue: everything delivered, errors counted and reported.
	got, st, reported, err := run(Continue)
	if err != nil {
		t.Fatal(err)
	}
	compareFingerprints(t, got, want)
	if st.HandlerErrors == 0 || uint64(len(reported)) != st.HandlerErrors {
		t.Fatalf("continue: %d errors, %d reported", st.HandlerErrors, len(reported))
	}
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 50, store.WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	r, _ := Open(dir, Options{})
	n := 0
	r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	st, err := r.Run(ctx)
	if !errors.Is(err, context.Canceled) || st.Batches != 3 {
		t.Fatalf("err %v, %d batches", err, st.Batches)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Fatal("missing dir opened")
	}
	empty := t.TempDir()
	if _, err := Open(empty, Options{}); err == nil {
		t.Fatal("empty dir opened")
	}
	_ = os.WriteFile(filepath.Join(empty, "000001.seg"), []byte("garbage"), 0o600)
	if r, err := Open(empty, Options{}); err == nil {
		r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error { return nil })
		if _, err := r.Run(context.Background()); err == nil {
			t.Fatal("garbage segment replayed without error")
		}
	}
}

// TestNoAllocationsPerBatch: the replayer adds no allocation per batch to
// those of the store reader (its event slices are reused).
func TestNoAllocationsPerBatch(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 1000, store.WriterOptions{})
	reader := testing.AllocsPerRun(3, func() {
		sr, err := store.Open(dir, store.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range sr.All() {
			if err != nil {
				t.Fatal(err)
			}
		}
		sr.Close()
	})
	noop := func(context.Context, []bpf.RingbufEvent) error { return nil }
	noopPerf := func(context.Context, []bpf.PerfbufEvent) error { return nil }
	replayed := testing.AllocsPerRun(3, func() {
		r, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r.HandleRingbuf("", noop)
		r.HandlePerfbuf("", noopPerf)
		if _, err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	// Open reads the metadata once more, and the slices grow to the
	// largest batch: a constant, far below one allocation per batch.
	if replayed > reader+200 {
		t.Fatalf("replay allocates %.0f times, the reader alone %.0f: %.0f more for 1000 batches", replayed, reader, replayed-reader)
	}
	t.Logf("allocations: reader %.0f, replay %.0f (1000 batches)", reader, replayed)
}

// TestFromOnly seeks into the middle of a recording of several segments:
// the first batch delivered is the first whose events reach From, and
// every batch after it follows, as recorded.
func TestFromOnly(t *testing.T) {
	dir := t.TempDir()
	want := onlyBatches(replaytest.Generate(t, dir, 300, smallSegments))
	var times []time.Time
	r, _ := Open(dir, Options{})
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		times = append(times, evs[len(evs)-1].Timestamp)
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		times = append(times, evs[len(evs)-1].Timestamp)
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, dir, Options{From: times[222]})
	if _, err := c.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	compareFingerprints(t, onlyBatches(c.fps), want[222:])
}

// TestExactCompressed: batches stored zstd-compressed replay exactly too.
func TestExactCompressed(t *testing.T) {
	dir := t.TempDir()
	want := replaytest.Generate(t, dir, 200, store.WriterOptions{MaxSegmentBytes: 32 << 10})
	c := newCollector(t, dir, Options{})
	if _, err := c.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	compareFingerprints(t, c.fps, want)
}

// TestDecodedEventTypeMismatch: a stream recorded with another event type
// than its built-in tracer now decodes is not decoded with the new layout:
// its events come raw, with an error naming both types.
func TestDecodedEventTypeMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	base := time.Unix(1700000000, 0)
	meta := store.Meta{RecordingID: "layout", Started: base, Streams: []store.StreamInfo{
		{Name: "exec", Tracer: "exec", Map: "exec_events", Kind: store.KindRingbuf, EventType: "exec.Event/0"}}}
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 512)
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: raw, Timestamp: base, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	r.HandleDecoded(func(d *Decoded) error {
		if d.Event != nil || d.Err == nil || len(d.Raw) != len(raw) {
			t.Fatalf("event %v, error %v, %d bytes", d.Event, d.Err, len(d.Raw))
		}
		got = append(got, d.Err.Error())
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "exec.Event/0") || !strings.Contains(got[0], "decodes exec.Event") {
		t.Fatalf("errors %q", got)
	}
}

// TestRunTwiceRefused: a Replayer replays once; a second Run says so
// instead of delivering nothing or everything again.
func TestRunTwiceRefused(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 20, store.WriterOptions{})
	c := newCollector(t, dir, Options{})
	st, err := c.r.Run(context.Background())
	if err != nil || st.Batches != 20 {
		t.Fatalf("first run: %d batches, %v", st.Batches, err)
	}
	if _, err := c.r.Run(context.Background()); !errors.Is(err, ErrRunTwice) {
		t.Fatalf("second run: %v, want ErrRunTwice", err)
	}
	if n := c.count(); n != 20 {
		t.Fatalf("%d batches delivered over both runs, want 20", n)
	}
}

// TestLossOnlyRises: cumulative loss counters reported as moved only when
// one rose; a lower sample (which recordings made before the recorder
// logged counters in order can hold) is not a change, and what OnLoss
// gets are the high-water marks.
func TestLossOnlyRises(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := replaytest.Meta()
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i, dropped := range []uint64{0, 5, 3, 5, 9, 7} {
		b := &store.Batch{Stream: "custom", Kind: store.KindRingbuf, Loss: store.Loss{RingbufDropped: dropped},
			Events: []store.Event{{Raw: []byte{byte(i)}, Timestamp: replaytest.Start, CPU: -1}}}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	r, err := Open(dir, Options{OnLoss: func(p store.LossPoint) { got = append(got, p.Loss.RingbufDropped) }})
	if err != nil {
		t.Fatal(err)
	}
	r.HandleRingbuf("", func(context.Context, []bpf.RingbufEvent) error { return nil })
	st, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []uint64{5, 9}) || st.Streams["custom"].Loss.RingbufDropped != 9 {
		t.Fatalf("loss moved at %v, final %+v; want [5 9], 9", got, st.Streams["custom"].Loss)
	}
}

// TestTimeRangeFromStart: a range given as offsets from the recording's
// start replays what the same range given as times does, also for a
// follower that started before the recording existed; a stream the
// recording lacks and an empty range are refused by Open.
func TestTimeRangeFromStart(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 300, smallSegments)
	meta, err := store.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	from, to := 150*time.Millisecond, 450*time.Millisecond
	byTime := newCollector(t, dir, Options{From: meta.Started.Add(from), To: meta.Started.Add(to)})
	if _, err := byTime.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	byOffset := newCollector(t, dir, Options{FromStart: from, ToStart: to})
	if _, err := byOffset.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := onlyBatches(byTime.snapshot())
	if n := len(want); n == 0 || n >= 300 {
		t.Fatalf("the range holds %d of 300 batches: pick another", n)
	}
	compareFingerprints(t, onlyBatches(byOffset.snapshot()), want)

	// A follower started before the recorder.
	live := filepath.Join(t.TempDir(), "live")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newCollector(t, live, Options{Follow: true, PollInterval: time.Millisecond, FromStart: from, ToStart: to, ScratchDir: t.TempDir()})
	done := make(chan error, 1)
	go func() { _, err := f.r.Run(ctx); done <- err }()
	replaytest.Generate(t, live, 300, smallSegments)
	waitFor(t, "the follower to read the range", func() bool { return f.count() >= len(want) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	compareFingerprints(t, onlyBatches(f.snapshot()), want)

	if _, err := Open(dir, Options{Streams: []string{"nope"}}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("unknown stream: %v", err)
	}
	if _, err := Open(dir, Options{FromStart: to, ToStart: from}); !errors.Is(err, ErrEmptyRange) {
		t.Errorf("empty range: %v", err)
	}
}

// TestHandlerOfUnknownStreamRefused: a handler set for a stream the
// recording does not have (a misspelt name, or a handler of the other
// kind) makes Run fail with ErrUnknownStream naming it, instead of a
// replay that delivers nothing and returns nil.
func TestHandlerOfUnknownStreamRefused(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 20, store.WriterOptions{})
	for _, tc := range []struct {
		name string
		set  func(r *Replayer)
		want string
	}{
		{"misspelt ring", func(r *Replayer) {
			r.HandleRingbuf("mine/exec", func(context.Context, []bpf.RingbufEvent) error { return nil })
		}, `"mine/exec"`},
		{"misspelt perf", func(r *Replayer) {
			r.HandlePerfbuf("exits", func(context.Context, []bpf.PerfbufEvent) error { return nil })
		}, `"exits"`},
		{"ring handler of a perf stream", func(r *Replayer) {
			r.HandleRingbuf("exit", func(context.Context, []bpf.RingbufEvent) error { return nil })
		}, "perf buffer"},
		{"perf handler of a ring stream", func(r *Replayer) {
			r.HandlePerfbuf("exec", func(context.Context, []bpf.PerfbufEvent) error { return nil })
		}, "ring buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.set(r)
			st, err := r.Run(context.Background())
			if !errors.Is(err, ErrUnknownStream) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v (%d batches), want ErrUnknownStream naming %s", err, st.Batches, tc.want)
			}
		})
	}
}

// TestNilHandlerRefused: a nil handler given to any Handle method makes
// Run fail with ErrNilHandler naming the method, where HandleDecoded(nil)
// used to panic in Run and HandleRingbuf(name, nil) to replay nothing.
func TestNilHandlerRefused(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 20, store.WriterOptions{})
	for _, tc := range []struct {
		want string
		set  func(r *Replayer)
	}{
		{"HandleDecoded", func(r *Replayer) { r.HandleDecoded(nil) }},
		{"HandleDecodedInOrder", func(r *Replayer) { r.HandleDecodedInOrder(OrderOptions{}, nil) }},
		{`HandleRingbuf("exec")`, func(r *Replayer) { r.HandleRingbuf("exec", nil) }},
		{"HandlePerfbuf", func(r *Replayer) { r.HandlePerfbuf("", nil) }},
	} {
		t.Run(tc.want, func(t *testing.T) {
			r, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.set(r)
			var st Stats
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Run panicked: %v", p)
					}
				}()
				st, err = r.Run(context.Background())
			}()
			if !errors.Is(err, ErrNilHandler) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v (%d batches), want ErrNilHandler naming %s", err, st.Batches, tc.want)
			}
		})
	}
}

// TestUnknownPolicyRefused: an OnHandlerError or OnDamage that is
// neither Stop nor Continue is refused by Open (ErrBadPolicy), where it
// acted as Continue: a replay meant to stop went on past errors.
func TestUnknownPolicyRefused(t *testing.T) {
	dir := t.TempDir()
	replaytest.Generate(t, dir, 5, store.WriterOptions{})
	for _, opts := range []Options{{OnHandlerError: Policy(2)}, {OnDamage: Policy(-1)}} {
		if _, err := Open(dir, opts); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("Open(%+v): %v, want ErrBadPolicy", opts, err)
		}
	}
	if _, err := Open(dir, Options{OnHandlerError: Continue, OnDamage: Continue}); err != nil {
		t.Fatal(err)
	}
}
