package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// RingbufStats holds ring buffer statistics.
//
// EventsReceived counts every event read from the ring (those dropped in user
// space included), EventsDropped those of them whose handler returned an
// error or that could not be queued (RingbufConfig.DropWhenBusy), EventsLost
// the value of the reader's drop counter (RingbufConfig.DropCounter; 0
// without one) and BytesReceived the payload bytes of the received events.
// For a stream: emitted = EventsReceived + EventsLost, and the handler
// accepted EventsReceived - EventsDropped of them.
type RingbufStats struct {
	EventsReceived int64
	EventsDropped  int64
	EventsLost     int64
	BytesReceived  int64
}

// RingbufReader reads events from a BPF ring buffer and hands them, in
// batches, to an EventHandler.
//
// Reading: one goroutine reads the ring with cilium/ebpf's ReadInto,
// copying each record straight into the arena of the batch being filled
// (no allocation, one copy per event). A batch is handed to the handler when
// it holds BatchSize events, or when FlushInterval has passed since the
// previous hand-off: the reader sets a read deadline at that time, so it
// wakes even when no wakeup comes from the kernel, and at a deadline it also
// reads records submitted with BPF_RB_NO_WAKEUP. A record therefore reaches
// the handler at most about FlushInterval after it was committed (plus the
// time spent in earlier handler calls).
//
// Handlers: with Workers == 1 the handler runs on the read goroutine (which
// measured faster than handing batches to one worker goroutine), so batches
// reach it one at a time, in read order, which is the order in which the
// BPF programs reserved the records. With Workers > 1, full batches go through a
// queue to Workers goroutines: the events of a batch keep their read order,
// but batches are handled concurrently and may finish in any order; there is
// no order across batches. While every worker is busy and the queue is full
// the reader waits (the ring then fills and the BPF program's drop counter
// counts the excess), unless DropWhenBusy is set.
//
// The events slice and the bytes of Raw belong to the reader again once the
// handler returns (see EventHandler): copy what you keep.
type RingbufReader struct {
	rd      *ringbuf.Reader
	mapName string
	handler EventHandler
	cfg     RingbufConfig
	log     *slog.Logger
	stats   readerStats
	life    *lifecycle

	dropVals   []uint64 // per-CPU drop counter values, reused
	dropPerCPU bool
}

// NewRingbufReader creates a reader of ringbufMap (a BPF_MAP_TYPE_RINGBUF).
// mapName names the stream in logs and metrics. Zero or negative Workers,
// BatchSize, FlushInterval and BufferSize take their defaults
// (DefaultRingbufConfig); a FlushInterval below 1 ms is raised to 1 ms.
// cfg.DropCounter, if set, must be a (per-CPU) array
// with 8-byte values; its key 0 is summed into EventsLost. log and st may be
// nil.
//
// The reader holds kernel resources from here on: call Start, which releases
// them when it returns, or Close.
func NewRingbufReader(ringbufMap *ebpf.Map, mapName string, handler EventHandler, cfg RingbufConfig, log *slog.Logger, st *Metrics) (*RingbufReader, error) {
	if ringbufMap == nil {
		return nil, fmt.Errorf("%w: ring buffer %q: nil map", ErrReaderConfig, mapName)
	}
	if ringbufMap.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("%w: ring buffer %q: map type is %s, not RingBuf", ErrReaderConfig, mapName, ringbufMap.Type())
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: ring buffer %q: nil handler", ErrReaderConfig, mapName)
	}
	def := DefaultRingbufConfig()
	cfg.BufferSize = orDefault(cfg.BufferSize, def.BufferSize)
	cfg.Workers = orDefault(cfg.Workers, def.Workers)
	cfg.BatchSize = orDefault(cfg.BatchSize, def.BatchSize)
	cfg.FlushInterval = flushInterval(cfg.FlushInterval, def.FlushInterval)

	r := &RingbufReader{mapName: mapName, handler: handler, cfg: cfg, log: discardLogger(log)}
	r.stats.m = st.forReader(mapName, "ringbuf")
	if dc := cfg.DropCounter; dc != nil {
		switch {
		case dc.ValueSize() != 8:
			return nil, fmt.Errorf("%w: ring buffer %q: drop counter value size is %d, want 8", ErrReaderConfig, mapName, dc.ValueSize())
		case dc.Type() == ebpf.PerCPUArray:
			n, err := ebpf.PossibleCPU()
			if err != nil {
				return nil, fmt.Errorf("%w: ring buffer %q: %w", ErrReaderConfig, mapName, err)
			}
			r.dropVals = make([]uint64, n)
			r.dropPerCPU = true
		case dc.Type() == ebpf.Array:
			r.dropVals = make([]uint64, 1)
		default:
			return nil, fmt.Errorf("%w: ring buffer %q: drop counter map type is %s, want PerCPUArray or Array", ErrReaderConfig, mapName, dc.Type())
		}
	}
	rd, err := ringbuf.NewReader(ringbufMap)
	if err != nil {
		return nil, fmt.Errorf("%w: ring buffer %q: %w", ErrReaderConfig, mapName, err)
	}
	r.rd = rd
	r.life = newLifecycle(rd.Close, rd.Flush)
	return r, nil
}

// Stats returns the reader's counters. While Start runs they lag by the
// batch being filled (counters move when a batch is handed off) and
// EventsLost is the drop counter's last sample; once Start has returned they
// are final: every event read has been counted as received, its handler call
// has returned, and EventsLost holds the drop counter as read after the last
// record.
func (r *RingbufReader) Stats() RingbufStats {
	return RingbufStats{
		EventsReceived: r.stats.received.Load(),
		EventsDropped:  r.stats.dropped.Load(),
		EventsLost:     r.stats.lost.Load(),
		BytesReceived:  r.stats.bytes.Load(),
	}
}

// Close stops the reader and releases its kernel resources. If Start is
// running, Close stops it as a cancellation of its context would (the ring is
// drained and every batch handled) and waits for it to return. Close is
// idempotent and safe to call from several goroutines; Start after Close
// returns ErrReaderClosed. Since it waits for the handler calls to return,
// a handler must not call Close (it may cancel Start's context instead).
//
// Closing the *ebpf.Map does not stop a reader: it holds its own
// references to the ring.
func (r *RingbufReader) Close() error {
	return r.life.close()
}

// Start reads the ring buffer until ctx is done or Close is called, then
// returns nil. It returns once, and only once:
//
//   - every record committed to the ring before the cancellation (or Close)
//     has been read: the reader is woken (Flush) and reads the ring until it
//     is empty, records submitted with BPF_RB_NO_WAKEUP included;
//   - every record read has been handed to the handler (or counted in
//     EventsDropped) and every handler call has returned;
//   - the drop counter has been read a last time, so Stats is final;
//   - the kernel reader is released (the map itself stays open; records
//     committed later stay in the ring unread).
//
// Handlers receive a context that carries ctx's values but is not cancelled
// with it, since the final batches are handled after ctx is done; a handler
// must not block forever.
//
// A second call returns ErrReaderAlreadyStarted, a call after Close
// ErrReaderClosed. An error reading the ring ends Start with an error wrapping
// ErrReaderRead, after the batches already read have been handled.
func (r *RingbufReader) Start(ctx context.Context) error {
	if err := r.life.begin(); err != nil {
		return fmt.Errorf("ring buffer %q: %w", r.mapName, err)
	}
	defer r.life.end()
	stop := context.AfterFunc(ctx, func() { _ = r.rd.Flush() })
	defer stop()

	d, b := newDispatcher(context.WithoutCancel(ctx), r.handler, r.cfg.Workers, r.cfg.BatchSize,
		r.cfg.BufferSize, r.cfg.DropWhenBusy, &r.stats, r.log, "ringbuf", r.mapName)
	err := r.read(ctx, d, b)
	d.close()
	r.pollDrops()
	return err
}

func (r *RingbufReader) read(ctx context.Context, d *dispatcher[RingbufEvent], b *batch[RingbufEvent]) error {
	var (
		rec       ringbuf.Record
		fi        = r.cfg.FlushInterval
		batchSize = r.cfg.BatchSize
		maxRec    int
		now       = time.Now()
		deadline  = now.Add(fi)
		nextPoll  = deadline
		clk       readClock
	)
	r.rd.SetDeadline(deadline)
	handOff := func(now time.Time) {
		b = d.dispatch(b)
		clk.expire()
		deadline = now.Add(fi)
		r.rd.SetDeadline(deadline)
		if r.cfg.DropCounter != nil && !now.Before(nextPoll) {
			r.pollDrops()
			nextPoll = deadline
		}
	}
	for {
		off := len(b.arena)
		if cap(b.arena)-off < maxRec {
			b.arena = slices.Grow(b.arena, max(cap(b.arena), maxRec))
		}
		rec.RawSample = b.arena[off:off]
		err := r.rd.ReadInto(&rec)
		if err == nil {
			n := len(rec.RawSample)
			if inArena(rec.RawSample, b.arena, off) {
				b.arena = b.arena[:off+n] // ReadInto copied into the arena
			} else {
				b.arena = append(b.arena, rec.RawSample...)
			}
			maxRec = max(maxRec, n)
			clk.read(rec.Remaining)
			b.events = append(b.events, RingbufEvent{Raw: b.arena[off : off+n : off+n], Timestamp: clk.ts})
			if len(b.events) >= batchSize || clk.now.After(deadline) {
				handOff(clk.now)
			}
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			handOff(time.Now())
		case errors.Is(err, ringbuf.ErrFlushed):
			if ctx.Err() != nil || r.life.stopping() {
				d.dispatch(b)
				return nil
			}
			handOff(time.Now())
		case errors.Is(err, ringbuf.ErrClosed):
			d.dispatch(b)
			return nil
		default:
			d.dispatch(b)
			return fmt.Errorf("%w: ring buffer %q: %w", ErrReaderRead, r.mapName, err)
		}
	}
}

// pollDrops samples the drop counter into EventsLost.
func (r *RingbufReader) pollDrops() {
	dc := r.cfg.DropCounter
	if dc == nil {
		return
	}
	var err error
	if r.dropPerCPU {
		err = dc.Lookup(uint32(0), r.dropVals)
	} else {
		err = dc.Lookup(uint32(0), &r.dropVals[0])
	}
	if err != nil {
		r.log.Debug("reading the drop counter failed", "map", r.mapName, "error", err)
		return
	}
	var sum uint64
	for _, v := range r.dropVals {
		sum += v
	}
	r.stats.setLost(int64(sum))
}
