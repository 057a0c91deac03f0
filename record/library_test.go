package record

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// Example_userCollection records a program of your own (from bpf2go) with
// your own live handler beside the recording.
func Example_userCollection() {
	spec, err := testdata.LoadTestprog() // your bpf2go loadXxx()
	if err != nil {
		panic(err)
	}
	_ = spec.Variables["target_tgid"].Set(uint32(os.Getpid()))
	rec, err := New(Options{Dir: "my-recording", Duration: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	err = rec.AddCollection(Collection{
		Name:   "mine",
		Spec:   spec,
		Attach: []Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getppid", Program: "rb_getppid"}},
		Streams: []Stream{{Map: "events_rb", Handler: func(ctx context.Context, events []bpf.RingbufEvent) error {
			// Live processing; the batch is already recorded.
			return nil
		}}},
	})
	if err != nil {
		panic(err)
	}
	if _, err := rec.Run(context.Background()); err != nil {
		panic(err)
	}
}

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
