package bpf

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// collector is a handler that checks and records every event it is given.
type collector struct {
	mu      sync.Mutex
	seqs    map[uint64]int // seq -> times seen
	order   []uint64       // seqs in delivery order
	batches []int          // batch sizes
	lost    uint64         // sum of PerfbufEvent.Lost
	errs    []error
	total   atomic.Int64
	lastSeq atomic.Int64
}

func newCollector() *collector {
	c := &collector{seqs: map[uint64]int{}}
	c.lastSeq.Store(-1)
	return c
}

func (c *collector) add(raw []byte, lost uint64) {
	seq, _, err := checkEvent(raw)
	if err != nil {
		c.errs = append(c.errs, err)
	}
	c.seqs[seq]++
	c.order = append(c.order, seq)
	c.lost += lost
	c.lastSeq.Store(int64(seq))
}

func (c *collector) ringbuf(_ context.Context, evs []RingbufEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, len(evs))
	for i, e := range evs {
		if i > 0 && e.Timestamp.Before(evs[i-1].Timestamp) {
			c.errs = append(c.errs, errors.New("timestamps go back within a batch"))
		}
		if len(e.Raw) != testEventSize {
			c.errs = append(c.errs, errors.New("ring buffer event of unexpected size"))
		}
		if e.Timestamp.IsZero() || e.Timestamp != e.Timestamp.Round(0) {
			c.errs = append(c.errs, errors.New("timestamp zero or with a monotonic reading"))
		}
		c.add(e.Raw, 0)
	}
	c.total.Add(int64(len(evs)))
	return nil
}

func (c *collector) perf(_ context.Context, evs []PerfbufEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, len(evs))
	for _, e := range evs {
		_, cpu, _ := checkEvent(e.Raw)
		if int(cpu) != e.CPU {
			c.errs = append(c.errs, errors.New("PerfbufEvent.CPU differs from the CPU the program saw"))
		}
		c.add(e.Raw, e.Lost)
	}
	c.total.Add(int64(len(evs)))
	return nil
}

// check verifies that seqs 0..n-1 each arrived exactly once, in order if
// ordered, in batches of at most batchSize.
func (c *collector) check(t *testing.T, n, batchSize int, ordered bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs[:min(len(c.errs), 5)] {
		t.Error(err)
	}
	if len(c.order) != n {
		t.Errorf("got %d events, want %d", len(c.order), n)
	}
	for i := range uint64(n) {
		if c.seqs[i] != 1 {
			t.Errorf("event seq %d arrived %d times", i, c.seqs[i])
			break
		}
	}
	for _, s := range c.batches {
		if s < 1 || s > batchSize {
			t.Errorf("batch of %d events (BatchSize %d)", s, batchSize)
			break
		}
	}
	if ordered {
		for i, s := range c.order {
			if s != uint64(i) {
				t.Errorf("event %d delivered at position %d: not in read order", s, i)
				break
			}
		}
	}
}

func TestRingbufReaderDeliversEveryEvent(t *testing.T) {
	const n = 1000
	p := loadTestProg(t, progOpts{wakeupEvery: 16})
	m, _ := NewMetrics(nil)
	c := newCollector()
	cfg := RingbufConfig{BatchSize: 64, FlushInterval: 10 * time.Millisecond, DropCounter: p.drops}
	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(n)
	waitFor(t, "all events", func() bool { return c.total.Load() == n })
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, n, 64, true)
	want := RingbufStats{EventsReceived: n, BytesReceived: n * testEventSize}
	if got := r.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got := p.emitted(t, slotRB); got != n {
		t.Errorf("program emitted %d, want %d", got, n)
	}
	if got := counterValue(t, m.EventsReceived.WithLabelValues("events_rb", "ringbuf")); got != n {
		t.Errorf("events_received_total = %v, want %d", got, n)
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrReaderAlreadyStarted) {
		t.Errorf("second Start: %v, want ErrReaderAlreadyStarted", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after Start: %v", err)
	}
}

// Events submitted with BPF_RB_NO_WAKEUP and never woken for are still all
// delivered when the context is cancelled: Start drains the ring.
func TestRingbufReaderDrainsOnCancel(t *testing.T) {
	const n = 500
	p := loadTestProg(t, progOpts{wakeupEvery: 1 << 30})
	c := newCollector()
	cfg := RingbufConfig{BatchSize: 100, FlushInterval: time.Hour}
	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(n)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, n, 100, true)
	if got := r.Stats(); got.EventsReceived != n || got.BytesReceived != n*testEventSize {
		t.Errorf("Stats = %+v, want %d events", got, n)
	}
}

// With no wakeup from the kernel and a batch far from full, FlushInterval
// alone brings the events to the handler while the reader keeps running.
func TestRingbufReaderFlushIntervalDeliversPartialBatch(t *testing.T) {
	p := loadTestProg(t, progOpts{wakeupEvery: 1 << 30})
	c := newCollector()
	cfg := RingbufConfig{BatchSize: 256, FlushInterval: 20 * time.Millisecond}
	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(3)
	waitFor(t, "3 events before cancellation", func() bool { return c.total.Load() == 3 })
	if ctx.Err() != nil {
		t.Fatal("context cancelled early")
	}
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, 3, 256, true)
}

func TestRingbufReaderWorkers(t *testing.T) {
	const n = 5000
	p := loadTestProg(t, progOpts{wakeupEvery: 64, rbSize: 1 << 20}) // room for all
	c := newCollector()
	var inFlight, maxInFlight atomic.Int32
	handler := func(ctx context.Context, evs []RingbufEvent) error {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := maxInFlight.Load()
			if cur <= old || maxInFlight.CompareAndSwap(old, cur) {
				break
			}
		}
		return c.ringbuf(ctx, evs)
	}
	cfg := RingbufConfig{BatchSize: 32, Workers: 4, FlushInterval: 10 * time.Millisecond}
	r, err := NewRingbufReader(p.rb, "events_rb", handler, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(n)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, n, 32, false)
	want := RingbufStats{EventsReceived: n, BytesReceived: n * testEventSize}
	if got := r.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	t.Logf("at most %d handler calls ran at once", maxInFlight.Load())
}

func TestRingbufReaderHandlerErrorsCountAsDropped(t *testing.T) {
	const n = 1000
	p := loadTestProg(t, progOpts{wakeupEvery: 8})
	var calls, failed, total atomic.Int64
	handler := func(_ context.Context, evs []RingbufEvent) error {
		total.Add(int64(len(evs)))
		if calls.Add(1)%2 == 0 {
			failed.Add(int64(len(evs)))
			return errors.New("handler refuses this batch")
		}
		return nil
	}
	for _, workers := range []int{1, 3} {
		calls.Store(0)
		failed.Store(0)
		total.Store(0)
		cfg := RingbufConfig{BatchSize: 50, Workers: workers, FlushInterval: 5 * time.Millisecond}
		r, err := NewRingbufReader(p.rb, "events_rb", handler, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stop := runReader(t, cancel, func() error { return r.Start(ctx) })
		emitRingbuf(n)
		if err := stop(); err != nil {
			t.Fatalf("Start: %v", err)
		}
		st := r.Stats()
		if st.EventsReceived != n || total.Load() != n {
			t.Errorf("workers %d: received %d, handled %d, want %d", workers, st.EventsReceived, total.Load(), n)
		}
		if st.EventsDropped != failed.Load() || st.EventsDropped == 0 {
			t.Errorf("workers %d: EventsDropped = %d, want %d (> 0)", workers, st.EventsDropped, failed.Load())
		}
	}
}

// A ring buffer far too small for a burst that arrives while nobody reads:
// every event is either received or counted by the program's drop counter.
func TestRingbufReaderOverloadAccountsEveryEvent(t *testing.T) {
	p := loadTestProg(t, progOpts{wakeupEvery: 16, rbSize: 4096})
	c := newCollector()
	m, _ := NewMetrics(nil)
	cfg := RingbufConfig{BatchSize: 16, FlushInterval: 5 * time.Millisecond, DropCounter: p.drops}
	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	emitRingbuf(3000) // nobody reads yet: about 56 events fit
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(3000) // while reading
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := r.Stats()
	emitted := p.emitted(t, slotRB)
	if emitted != 6000 {
		t.Fatalf("program emitted %d, want 6000", emitted)
	}
	if st.EventsLost == 0 {
		t.Error("no event lost: the ring buffer was not overloaded")
	}
	if st.EventsReceived+st.EventsLost != emitted {
		t.Errorf("received %d + lost %d = %d, want emitted %d", st.EventsReceived, st.EventsLost, st.EventsReceived+st.EventsLost, emitted)
	}
	if got := c.total.Load(); got != st.EventsReceived {
		t.Errorf("handler saw %d events, Stats says %d", got, st.EventsReceived)
	}
	if got := counterValue(t, m.EventsLost.WithLabelValues("events_rb", "ringbuf")); int64(got) != st.EventsLost {
		t.Errorf("events_lost_total = %v, want %d", got, st.EventsLost)
	}
	t.Logf("emitted %d: received %d, lost %d", emitted, st.EventsReceived, st.EventsLost)
}

func TestRingbufReaderCancelAndClose(t *testing.T) {
	p := loadTestProg(t, progOpts{})
	c := newCollector()
	// No event, no deadline within the test: only the cancellation can end it.
	cfg := RingbufConfig{FlushInterval: time.Hour}

	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	waitBlockedIn(t, "(*RingbufReader).read")
	if err := stop(); err != nil {
		t.Fatalf("Start after cancel: %v", err)
	}

	// A context cancelled before Start: what is in the ring is delivered.
	r, err = NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	emitRingbuf(10)
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := r.Start(done); err != nil {
		t.Fatalf("Start with a cancelled context: %v", err)
	}
	c.check(t, 10, 256, true)

	// Close from several goroutines while Start runs.
	r, err = NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- r.Start(context.Background()) }()
	waitBlockedIn(t, "(*RingbufReader).read")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-started:
		if err != nil {
			t.Errorf("Start after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return within 5 s of Close")
	}

	// Close before Start.
	r, err = NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); !errors.Is(err, ErrReaderClosed) {
		t.Errorf("Start after Close: %v, want ErrReaderClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestReaderConstructorsRejectBadInput(t *testing.T) {
	p := loadTestProg(t, progOpts{})
	nop := func(context.Context, []RingbufEvent) error { return nil }
	pnop := func(context.Context, []PerfbufEvent) error { return nil }
	for name, err := range map[string]error{
		"ringbuf nil map":       second(NewRingbufReader(nil, "x", nop, RingbufConfig{}, nil, nil)),
		"ringbuf perf map":      second(NewRingbufReader(p.perf, "x", nop, RingbufConfig{}, nil, nil)),
		"ringbuf nil handler":   second(NewRingbufReader(p.rb, "x", nil, RingbufConfig{}, nil, nil)),
		"ringbuf bad counter":   second(NewRingbufReader(p.rb, "x", nop, RingbufConfig{DropCounter: p.rb}, nil, nil)),
		"perf nil map":          second(NewPerfbufReader(nil, "x", pnop, PerfbufConfig{}, nil, nil)),
		"perf ringbuf map":      second(NewPerfbufReader(p.rb, "x", pnop, PerfbufConfig{}, nil, nil)),
		"perf nil handler":      second(NewPerfbufReader(p.perf, "x", nil, PerfbufConfig{}, nil, nil)),
		"perf watermark > size": second(NewPerfbufReader(p.perf, "x", pnop, PerfbufConfig{PerCPUBufferSize: 4096, Watermark: 8192}, nil, nil)),
	} {
		if !errors.Is(err, ErrReaderConfig) {
			t.Errorf("%s: %v, want ErrReaderConfig", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestPerfbufReaderDeliversEveryEvent(t *testing.T) {
	const n = 1000
	p := loadTestProg(t, progOpts{})
	m, _ := NewMetrics(nil)
	c := newCollector()
	cfg := PerfbufConfig{BatchSize: 64, FlushInterval: 10 * time.Millisecond, Watermark: 1024, PerCPUBufferSize: 256 * 1024} // room for all
	r, err := NewPerfbufReader(p.perf, "events_perf", c.perf, cfg, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitPerf(n)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// One goroutine emitted, but it may have moved between CPUs: no global
	// order is promised.
	c.check(t, n, 64, false)
	st := r.Stats()
	if st.EventsReceived != n || st.EventsDropped != 0 || st.EventsLost != 0 {
		t.Errorf("Stats = %+v, want %d received, none dropped or lost", st, n)
	}
	// Samples arrive padded: 64 bytes + 4-byte size header, aligned to 8.
	if st.BytesReceived != n*68 {
		t.Errorf("BytesReceived = %d, want %d", st.BytesReceived, n*68)
	}
	if got := p.emitted(t, slotPerf); got != n {
		t.Errorf("program emitted %d, want %d", got, n)
	}
	if got := counterValue(t, m.BytesReceived.WithLabelValues("events_perf", "perfbuf")); int64(got) != st.BytesReceived {
		t.Errorf("bytes_received_total = %v, want %d", got, st.BytesReceived)
	}
}

func TestPerfbufReaderWorkersAndFlushInterval(t *testing.T) {
	const n = 3000
	p := loadTestProg(t, progOpts{})
	c := newCollector()
	// A watermark no burst of 3 reaches: only the deadline reads them.
	cfg := PerfbufConfig{BatchSize: 256, Workers: 3, FlushInterval: 20 * time.Millisecond, Watermark: 32 * 1024, PerCPUBufferSize: 1 << 20}
	r, err := NewPerfbufReader(p.perf, "events_perf", c.perf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitPerf(3)
	waitFor(t, "3 events before cancellation", func() bool { return c.total.Load() == 3 })
	emitPerf(n - 3)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, n, 256, false)
	if st := r.Stats(); st.EventsReceived != n || st.EventsLost != 0 || st.EventsDropped != 0 {
		t.Errorf("Stats = %+v, want %d received", st, n)
	}
}

// Per-CPU buffers far too small for a burst arriving while nobody reads: the
// kernel's lost-sample records account for every missing event, and the
// first sample after a loss carries its count.
func TestPerfbufReaderOverloadAccountsEveryEvent(t *testing.T) {
	p := loadTestProg(t, progOpts{})
	c := newCollector()
	// One batch holds all that fits, so it reaches the handler only once
	// the buffer is empty again (at the first deadline).
	cfg := PerfbufConfig{BatchSize: 256, FlushInterval: 5 * time.Millisecond, PerCPUBufferSize: 4096}
	r, err := NewPerfbufReader(p.perf, "events_perf", c.perf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	unpin := pinToOneCPU(t)
	defer unpin()
	emitPerf(2000) // nobody reads yet: about 56 samples fit
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	waitFor(t, "the buffer's contents", func() bool { return c.total.Load() > 0 })
	// The kernel writes the lost-samples record once there is room again,
	// just before the next sample.
	emitPerf(1)
	emitted := int64(2001)
	waitFor(t, "the last sample", func() bool { return c.lastSeq.Load() == emitted-1 })
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := r.Stats()
	if got := p.emitted(t, slotPerf); got != emitted {
		t.Fatalf("program emitted %d, want %d", got, emitted)
	}
	if st.EventsReceived+st.EventsLost != emitted {
		t.Errorf("received %d + lost %d = %d, want emitted %d", st.EventsReceived, st.EventsLost, st.EventsReceived+st.EventsLost, emitted)
	}
	if int64(c.lost) != st.EventsLost {
		t.Errorf("PerfbufEvent.Lost sums to %d, EventsLost = %d", c.lost, st.EventsLost)
	}
	if got := c.total.Load(); got != st.EventsReceived {
		t.Errorf("handler saw %d events, Stats says %d", got, st.EventsReceived)
	}
	t.Logf("emitted %d: received %d, lost %d", emitted, st.EventsReceived, st.EventsLost)
}

func TestPerfbufReaderCancelAndClose(t *testing.T) {
	p := loadTestProg(t, progOpts{})
	c := newCollector()
	r, err := NewPerfbufReader(p.perf, "events_perf", c.perf, PerfbufConfig{FlushInterval: time.Hour}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	waitBlockedIn(t, "(*PerfbufReader)")
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := r.Start(ctx); !errors.Is(err, ErrReaderAlreadyStarted) {
		t.Errorf("second Start: %v, want ErrReaderAlreadyStarted", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestCreatePerfEventArray(t *testing.T) {
	kerneltest.Require(t)
	m, err := CreatePerfEventArray("test perf/array-with-a-long-name", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != ebpf.PerfEventArray || int(m.MaxEntries()) != ncpu {
		t.Errorf("map %s with %d entries, want PerfEventArray with %d", m.Type(), m.MaxEntries(), ncpu)
	}
	r, err := NewPerfbufReader(m, "created", func(context.Context, []PerfbufEvent) error { return nil }, DefaultPerfbufConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// With DropWhenBusy, batches that find every worker busy and the queue full
// are dropped and counted, not waited for.
func TestRingbufReaderDropWhenBusy(t *testing.T) {
	const n, batchSize, workers = 1000, 10, 2
	p := loadTestProg(t, progOpts{wakeupEvery: 8, rbSize: 1 << 20})
	gate := make(chan struct{})
	var handled atomic.Int64
	handler := func(_ context.Context, evs []RingbufEvent) error {
		<-gate
		handled.Add(int64(len(evs)))
		return nil
	}
	cfg := RingbufConfig{BatchSize: batchSize, Workers: workers, FlushInterval: 5 * time.Millisecond, DropWhenBusy: true}
	r, err := NewRingbufReader(p.rb, "events_rb", handler, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(n)
	waitFor(t, "every event read", func() bool { return r.Stats().EventsReceived == n })
	close(gate)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := r.Stats()
	if st.EventsReceived != n || st.EventsDropped+handled.Load() != n {
		t.Errorf("received %d, dropped %d + handled %d, want %d", st.EventsReceived, st.EventsDropped, handled.Load(), n)
	}
	// Workers hold one batch each and the queue as many: the rest is dropped.
	if limit := int64(2 * workers * batchSize); handled.Load() > limit {
		t.Errorf("handled %d events, want at most %d", handled.Load(), limit)
	}
}

// An arena far smaller than a batch grows (old events keep their bytes) and
// every event arrives intact.
func TestRingbufReaderSmallArena(t *testing.T) {
	const n = 500
	p := loadTestProg(t, progOpts{wakeupEvery: 32})
	c := newCollector()
	cfg := RingbufConfig{BufferSize: 100, BatchSize: 64, FlushInterval: 5 * time.Millisecond}
	r, err := NewRingbufReader(p.rb, "events_rb", c.ringbuf, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := runReader(t, cancel, func() error { return r.Start(ctx) })
	emitRingbuf(n)
	if err := stop(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.check(t, n, 64, true)
}
