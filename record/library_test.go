package record

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// The library form: a user collection with live handlers on a ring buffer
// and a perf buffer. The handlers see every event, the recording holds the
// same batches (by fingerprint), and the accounting balances.
func TestRecordUserCollection(t *testing.T) {
	kerneltest.Require(t)
	const nRing, nPerf = 700, 400
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["wakeup_every"].Set(uint32(64)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rec")
	var fps bytes.Buffer
	started := make(chan struct{})
	rec, err := New(Options{Dir: dir, Fingerprints: &fps, Started: func() { close(started) }})
	if err != nil {
		t.Fatal(err)
	}
	var ringSeen, perfSeen atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	check := func() {
		if ringSeen.Load() == nRing && perfSeen.Load() == nPerf {
			cancel()
		}
	}
	err = rec.AddCollection(Collection{
		Name: "testprog",
		Spec: spec,
		Attach: []Attachment{
			{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"},
			{Kind: "tracepoint", Target: "syscalls/sys_enter_getpgid", Program: "perf_getpgid"},
		},
		Streams: []Stream{
			{Map: "events_rb", DropCounter: "rb_drops", Handler: func(_ context.Context, evs []bpf.RingbufEvent) error {
				ringSeen.Add(int64(len(evs)))
				check()
				return nil
			}},
			{Map: "events_perf", PerfHandler: func(_ context.Context, evs []bpf.PerfbufEvent) error {
				perfSeen.Add(int64(len(evs)))
				check()
				return nil
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		// Wait until the programs are attached, then emit.
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
		for i := 0; i < nRing; i++ {
			syscall.Getppid()
		}
		for i := 0; i < nPerf; i++ {
			_, _ = syscall.Getpgid(0)
		}
	}()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ringSeen.Load() != nRing || perfSeen.Load() != nPerf {
		t.Fatalf("handlers saw %d ring and %d perf events, want %d and %d", ringSeen.Load(), perfSeen.Load(), nRing, nPerf)
	}
	for _, s := range sum.Streams {
		if s.Lost() != 0 {
			t.Errorf("stream %s lost %d", s.Name, s.Lost())
		}
	}
	// The recording holds exactly the batches the handlers received.
	r, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sc := bufio.NewScanner(&fps)
	n := 0
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !sc.Scan() {
			t.Fatalf("batch %d recorded but not seen live", b.Seq)
		}
		if got := store.FingerprintLine(b.Seq, b.Stream, b.Kind, b.Events); got != sc.Text() {
			t.Fatalf("batch %d: recorded %s, live %s", b.Seq, got, sc.Text())
		}
		n++
	}
	if sc.Scan() {
		t.Fatalf("live batch %q not recorded", sc.Text())
	}
	if n == 0 {
		t.Fatal("no batches")
	}
}

// TestHandlerOfTheWrongKindRefused: a live handler that could never be
// called (a perf handler on a ring buffer, or the reverse) is refused, not
// ignored.
func TestHandlerOfTheWrongKindRefused(t *testing.T) {
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	ring := func(context.Context, []bpf.RingbufEvent) error { return nil }
	perf := func(context.Context, []bpf.PerfbufEvent) error { return nil }
	for _, c := range []struct {
		stream Stream
		ok     bool
	}{
		{Stream{Map: "events_rb", PerfHandler: perf}, false},
		{Stream{Map: "events_perf", Handler: ring}, false},
		{Stream{Map: "events_rb", Handler: ring}, true},
		{Stream{Map: "events_perf", PerfHandler: perf}, true},
	} {
		rec, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec")})
		if err != nil {
			t.Fatal(err)
		}
		err = rec.AddCollection(Collection{Name: "c", Spec: spec.Copy(), Streams: []Stream{c.stream}})
		if (err == nil) != c.ok {
			t.Errorf("stream of %s (ring handler %v, perf handler %v): %v", c.stream.Map, c.stream.Handler != nil, c.stream.PerfHandler != nil, err)
		}
	}
}

// TestKernelLossUncounted: a ring buffer stream without a drop counter
// says that its kernel-side loss is not counted (0 would claim none was
// lost), in the summary and in the recording; with one it is counted.
func TestKernelLossUncounted(t *testing.T) {
	kerneltest.Require(t)
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	for _, withCounter := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "rec")
		rec, err := New(Options{Dir: dir, Duration: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		st := Stream{Map: "events_rb"}
		if withCounter {
			st.DropCounter = "rb_drops"
		}
		if err := rec.AddCollection(Collection{Name: "c", Spec: spec.Copy(), Streams: []Stream{st},
			Attach: []Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"}}}); err != nil {
			t.Fatal(err)
		}
		sum, err := rec.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		info, err := store.Info(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := sum.Streams[0].KernelLossUncounted; got == withCounter || info.Streams[0].KernelLossUncounted != got {
			t.Errorf("drop counter %v: summary says uncounted %v, recording %v", withCounter, got, info.Streams[0].KernelLossUncounted)
		}
	}
}

// TestAbortCountsWhatIsLeft: Abort stops at once: the events still in the
// buffers are read and counted as dropped by ebpfrec, neither recorded nor
// handed to a live handler, so that the accounting holds.
func TestAbortCountsWhatIsLeft(t *testing.T) {
	kerneltest.Require(t)
	const n = 100
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	// No wakeup and no deadline: the events stay in the ring until the stop.
	if err := spec.Variables["wakeup_every"].Set(uint32(1 << 30)); err != nil {
		t.Fatal(err)
	}
	var rec *Recorder
	rec, err = New(Options{Dir: filepath.Join(t.TempDir(), "rec"), Ringbuf: bpf.RingbufConfig{FlushInterval: time.Hour},
		Started: func() {
			for range n {
				syscall.Getppid()
			}
			rec.Abort()
		}})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	if err := rec.AddCollection(Collection{Name: "t", Spec: spec,
		Attach: []Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"}},
		Streams: []Stream{{Map: "events_rb", DropCounter: "rb_drops", Handler: func(_ context.Context, evs []bpf.RingbufEvent) error {
			handled.Add(int64(len(evs)))
			return nil
		}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := sum.Streams[0]
	if !sum.Aborted || s.Recorded != 0 || s.EbpfrecDropped != n || handled.Load() != 0 {
		t.Fatalf("aborted %v: recorded %d, ebpfrec_dropped %d, handled %d; want nothing recorded or handled, %d dropped", sum.Aborted, s.Recorded, s.EbpfrecDropped, handled.Load(), n)
	}
}

// TestOptionsOutOfRangeRefused: New refuses a negative Duration,
// LossInterval or ProgressInterval with ErrBadOption naming the field: a
// negative Duration (a deadline already past) used to record without a
// limit, as 0 does.
func TestOptionsOutOfRangeRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Dir: dir, Duration: -time.Second}, "Duration -1s"},
		{Options{Dir: dir, LossInterval: -1}, "LossInterval -1ns"},
		{Options{Dir: dir, ProgressInterval: -time.Millisecond}, "ProgressInterval -1ms"},
		{Options{Dir: dir, Ringbuf: bpf.RingbufConfig{BatchSize: store.MaxBatchEvents + 1}}, "batch size"},
	} {
		r, err := New(tc.opts)
		if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s): recorder %t, error %v; want ErrBadOption naming %s", tc.want, r != nil, err, tc.want)
		}
	}
	if _, err := New(Options{Dir: dir}); err != nil {
		t.Fatalf("New with zero values: %v", err)
	}
}

// TestUnknownBuiltinSaysImport: a library program that imported no tracer
// package (only proc, which record imports, is known) is told to import
// bpf/tracers/all when AddBuiltin("exec") fails, where the error only
// listed "known tracers: proc"; with the tracers imported (this test
// binary), an unknown name gets the list alone.
func TestUnknownBuiltinSaysImport(t *testing.T) {
	const hint = `import _ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"`
	err := builtinError(&tracers.UnknownTracerError{Name: "exec", Known: []string{"proc"}}, []string{"proc"})
	if !errors.Is(err, tracers.ErrUnknownTracer) || !strings.Contains(err.Error(), hint) {
		t.Errorf("no tracer package imported: %v, want ErrUnknownTracer with %s", err, hint)
	}
	r, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec")})
	if err != nil {
		t.Fatal(err)
	}
	err = r.AddBuiltin("nosuch")
	if !errors.Is(err, tracers.ErrUnknownTracer) || strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), "exec") {
		t.Errorf("tracers imported: %v, want ErrUnknownTracer listing them, without the hint", err)
	}
}

// TestLiveHandlerErrorReported: an error of a stream's live handler does
// not stop the recording (the batch is recorded already), but it is not
// lost either: the summary counts the failed calls and Run returns the
// first, wrapping ErrHandler and the handler's error and naming the
// stream and batch. Before, it went to Options.Log alone (discarded by
// default) and Run returned nil.
func TestLiveHandlerErrorReported(t *testing.T) {
	kerneltest.Require(t)
	const n = 300
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rec")
	errMine := errors.New("my live processing failed")
	var calls, failed, events int
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec, err := New(Options{Dir: dir, NoProc: true, Ringbuf: bpf.RingbufConfig{BatchSize: 10}, Started: func() {
		go func() {
			for range n {
				syscall.Getppid()
			}
			cancel() // the drain reads what is left
		}()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddCollection(Collection{Name: "c", Spec: spec,
		Attach: []Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"}},
		Streams: []Stream{{Map: "events_rb", DropCounter: "rb_drops", Handler: func(_ context.Context, evs []bpf.RingbufEvent) error {
			calls++
			events += len(evs)
			if calls%2 == 0 {
				failed++
				return errMine
			}
			return nil
		}}}}); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(ctx)
	if sum == nil {
		t.Fatalf("Run: no summary, %v", err)
	}
	st := sum.Streams[0]
	if st.Recorded+st.KernelLostRingbuf != n || uint64(events) != st.Recorded {
		t.Fatalf("recorded %d + lost %d of %d, the handler got %d", st.Recorded, st.KernelLostRingbuf, n, events)
	}
	if failed == 0 {
		t.Fatalf("the handler was called %d times and never failed: the test needs two batches", calls)
	}
	if !errors.Is(err, ErrHandler) || !errors.Is(err, errMine) || !strings.Contains(err.Error(), "stream events_rb: batch 2:") {
		t.Errorf("Run: %v, want ErrHandler and the handler's error, at stream events_rb, batch 2", err)
	}
	if st.HandlerErrors != uint64(failed) || !errors.Is(st.HandlerErr, errMine) {
		t.Errorf("summary: %d handler errors (%v), want %d", st.HandlerErrors, st.HandlerErr, failed)
	}
}

// TestAddAfterRunRefused: AddCollection and AddBuiltin after Run has
// started return ErrStarted, where they appended to what the running
// recording reads (a data race) and the addition was never recorded.
func TestAddAfterRunRefused(t *testing.T) {
	r, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec"), NoProc: true})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing added: Run fails at once, after it started.
	if _, err := r.Run(context.Background()); !errors.Is(err, ErrNoStreams) {
		t.Fatalf("Run with nothing to record: %v, want ErrNoStreams", err)
	}
	spec, err := testdata.LoadTestprog()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddCollection(Collection{Name: "c", Spec: spec, Streams: []Stream{{Map: "events_rb"}}}); !errors.Is(err, ErrStarted) {
		t.Errorf("AddCollection after Run: %v, want ErrStarted", err)
	}
	if err := r.AddBuiltin("exec"); !errors.Is(err, ErrStarted) {
		t.Errorf("AddBuiltin after Run: %v, want ErrStarted", err)
	}
}
