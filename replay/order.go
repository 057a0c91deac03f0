package replay

import (
	"math"
	"time"

	"github.com/ebpfrec/ebpfrec/store"
)

// Time order
//
// A recording holds batches in the order its readers handed them over: per
// stream, and per CPU within a perf buffer batch. Events of different
// streams and CPUs therefore reach a replay out of time order, each at most
// about this late:
//
//   - a reader hands a partial batch over at its flush deadline
//     (bpf.RingbufConfig.FlushInterval, 100 ms by default), so a stream's
//     batch can follow another stream's later events by that much;
//   - a perf buffer batch reads the per-CPU buffers one after the other,
//     and a CPU below its wakeup watermark is read at the next deadline;
//   - a ring buffer's wakeups are batched the same way;
//   - an event stamped at a syscall's entry (open, syscalls) is emitted at
//     its exit: a syscall that blocks is late by its own duration.
//
// Reorder puts such items back into time order within a window: it holds
// each item until an item at least Window later has arrived (or until
// MaxItems are held, or the caller releases them), then passes them on in
// time order. An item later than what was already passed on is passed on
// at once, marked late, and counted: the output is in order except for
// those.

// Defaults of the time-order window (OrderOptions).
const (
	// DefaultOrderWindow is five times the readers' default flush
	// deadline (100 ms): a replay of a 10 s system-wide recording had
	// events up to 93 ms out of order.
	DefaultOrderWindow = 500 * time.Millisecond
	// DefaultFollowOrderWindow is the window for a follower (Follow): its
	// events also come as the recorder commits them, every
	// store.DefaultFlushInterval (1 s), so an event handed over by its
	// reader (up to 100 ms late) just after a commit arrives up to about
	// 1.1 s after later ones. Following a live system-wide recording (65 k
	// events in 6 s), 577 events came late with the 500 ms window, none
	// with this one.
	DefaultFollowOrderWindow = store.DefaultFlushInterval + DefaultOrderWindow
	// DefaultOrderMaxItems bounds the items held: with 560-byte exec
	// events about 50 MB at most, a few MB for most streams.
	DefaultOrderMaxItems = 65536
)

// OrderOptions bound a Reorder.
type OrderOptions struct {
	// Window is how long (in the items' time) an item is held for earlier
	// ones to arrive (default DefaultOrderWindow; negative: 0).
	Window time.Duration
	// MaxItems is the most items held; when one more arrives the earliest
	// is passed on, window or not, so that memory stays bounded (default
	// DefaultOrderMaxItems).
	MaxItems int
}

func (o OrderOptions) withDefaults() OrderOptions {
	if o.Window == 0 {
		o.Window = DefaultOrderWindow
	}
	if o.Window < 0 {
		o.Window = 0
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultOrderMaxItems
	}
	return o
}

// OrderStats counts what a Reorder met.
type OrderStats struct {
	// Late counts the items that arrived after a later item had been
	// passed on: they were passed on at once, out of order.
	Late uint64
	// MaxLate is how far the latest of them was behind the latest item
	// that had arrived before it: a window wider than that would have put
	// it in order.
	MaxLate time.Duration
	// Forced counts the items passed on before their window ended because
	// MaxItems were held.
	Forced uint64
}

// Reorder sorts items that arrive almost in time order into time order,
// within a bounded window (see OrderOptions); ties keep their arrival
// order. Its memory is bounded by OrderOptions.MaxItems. It is not safe for
// concurrent use.
type Reorder[T any] struct {
	opts OrderOptions
	emit func(v T, late bool) error
	// Items that arrive in order (most: each stream and CPU is in order)
	// queue in q at no cost; the others go to the heap h. The next item
	// is the earlier of their heads.
	q     ring[T]
	h     orderHeap[T]
	seq   uint64
	high  int64 // the latest time pushed
	any   bool  // an item was pushed
	last  int64 // the time of the last item passed on
	out   bool  // an item was passed on
	more  bool  // see More
	due   int64 // the time up to which Release or Flush passes items on
	stats OrderStats
}

// NewReorder returns a Reorder that passes items on to emit, with late set
// on an item that arrived too late to be put in order.
func NewReorder[T any](opts OrderOptions, emit func(v T, late bool) error) *Reorder[T] {
	return &Reorder[T]{opts: opts.withDefaults(), emit: emit, due: math.MinInt64}
}

// Options returns the bounds in use (defaults filled in).
func (o *Reorder[T]) Options() OrderOptions { return o.opts }

// Stats returns the figures so far.
func (o *Reorder[T]) Stats() OrderStats { return o.stats }

// Len returns how many items are held.
func (o *Reorder[T]) Len() int { return len(o.h.items) + o.q.n }

// Push adds an item of time t (ns, any epoch as long as it is the same for
// every item) and passes on those whose window has passed. An error of
// emit is returned at once (the items not passed on stay held).
func (o *Reorder[T]) Push(t int64, v T) error {
	if o.out && t < o.last {
		o.stats.Late++
		o.stats.MaxLate = max(o.stats.MaxLate, time.Duration(o.high-t))
		o.more = false
		return o.emit(v, true)
	}
	if !o.any || t > o.high {
		o.high, o.any = t, true
	}
	it := heapItem[T]{t: t, seq: o.seq, v: v}
	o.seq++
	if o.q.n == 0 || t >= o.q.last().t {
		o.q.push(it)
	} else {
		o.h.push(it)
	}
	due := o.high - int64(o.opts.Window)
	for o.Len() > o.opts.MaxItems {
		o.stats.Forced++
		if err := o.pop(); err != nil {
			return err
		}
	}
	return o.Release(due)
}

// Release passes on the items of time t or earlier, in order: Push calls
// it with the latest time seen less the window; a caller that knows no
// earlier item can come (time passed without new items, see
// Replayer's Follow) calls it with a later time.
func (o *Reorder[T]) Release(t int64) error {
	o.due = t
	defer func() { o.due = math.MinInt64 }()
	for o.Len() > 0 && o.next().t <= t {
		if err := o.pop(); err != nil {
			return err
		}
	}
	return nil
}

// Latest returns the latest time pushed (false if none was).
func (o *Reorder[T]) Latest() (int64, bool) { return o.high, o.any }

// Flush passes on every item held, in order (at the end of the input).
func (o *Reorder[T]) Flush() error {
	o.due = math.MaxInt64
	defer func() { o.due = math.MinInt64 }()
	for o.Len() > 0 {
		if err := o.pop(); err != nil {
			return err
		}
	}
	return nil
}

// More says, during a call of emit, whether the items are passed on in a
// run and more of it follow at once (a caller that writes them out flushes
// at the end of a run).
func (o *Reorder[T]) More() bool { return o.more }

// next returns the earliest item held (there is one).
func (o *Reorder[T]) next() *heapItem[T] {
	if o.q.n == 0 {
		return &o.h.items[0]
	}
	q := o.q.first()
	if len(o.h.items) == 0 {
		return q
	}
	if h := &o.h.items[0]; h.t < q.t || (h.t == q.t && h.seq < q.seq) {
		return h
	}
	return q
}

// pop passes on the earliest item held.
func (o *Reorder[T]) pop() error {
	var it heapItem[T]
	if n := o.next(); o.q.n > 0 && n == o.q.first() {
		it = o.q.pop()
	} else {
		it = o.h.pop()
	}
	o.last, o.out = it.t, true
	// More follow at once if the next item is due too (or MaxItems are
	// still exceeded).
	o.more = o.Len() > 0 && (o.next().t <= o.due || o.Len() > o.opts.MaxItems || o.next().t <= o.high-int64(o.opts.Window))
	return o.emit(it.v, false)
}

// ring is a FIFO queue of items.
type ring[T any] struct {
	items []heapItem[T]
	head  int
	n     int
}

func (r *ring[T]) first() *heapItem[T] { return &r.items[r.head] }
func (r *ring[T]) last() *heapItem[T] {
	return &r.items[(r.head+r.n-1)%len(r.items)]
}

func (r *ring[T]) push(it heapItem[T]) {
	if r.n == len(r.items) {
		grown := make([]heapItem[T], max(16, 2*len(r.items)))
		for i := range r.n {
			grown[i] = r.items[(r.head+i)%len(r.items)]
		}
		r.items, r.head = grown, 0
	}
	r.items[(r.head+r.n)%len(r.items)] = it
	r.n++
}

func (r *ring[T]) pop() heapItem[T] {
	it := r.items[r.head]
	var zero heapItem[T]
	r.items[r.head] = zero // drop the reference
	r.head = (r.head + 1) % len(r.items)
	r.n--
	return it
}

type heapItem[T any] struct {
	t   int64
	seq uint64 // arrival order, for ties
	v   T
}

// orderHeap is a binary min-heap by (t, seq), written out rather than
// through container/heap, whose interface boxes every item pushed.
type orderHeap[T any] struct{ items []heapItem[T] }

func (h *orderHeap[T]) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	return a.t < b.t || (a.t == b.t && a.seq < b.seq)
}

func (h *orderHeap[T]) push(it heapItem[T]) {
	h.items = append(h.items, it)
	for i := len(h.items) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *orderHeap[T]) pop() heapItem[T] {
	n := len(h.items) - 1
	it := h.items[0]
	h.items[0] = h.items[n]
	var zero heapItem[T]
	h.items[n] = zero // drop the reference
	h.items = h.items[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r := l + 1; r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return it
}
