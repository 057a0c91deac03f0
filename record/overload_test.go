package record

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// envStorm makes the test binary a syscall storm: it calls getpid this many
// times and exits (see TestMain).
const envStorm = "EBPFREC_TEST_GETPID_STORM"

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(envStorm)); err == nil {
		for i := 0; i < n; i++ {
			syscall.Getpid()
		}
		os.Exit(0)
	}
	if n, err := strconv.Atoi(os.Getenv(envGetsid)); err == nil {
		getsidChild(n)
	}
	if os.Getenv(envRejected) != "" {
		rejectedChild()
	}
	procChildren()
	if spec := os.Getenv(envHTTPLoad); spec != "" {
		httpLoad(spec)
	}
	if f := os.Getenv(envServe); f != "" {
		serveChild(f)
	}
	os.Exit(m.Run())
}

// A ring buffer far too small for a syscall storm: events are lost, and
// every one of them is accounted for, to the event, against the program's
// own count of what it emitted.
func TestRecordOverloadAccounting(t *testing.T) {
	kerneltest.Require(t)
	t.Setenv(envStorm, "300000")
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{
		NoProc:      true, // the stream under test alone
		Dir:         dir,
		Command:     []string{os.Args[0]},
		RingbufSize: uint32(os.Getpagesize()),
		WakeupEvery: 1024,
		Store:       store.WriterOptions{FlushInterval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin("syscalls"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Streams) != 1 {
		t.Fatalf("streams: %+v", sum.Streams)
	}
	s := sum.Streams[0]
	t.Logf("emitted %d recorded %d kernel_lost_perfbuf %d kernel_lost_ringbuf %d ebpfrec_dropped %d", s.Emitted, s.Recorded, s.KernelLostPerfbuf, s.KernelLostRingbuf, s.EbpfrecDropped)
	if !s.HasEmitted || s.Emitted < 300000 {
		t.Fatalf("emitted %d (has %v), want at least the 300000 getpid calls", s.Emitted, s.HasEmitted)
	}
	if s.KernelLostRingbuf == 0 {
		t.Errorf("no drops with a one-page ring buffer: the test did not overload")
	}
	if s.Emitted != s.Recorded+s.Lost() {
		t.Errorf("emitted %d != recorded %d + lost %d", s.Emitted, s.Recorded, s.Lost())
	}
	// The recording says the same as the summary.
	info, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Streams[0]
	if st.Events != s.Recorded || st.Loss.RingbufDropped != s.KernelLostRingbuf {
		t.Errorf("recording holds %d events and %d lost in the ring buffer; summary %d and %d", st.Events, st.Loss.RingbufDropped, s.Recorded, s.KernelLostRingbuf)
	}
	// The counters in the log, batch after loss point after batch, never
	// go down: batches (the reader's goroutine) and loss points (the
	// session's) are logged in the order of their snapshots.
	var last store.Loss
	var records, rises int
	check := func(seq uint64, l store.Loss) {
		records++
		if l.Max(last) != l {
			t.Errorf("record %d: loss counters %+v below the previous record's %+v", seq, l, last)
		}
		if l != last {
			rises++
		}
		last = l
	}
	r, err := store.Open(dir, store.ReaderOptions{OnLoss: func(p store.LossPoint) { check(p.Seq, p.Loss) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for b, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		check(b.Seq, b.Loss)
	}
	if rises == 0 || last.RingbufDropped != s.KernelLostRingbuf {
		t.Errorf("%d records, the counters rose %d times to %+v (summary: %d lost in the ring buffer)", records, rises, last, s.KernelLostRingbuf)
	}
}
