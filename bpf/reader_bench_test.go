package bpf

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
)

// The reader benchmarks compare RingbufReader and PerfbufReader with a bare
// loop of cilium/ebpf ReadInto that discards every record, on the same load
// in the same run. One op is one event. Each reports
//
//	bare-ev/s    events per second the bare loop received
//	ev/s         events per second the reader handed to its handler
//	ratio        ev/s / bare-ev/s (goal: >= 0.9)
//	allocs/ev    heap allocations per event while the reader ran (goal: 0)
//
// The Live benchmarks run a goroutine that storms the traced syscall while
// the reader reads (the ring buffer program forces a wakeup every 256
// events, the perf reader uses a 64 KiB watermark): a slower reader loses
// more events and receives fewer per second. The Drain benchmarks fill the
// buffer first and then time how fast it is emptied, which isolates the
// reader's own cost per event; they also compare handing batches to a worker
// goroutine with calling the handler on the read goroutine.

const (
	benchBatch    = 256
	benchFlush    = 10 * time.Millisecond
	liveRingSize  = 1 << 20
	drainRingSize = 16 << 20
	perfLiveBuf   = 4 << 20
	perfWatermark = 64 << 10
	perfDrainBuf  = 16 << 20
)

// storm calls emit in a loop on its own goroutine until the returned
// function is called.
func storm(emit func(int)) (stop func()) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !quit.Load() {
			emit(64)
		}
	})
	return func() { quit.Store(true); wg.Wait() }
}

// readCounted runs start until h has handled its n events, and returns how
// many events were handled, in how long (from before the goroutine running
// start is created to the handler call that reached n, as the bare loops
// are timed), with how many heap allocations.
func readCounted(b *testing.B, start func(context.Context) error, h *countingHandler) (events int64, elapsed time.Duration, mallocs uint64) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	<-h.reached
	elapsed = h.end.Sub(t0)
	events = h.handled.Load()
	runtime.ReadMemStats(&ms)
	mallocs = ms.Mallocs - before
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return events, elapsed, mallocs
}

// countingHandler counts events and closes reached once n were handled.
type countingHandler struct {
	n       int64
	handled atomic.Int64
	reached chan struct{}
	once    sync.Once
	end     time.Time // when n events were handled
}

func newCountingHandler(n int64) *countingHandler {
	return &countingHandler{n: n, reached: make(chan struct{})}
}

func (h *countingHandler) add(k int) {
	if h.handled.Add(int64(k)) >= h.n {
		h.once.Do(func() {
			h.end = time.Now()
			close(h.reached)
		})
	}
}

func (h *countingHandler) ringbuf(_ context.Context, evs []RingbufEvent) error {
	h.add(len(evs))
	return nil
}

func (h *countingHandler) perf(_ context.Context, evs []PerfbufEvent) error {
	h.add(len(evs))
	return nil
}

func bareRingbuf(b *testing.B, rd *ringbuf.Reader, n int64) (int64, time.Time) {
	b.Helper()
	var rec ringbuf.Record
	var got int64
	rd.SetDeadline(time.Now().Add(benchFlush))
	for got < n {
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			got++
		case errors.Is(err, os.ErrDeadlineExceeded):
			rd.SetDeadline(time.Now().Add(benchFlush))
		default:
			b.Fatal(err)
		}
	}
	return got, time.Now()
}

func barePerf(b *testing.B, rd *perf.Reader, n int64) (int64, time.Time) {
	b.Helper()
	var rec perf.Record
	var got int64
	rd.SetDeadline(time.Now().Add(benchFlush))
	for got < n {
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			if rec.LostSamples == 0 {
				got++
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			rd.SetDeadline(time.Now().Add(benchFlush))
		default:
			b.Fatal(err)
		}
	}
	return got, time.Now()
}

type benchResult struct {
	bareEvents, events int64
	bareTime, time     time.Duration
	mallocs            uint64
}

func (r *benchResult) report(b *testing.B) {
	bare := float64(r.bareEvents) / r.bareTime.Seconds()
	ours := float64(r.events) / r.time.Seconds()
	b.ReportMetric(bare, "bare-ev/s")
	b.ReportMetric(ours, "ev/s")
	b.ReportMetric(ours/bare, "ratio")
	b.ReportMetric(float64(r.mallocs)/float64(r.events), "allocs/ev")
}

// liveRounds is how many times the Live benchmarks alternate between the
// bare loop and the reader (in alternating order), so that drifts of the
// load affect both alike.
const liveRounds = 16

// liveRoundEvents is the least number of events of a round: a fresh reader
// first waits for a wakeup or its deadline, which must not dominate.
const liveRoundEvents = 32 << 10

func liveBench(b *testing.B, bare func(n int64) (int64, time.Time), reader func(n int64) (int64, time.Duration, uint64)) {
	b.Helper()
	var res benchResult
	per := max(int64(b.N)/liveRounds, liveRoundEvents)
	runBare := func() {
		// On a fresh goroutine, as the reader's Start, timed the same way:
		// from before the goroutine starts to the last event.
		var (
			got int64
			end time.Time
			wg  sync.WaitGroup
		)
		t0 := time.Now()
		wg.Go(func() { got, end = bare(per) })
		wg.Wait()
		res.bareEvents += got
		res.bareTime += end.Sub(t0)
	}
	runReader := func() {
		got, d, m := reader(per)
		res.events += got
		res.time += d
		res.mallocs += m
	}
	b.ResetTimer()
	for i := range liveRounds {
		if i%2 == 0 {
			runBare()
			runReader()
		} else {
			runReader()
			runBare()
		}
	}
	b.StopTimer()
	res.report(b)
	b.ReportMetric(res.time.Seconds()*1e9/float64(res.events), "ns/op")
}

func BenchmarkRingbufReaderLive(b *testing.B) {
	p := loadTestProg(b, progOpts{wakeupEvery: 256, rbSize: liveRingSize})
	stop := storm(emitRingbuf)
	defer stop()
	liveBench(b, func(n int64) (int64, time.Time) {
		rd, err := ringbuf.NewReader(p.rb)
		if err != nil {
			b.Fatal(err)
		}
		defer rd.Close()
		return bareRingbuf(b, rd, n)
	}, func(n int64) (int64, time.Duration, uint64) {
		h := newCountingHandler(n)
		r, err := NewRingbufReader(p.rb, "events_rb", h.ringbuf, RingbufConfig{BatchSize: benchBatch, FlushInterval: benchFlush}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return readCounted(b, r.Start, h)
	})
}

func BenchmarkPerfbufReaderLive(b *testing.B) {
	p := loadTestProg(b, progOpts{})
	stop := storm(emitPerf)
	defer stop()
	liveBench(b, func(n int64) (int64, time.Time) {
		rd, err := perf.NewReaderWithOptions(p.perf, perfLiveBuf, perf.ReaderOptions{Watermark: perfWatermark})
		if err != nil {
			b.Fatal(err)
		}
		defer rd.Close()
		return barePerf(b, rd, n)
	}, func(n int64) (int64, time.Duration, uint64) {
		h := newCountingHandler(n)
		cfg := PerfbufConfig{BatchSize: benchBatch, FlushInterval: benchFlush, PerCPUBufferSize: perfLiveBuf, Watermark: perfWatermark}
		r, err := NewPerfbufReader(p.perf, "events_perf", h.perf, cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return readCounted(b, r.Start, h)
	})
}

// drainChunk is how many events one fill puts into the buffer: a multiple
// of the batch size (so the reader's last batch is full and does not wait
// for the flush interval) that fits the buffer.
const drainChunk = 780 * benchBatch

// drainCycles is the least number of fill-and-drain cycles per reader: the
// Drain benchmarks run a fixed amount of work (about 800k events each way)
// whatever b.N, and report ns/op per event of the reader.
const drainCycles = 4

// drainBench runs fill-and-drain cycles of the bare loop and of the reader,
// alternating which goes first. prepareBare and prepareReader fill the
// buffer (and create what reads it) on the benchmark goroutine; the
// functions they return drain it, on a fresh goroutine for both.
func drainBench(b *testing.B, prepareBare func(k int64) func() (int64, time.Time), prepareReader func(k int64) func() (int64, time.Duration, uint64)) {
	b.Helper()
	var res benchResult
	k := int64(drainChunk)
	runBare := func() {
		drain := prepareBare(k)
		var wg sync.WaitGroup
		t0 := time.Now()
		wg.Go(func() {
			got, end := drain()
			res.bareEvents += got
			res.bareTime += end.Sub(t0)
		})
		wg.Wait()
	}
	runReader := func() {
		got, d, m := prepareReader(k)()
		res.events += got
		res.time += d
		res.mallocs += m
	}
	b.ResetTimer()
	for i := range max((b.N+drainChunk-1)/drainChunk, drainCycles) {
		if i%2 == 0 {
			runBare()
			runReader()
		} else {
			runReader()
			runBare()
		}
	}
	b.StopTimer()
	res.report(b)
	b.ReportMetric(res.time.Seconds()*1e9/float64(res.events), "ns/op")
}

func BenchmarkRingbufReaderDrain(b *testing.B) {
	for _, mode := range []string{"inline", "handoff"} {
		b.Run(mode, func(b *testing.B) {
			forceHandoff = mode == "handoff"
			defer func() { forceHandoff = false }()
			p := loadTestProg(b, progOpts{wakeupEvery: 256, rbSize: drainRingSize})
			drainBench(b, func(k int64) func() (int64, time.Time) {
				emitRingbuf(int(k))
				rd, err := ringbuf.NewReader(p.rb)
				if err != nil {
					b.Fatal(err)
				}
				return func() (int64, time.Time) {
					defer rd.Close()
					return bareRingbuf(b, rd, k)
				}
			}, func(k int64) func() (int64, time.Duration, uint64) {
				emitRingbuf(int(k))
				h := newCountingHandler(k)
				r, err := NewRingbufReader(p.rb, "events_rb", h.ringbuf, RingbufConfig{BatchSize: benchBatch, FlushInterval: benchFlush}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				return func() (int64, time.Duration, uint64) {
					return readCounted(b, r.Start, h)
				}
			})
		})
	}
}

func BenchmarkPerfbufReaderDrain(b *testing.B) {
	for _, mode := range []string{"inline", "handoff"} {
		b.Run(mode, func(b *testing.B) {
			forceHandoff = mode == "handoff"
			defer func() { forceHandoff = false }()
			p := loadTestProg(b, progOpts{})
			unpin := pinToOneCPU(b) // every sample in one per-CPU buffer
			defer unpin()
			drainBench(b, func(k int64) func() (int64, time.Time) {
				rd, err := perf.NewReaderWithOptions(p.perf, perfDrainBuf, perf.ReaderOptions{Watermark: perfDrainBuf / 2})
				if err != nil {
					b.Fatal(err)
				}
				emitPerf(int(k))
				return func() (int64, time.Time) {
					defer rd.Close()
					return barePerf(b, rd, k)
				}
			}, func(k int64) func() (int64, time.Duration, uint64) {
				h := newCountingHandler(k)
				cfg := PerfbufConfig{BatchSize: benchBatch, FlushInterval: benchFlush, PerCPUBufferSize: perfDrainBuf, Watermark: perfDrainBuf / 2}
				r, err := NewPerfbufReader(p.perf, "events_perf", h.perf, cfg, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				emitPerf(int(k))
				return func() (int64, time.Duration, uint64) {
					return readCounted(b, r.Start, h)
				}
			})
		})
	}
}
