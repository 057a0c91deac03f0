// Package replay feeds a recording back into the handlers that ran live:
// the bpf.EventHandler of a ring buffer stream and the bpf.PerfEventHandler of
// a perf buffer stream receive exactly the batches the live reader delivered
// during recording (contract 1 of ARCHITECTURE.md): same grouping, same order,
// same Raw bytes, same Timestamp, CPU and Lost; across streams the recorded
// interleaving is kept, because the recording holds one global sequence.
//
// A Replayer is opened on a recording directory, given handlers per stream
// name (or one handler for every stream of a kind), and run:
//
//	r, err := replay.Open(dir, replay.Options{})
//	r.HandleRingbuf("exec", execHandler)     // the tracer's live handler
//	r.HandlePerfbuf("", anyPerfHandler)      // every other perf stream
//	stats, err := r.Run(ctx)
//
// Built-in tracers replay through their own decoder (the Decode that runs
// live) with HandleDecoded; this is why the package also imports the tracers'
// registry (bpf/tracers), whose tracers need no privileges to decode.
//
// # Ownership
//
// As with the live readers, the events handed to a handler, their Raw bytes
// and the slice holding them belong to the replayer again once the handler
// returns: a handler that keeps them must copy them. The replayer reuses its
// buffers between batches, so a replay allocates nothing per batch in its
// steady state.
//
// # Pacing
//
// Options.Speed 0 (the default) replays as fast as the handlers go. Speed 1
// keeps the original pace: each batch is delivered when as much time has
// passed since the first batch as passed between their read timestamps during
// recording; speed 2 replays twice as fast, 0.5 half as fast. Pacing uses an
// injectable Clock, so tests check the schedule without sleeping.
//
// # Errors and damage
//
// A handler error stops the replay (OnHandlerError Stop, the default) with a
// *HandlerError naming the stream and the batch, or is counted and reported
// (Continue). A damaged part of the recording stops the replay with a
// *DamageError naming its segment and batch (OnDamage Stop, the default), or
// is skipped, counted and reported (Continue); the intact batches after it are
// replayed either way.
//
// # Following a recording being written
//
// With Options.Follow, Run replays what is committed and then polls the
// directory (every PollInterval, only when a segment file changed) for more,
// until its context ends. The store's Reader skips the segment its writer holds
// locked; store.OpenLive reads it through a copy of its last commit, checked
// consistent against bbolt's meta pages, in ScratchDir. Each pass starts at the
// segment the previous one ended in and skips what was already delivered by
// sequence number, so every batch is delivered once, in recorded order. Each
// pass copies the open segment (at most MaxSegmentBytes of the writer), so a
// pass costs up to one segment copy: new data appears at the writer's flush
// interval anyway.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/store"
)

// Policy says what the replayer does when a handler fails or a batch is
// damaged.
type Policy int

const (
	// Stop ends the replay with the error (the default).
	Stop Policy = iota
	// Continue counts the error in Stats, passes it to Options.Report and
	// goes on with the next batch.
	Continue
)

// String returns "stop" or "continue".
func (p Policy) String() string {
	switch p {
	case Stop:
		return "stop"
	case Continue:
		return "continue"
	}
	return fmt.Sprintf("policy(%d)", int(p))
}

// Clock is the time source of pacing; Options.Clock replaces the real one
// in tests.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock (the default Options.Clock).
var RealClock Clock = realClock{}

// DefaultPollInterval is the default of Options.PollInterval.
const DefaultPollInterval = 250 * time.Millisecond

// Options tune a replay. The zero value replays everything as fast as
// possible and stops at the first handler error or damaged batch.
type Options struct {
	// Speed is the pace: 0 as fast as possible, 1 the original pace,
	// 2 twice as fast, 0.5 half as fast. Negative values are refused.
	Speed float64
	// From and To, if not zero, select the batches whose events' time span
	// overlaps [From, To) and the loss points in it (store.ReaderOptions).
	From, To time.Time
	// Streams, if not empty, selects these streams only.
	Streams []string
	// OnHandlerError says what to do when a handler returns an error.
	OnHandlerError Policy
	// OnDamage says what to do with a damaged part of the recording.
	OnDamage Policy
	// Report, if set, receives each error that a Continue policy skipped:
	// a *HandlerError or a *DamageError.
	Report func(error)
	// OnLoss, if set, is called whenever a stream's cumulative loss
	// counters move (from a loss point or from the counters a batch
	// carries), in recorded order, before the batch that carries them is
	// handled. Time is the loss point's time, or the batch's read time.
	OnLoss func(store.LossPoint)
	// Clock paces the replay (default RealClock).
	Clock Clock
	// Follow keeps reading a recording that is still being written, after
	// the end of what is committed, until the context passed to Run ends
	// (which then returns nil). The segment being written is read through
	// a consistent copy of its last commit (store.OpenLive).
	Follow bool
	// PollInterval is how often Follow looks for new data (default
	// DefaultPollInterval).
	PollInterval time.Duration
	// ScratchDir is where Follow puts its copies of the segment being
	// written (default os.TempDir()).
	ScratchDir string
}

// StreamStats counts what was replayed of one stream.
type StreamStats struct {
	Batches, Events, Bytes uint64
	// Loss holds the stream's latest cumulative loss counters seen in the
	// recording (from its batches and loss points).
	Loss store.Loss
	// LossPoints counts the loss points read.
	LossPoints uint64
}

// Stats counts what a replay delivered and met.
type Stats struct {
	// Batches, Events and Bytes (raw payload) delivered to handlers.
	Batches, Events, Bytes uint64
	// HandlerErrors counts handler errors (skipped under Continue).
	HandlerErrors uint64
	// Damaged counts damaged parts of the recording skipped under Continue
	// (each may hide one or more batches).
	Damaged uint64
	// Unhandled counts batches of streams without a handler.
	Unhandled uint64
	// LastSeq is the sequence number of the last batch read.
	LastSeq uint64
	// Streams holds per-stream figures, by stream name.
	Streams map[string]*StreamStats
}

// Loss returns the latest loss counters of every stream, by stream name.
func (s *Stats) Loss() map[string]store.Loss {
	m := make(map[string]store.Loss, len(s.Streams))
	for n, st := range s.Streams {
		m[n] = st.Loss
	}
	return m
}

// HandlerError is a handler's error, with the batch it failed on.
type HandlerError struct {
	Stream string
	Seq    uint64
	Err    error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("replay: stream %s, batch %d: handler: %v", e.Stream, e.Seq, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// DamageError reports a damaged part of the recording: its segment and
// batch (see store.CorruptError, which it wraps).
type DamageError struct {
	// Segment is the segment's index; Seq the damaged batch, or the last
	// good batch before the damage when After is set (0: unknown).
	Segment int
	Seq     uint64
	After   bool
	Err     *store.CorruptError
}

func (e *DamageError) Error() string { return "replay: " + e.Err.Error() }

func (e *DamageError) Unwrap() error { return e.Err }

// Replayer replays one recording. It is not safe for concurrent use; Run
// may be called once.
type Replayer struct {
	dir  string
	opts Options
	meta store.Meta

	ring    map[string]bpf.EventHandler
	perf    map[string]bpf.PerfEventHandler
	ringAll bpf.EventHandler
	perfAll bpf.PerfEventHandler

	cur   *store.Batch // the batch being handled
	stats Stats
	last  *StreamStats // stats of the last stream seen (cache)
	lastN string

	// pacing
	paced bool
	t0    int64 // recording time of the first paced batch (ns)
	start time.Time

	skipTo uint64 // records up to this sequence number were handled
	maxSeq uint64 // the last sequence number read (batches and loss points)
	seen   map[string]bool
}

// Open opens the recording in dir for replay. It reads the recording's
// metadata; nothing is delivered before Run.
func Open(dir string, opts Options) (*Replayer, error) {
	if opts.Speed < 0 || math.IsNaN(opts.Speed) || math.IsInf(opts.Speed, 0) {
		return nil, fmt.Errorf("replay: bad speed %v (0: as fast as possible, 1: original pace)", opts.Speed)
	}
	if opts.Clock == nil {
		opts.Clock = RealClock
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	r := &Replayer{dir: dir, opts: opts,
		ring: map[string]bpf.EventHandler{}, perf: map[string]bpf.PerfEventHandler{},
		stats: Stats{Streams: map[string]*StreamStats{}}}
	meta, err := readMeta(dir, opts)
	if err != nil {
		return nil, err
	}
	r.meta = meta
	return r, nil
}

// readMeta opens the recording briefly for its metadata.
func readMeta(dir string, opts Options) (store.Meta, error) {
	if opts.Follow {
		lr, err := store.OpenLive(dir, store.ReaderOptions{}, 0, opts.ScratchDir)
		if errors.Is(err, store.ErrNothingCommitted) {
			return store.Meta{}, nil // the first pass of Run reads it
		}
		if err != nil {
			return store.Meta{}, fmt.Errorf("replay: %w", err)
		}
		defer lr.Close()
		return lr.Meta(), nil
	}
	meta, err := store.ReadMeta(dir)
	if err != nil {
		return store.Meta{}, fmt.Errorf("replay: %w", err)
	}
	return meta, nil
}

// Meta returns the recording's metadata (its streams, MonoToWall, ...).
// With Follow, it is empty until the writer's first commit has been read,
// and it is updated as the writer declares streams.
func (r *Replayer) Meta() store.Meta { return r.meta }

// HandleRingbuf sets the handler of the ring buffer stream called stream,
// or, with stream "", of every ring buffer stream without its own handler.
func (r *Replayer) HandleRingbuf(stream string, h bpf.EventHandler) {
	if stream == "" {
		r.ringAll = h
		return
	}
	r.ring[stream] = h
}

// HandlePerfbuf sets the handler of the perf buffer stream called stream,
// or, with stream "", of every perf buffer stream without its own handler.
func (r *Replayer) HandlePerfbuf(stream string, h bpf.PerfEventHandler) {
	if stream == "" {
		r.perfAll = h
		return
	}
	r.perf[stream] = h
}

// Current returns the batch being handled, for handlers that want its
// sequence number or stream (valid during the handler call only). The
// events of a ring buffer batch are in its Ringbuf (the slice the handler
// got), not in Events.
func (r *Replayer) Current() *store.Batch { return r.cur }

// Stats returns the figures so far.
func (r *Replayer) Stats() Stats { return r.stats }

// Run replays the recording into the handlers until its end (or, with
// Follow, until ctx ends) and returns the figures. It returns ctx's error
// if ctx ends first (nil with Follow), a *HandlerError or *DamageError
// under the Stop policies, or an error reading the recording.
func (r *Replayer) Run(ctx context.Context) (Stats, error) {
	// Ring buffer batches are decoded into the handlers' own type.
	ropts := store.ReaderOptions{From: r.opts.From, To: r.opts.To, Streams: r.selected(), OnLoss: r.onLossPoint, RingbufEvents: true}
	if r.opts.Follow {
		err := r.follow(ctx, ropts)
		return r.stats, err
	}
	sr, err := store.Open(r.dir, ropts)
	if err != nil {
		return r.stats, fmt.Errorf("replay: %w", err)
	}
	defer sr.Close()
	_, err = r.drain(ctx, sr, 0)
	return r.stats, err
}

// selected returns the streams the store reader should deliver: those
// selected by Options.Streams that have a handler.
func (r *Replayer) selected() []string {
	want := r.opts.Streams
	if r.ringAll != nil && r.perfAll != nil {
		return want
	}
	if len(want) == 0 {
		for _, s := range r.meta.Streams {
			want = append(want, s.Name)
		}
		if len(want) == 0 {
			return nil
		}
	}
	var out []string
	for _, name := range want {
		if r.hasHandler(name) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		// Nothing has a handler: select a name no stream has, so that
		// only the figures of an empty replay come out.
		return []string{"\x00none"}
	}
	return out
}

func (r *Replayer) hasHandler(name string) bool {
	if _, ok := r.ring[name]; ok {
		return true
	}
	if _, ok := r.perf[name]; ok {
		return true
	}
	info, ok := r.meta.Stream(name)
	if !ok {
		// A stream added after the metadata was read: the handlers for
		// all streams decide.
		return r.ringAll != nil || r.perfAll != nil
	}
	switch info.Kind {
	case store.KindRingbuf:
		return r.ringAll != nil
	case store.KindPerfbuf:
		return r.perfAll != nil
	}
	return false
}

// drain replays what sr delivers, skipping batches and loss points up to
// seq after. It returns the last sequence number read.
func (r *Replayer) drain(ctx context.Context, sr *store.Reader, after uint64) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return r.stats.LastSeq, err
		}
		r.skipTo = after
		b, err := sr.Next()
		if err == io.EOF {
			return r.stats.LastSeq, nil
		}
		if err != nil {
			var ce *store.CorruptError
			if !errors.As(err, &ce) {
				return r.stats.LastSeq, fmt.Errorf("replay: %w", err)
			}
			de := &DamageError{Segment: ce.Segment, Seq: ce.Seq, After: ce.After, Err: ce}
			if r.opts.OnDamage == Stop {
				return r.stats.LastSeq, de
			}
			if r.seen != nil { // following: each damage once
				k := ce.Error()
				if r.seen[k] {
					continue
				}
				r.seen[k] = true
			}
			r.stats.Damaged++
			if r.opts.Report != nil {
				r.opts.Report(de)
			}
			continue
		}
		if b.Seq <= after {
			continue
		}
		r.maxSeq = max(r.maxSeq, b.Seq)
		r.stats.LastSeq = b.Seq
		if err := r.batch(ctx, b); err != nil {
			return r.stats.LastSeq, err
		}
	}
}

// streamStats returns the figures of a stream.
func (r *Replayer) streamStats(name string) *StreamStats {
	if r.last != nil && r.lastN == name {
		return r.last
	}
	st := r.stats.Streams[name]
	if st == nil {
		st = &StreamStats{}
		r.stats.Streams[name] = st
	}
	r.last, r.lastN = st, name
	return st
}

// onLossPoint receives the store reader's loss points.
func (r *Replayer) onLossPoint(p store.LossPoint) {
	if p.Seq <= r.skipTo {
		return
	}
	r.maxSeq = max(r.maxSeq, p.Seq)
	st := r.streamStats(p.Stream)
	st.LossPoints++
	r.lossMoved(st, p)
}

func (r *Replayer) lossMoved(st *StreamStats, p store.LossPoint) {
	if p.Loss == st.Loss {
		return
	}
	st.Loss = p.Loss
	if r.opts.OnLoss != nil {
		r.opts.OnLoss(p)
	}
}

// batch delivers one batch.
func (r *Replayer) batch(ctx context.Context, b *store.Batch) error {
	st := r.streamStats(b.Stream)
	if b.Loss != st.Loss || r.opts.Speed > 0 {
		// The batch's latest event time, if it has one (events with
		// non-zero times): the time of a loss point it carries, and the
		// time pacing goes by (else the batch goes at once).
		_, last, ok := b.TimeSpan()
		ok = ok && last != math.MinInt64
		if b.Loss != st.Loss {
			var t time.Time
			if ok {
				t = time.Unix(0, last)
			}
			r.lossMoved(st, store.LossPoint{Seq: b.Seq, Stream: b.Stream, Time: t, Loss: b.Loss})
		}
		if ok && r.opts.Speed > 0 {
			if err := r.pace(ctx, last); err != nil {
				return err
			}
		}
	}
	r.cur = b
	defer func() { r.cur = nil }()
	var err error
	var n uint64 // raw bytes
	switch b.Kind {
	case store.KindRingbuf:
		h := r.ring[b.Stream]
		if h == nil {
			h = r.ringAll
		}
		if h == nil {
			r.stats.Unhandled++
			return nil
		}
		// The store decoded the events into the handler's type.
		for i := range b.Ringbuf {
			n += uint64(len(b.Ringbuf[i].Raw))
		}
		err = h(ctx, b.Ringbuf)
	case store.KindPerfbuf:
		h := r.perf[b.Stream]
		if h == nil {
			h = r.perfAll
		}
		if h == nil {
			r.stats.Unhandled++
			return nil
		}
		// store.Event is the handler's type.
		for i := range b.Events {
			n += uint64(len(b.Events[i].Raw))
		}
		err = h(ctx, b.Events)
	default:
		r.stats.Unhandled++
		return nil
	}
	r.stats.Batches++
	r.stats.Events += uint64(b.Len())
	r.stats.Bytes += n
	st.Batches++
	st.Events += uint64(b.Len())
	st.Bytes += n
	if err != nil {
		he := &HandlerError{Stream: b.Stream, Seq: b.Seq, Err: err}
		r.stats.HandlerErrors++
		if r.opts.OnHandlerError == Stop {
			return he
		}
		if r.opts.Report != nil {
			r.opts.Report(he)
		}
	}
	return nil
}

// pace waits until a batch is due whose latest read timestamp is t (Unix
// ns).
func (r *Replayer) pace(ctx context.Context, t int64) error {
	if !r.paced {
		r.paced = true
		r.t0 = t
		r.start = r.opts.Clock.Now()
		return nil
	}
	due := r.start.Add(time.Duration(float64(t-r.t0) / r.opts.Speed))
	wait := due.Sub(r.opts.Clock.Now())
	if wait <= 0 {
		return nil
	}
	select {
	case <-r.opts.Clock.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
