package bpf

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the ring and perf buffer readers. Test them with
// errors.Is: the returned errors wrap them with the map name and the cause.
var (
	// ErrReaderAlreadyStarted is returned by a second call of Start: a
	// reader runs once.
	ErrReaderAlreadyStarted = errors.New("reader already started")
	// ErrReaderClosed is returned by Start after Close.
	ErrReaderClosed = errors.New("reader closed")
	// ErrReaderConfig is returned by the constructors for a nil or
	// wrongly-typed map, a nil handler or an unusable configuration.
	ErrReaderConfig = errors.New("invalid reader configuration")
	// ErrReaderRead is returned by Start when reading the kernel buffer
	// failed for another reason than cancellation or Close.
	ErrReaderRead = errors.New("reading BPF buffer failed")
)

// readerStats are one reader's counters. The read loop adds to them once per
// batch (and once per lost-samples record or drop-counter poll), never per
// event; Stats loads them atomically.
type readerStats struct {
	received, dropped, lost, bytes atomic.Int64
	m                              readerCounters
}

func (s *readerStats) addReceived(events, bytes int) {
	s.received.Add(int64(events))
	s.bytes.Add(int64(bytes))
	addCounter(s.m.received, int64(events))
	addCounter(s.m.bytes, int64(bytes))
}

func (s *readerStats) addDropped(n int) {
	s.dropped.Add(int64(n))
	addCounter(s.m.dropped, int64(n))
}

func (s *readerStats) addLost(n int64) {
	s.lost.Add(n)
	addCounter(s.m.lost, n)
}

// setLost raises the lost counter to total (a sampled kernel-side counter
// that only grows) and adds the difference to the metric.
func (s *readerStats) setLost(total int64) {
	for {
		old := s.lost.Load()
		if total <= old {
			return
		}
		if s.lost.CompareAndSwap(old, total) {
			addCounter(s.m.lost, total-old)
			return
		}
	}
}

// batch is a group of events handed to the handler at once, with the arena
// that their Raw slices point into. Batches are recycled, arena and event
// slice included, so the steady state allocates nothing.
type batch[E any] struct {
	events []E
	arena  []byte
}

// inArena reports whether ReadInto stored sample at arena[off:], the spare
// capacity it was given (it does when the sample fits; otherwise it
// allocates, and the caller appends the sample to the arena).
func inArena(sample, arena []byte, off int) bool {
	n := len(sample)
	return n == 0 || (n <= cap(arena)-off && &sample[0] == &arena[off : off+1][0])
}

// dispatcher hands batches from the read loop to the handler: inline (one
// worker) or through a bounded queue to Workers goroutines. It owns a fixed
// set of batches (one being filled, Workers queued, Workers being handled),
// which bounds the reader's memory.
type dispatcher[E any] struct {
	handler func(context.Context, []E) error
	hctx    context.Context
	stats   *readerStats
	log     *slog.Logger
	kind    string
	mapName string

	inline       bool
	dropWhenBusy bool
	queue        chan *batch[E]
	free         chan *batch[E]
	wg           sync.WaitGroup
	failures     atomic.Int64
}

func newDispatcher[E any](hctx context.Context, handler func(context.Context, []E) error, workers, batchSize, arenaSize int, dropWhenBusy bool, st *readerStats, log *slog.Logger, kind, mapName string) (*dispatcher[E], *batch[E]) {
	d := &dispatcher[E]{
		handler: handler, hctx: hctx, stats: st, log: log, kind: kind, mapName: mapName,
		inline:       workers <= 1 && !forceHandoff,
		dropWhenBusy: dropWhenBusy,
	}
	newBatch := func() *batch[E] {
		// A huge BatchSize costs memory only when batches fill up: the
		// slices grow to what is used and keep that size.
		return &batch[E]{events: make([]E, 0, min(batchSize, 1024)), arena: make([]byte, 0, arenaSize)}
	}
	if d.inline {
		return d, newBatch()
	}
	n := 2*workers + 1
	d.queue = make(chan *batch[E], workers)
	d.free = make(chan *batch[E], n)
	for range n - 1 {
		d.free <- newBatch()
	}
	d.wg.Add(workers)
	for range workers {
		go d.work()
	}
	return d, newBatch()
}

// forceHandoff makes a one-worker reader hand batches to a worker goroutine
// instead of calling the handler on the read goroutine (benchmarks compare
// both).
var forceHandoff = false

func (d *dispatcher[E]) work() {
	defer d.wg.Done()
	for b := range d.queue {
		d.handle(b)
		d.free <- b
	}
}

func (d *dispatcher[E]) handle(b *batch[E]) {
	if err := d.handler(d.hctx, b.events); err != nil {
		d.stats.addDropped(len(b.events))
		if d.failures.Add(1) == 1 {
			d.log.Warn("event handler failed; its batch is counted as dropped (further failures are logged at debug level)",
				"map", d.mapName, "kind", d.kind, "events", len(b.events), "error", err)
		} else {
			d.log.Debug("event handler failed", "map", d.mapName, "kind", d.kind, "events", len(b.events), "error", err)
		}
	}
	clear(b.events) // drop references into the arena before reuse
	b.events = b.events[:0]
	b.arena = b.arena[:0]
}

// dispatch counts b as received, hands it to the handler and returns an
// empty batch to fill next. It does nothing for an empty batch.
func (d *dispatcher[E]) dispatch(b *batch[E]) *batch[E] {
	if len(b.events) == 0 {
		return b
	}
	d.stats.addReceived(len(b.events), len(b.arena))
	if d.inline {
		d.handle(b)
		return b
	}
	if d.dropWhenBusy {
		select {
		case d.queue <- b:
		default:
			d.stats.addDropped(len(b.events))
			clear(b.events)
			b.events = b.events[:0]
			b.arena = b.arena[:0]
			return b
		}
	} else {
		d.queue <- b
	}
	// At most 2*workers batches are queued or being handled, so a free one
	// is always at hand or about to be.
	return <-d.free
}

// close waits until every queued batch has been handled.
func (d *dispatcher[E]) close() {
	if d.inline {
		return
	}
	close(d.queue)
	d.wg.Wait()
}

// lifecycle is the once-only Start and the idempotent, concurrent-safe
// Close shared by both readers.
type lifecycle struct {
	mu      sync.Mutex
	started bool
	closed  bool
	stopCh  chan struct{}
	done    chan struct{}

	releaseOnce sync.Once
	releaseErr  error
	release     func() error // closes the kernel-side reader
	flush       func() error // wakes a blocked read
}

func newLifecycle(release, flush func() error) *lifecycle {
	return &lifecycle{stopCh: make(chan struct{}), done: make(chan struct{}), release: release, flush: flush}
}

func (l *lifecycle) begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrReaderClosed
	case l.started:
		return ErrReaderAlreadyStarted
	}
	l.started = true
	return nil
}

// end releases the kernel reader and marks the run finished.
func (l *lifecycle) end() {
	l.doRelease()
	close(l.done)
}

func (l *lifecycle) doRelease() error {
	l.releaseOnce.Do(func() { l.releaseErr = l.release() })
	return l.releaseErr
}

func (l *lifecycle) stopping() bool {
	select {
	case <-l.stopCh:
		return true
	default:
		return false
	}
}

func (l *lifecycle) close() error {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	started := l.started
	l.mu.Unlock()
	if first {
		close(l.stopCh)
	}
	if started {
		_ = l.flush() // fails harmlessly if the run already released the reader
		<-l.done
	}
	return l.doRelease()
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// minFlushInterval is the shortest FlushInterval: read deadlines have the
// millisecond resolution of epoll, and a shorter interval would only make
// the reader spin.
const minFlushInterval = time.Millisecond

// flushInterval is the configured interval, its default when unset, and at
// least minFlushInterval.
func flushInterval(v, def time.Duration) time.Duration {
	return max(orDefault(v, def), minFlushInterval)
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// clockChunk is how many events at most share one reading of the clock.
const clockChunk = 64

// readClock stamps events with their read time without reading the clock
// for each: reading it costs more than reading an event from the buffer. A
// reading is shared by the events read back to back after it: it is renewed
// for the first event after the buffer was found empty (so after every
// wakeup), after each batch hand-off and at least every clockChunk events.
// Every event's timestamp thus precedes its actual read by at most the time
// it takes to read clockChunk events (microseconds), and never follows it.
type readClock struct {
	now   time.Time // with the monotonic reading, for deadlines
	ts    time.Time // now.Round(0), for events
	left  int       // events that may still share now
	empty bool      // the buffer was empty after the last event read
}

// read updates c.now and c.ts for an event read with remaining bytes left
// behind it in the buffer. The fast path is small enough to be inlined.
func (c *readClock) read(remaining int) {
	if c.left <= 0 || c.empty {
		c.tick()
	}
	c.left--
	c.empty = remaining <= 0
}

func (c *readClock) tick() {
	c.now = time.Now()
	c.ts = c.now.Round(0)
	c.left = clockChunk
}

// expire makes the next event read the clock.
func (c *readClock) expire() { c.left = 0 }
