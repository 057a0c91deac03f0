// Package replay feeds a recording back into the handlers that ran live:
// the bpf.EventHandler of a ring buffer stream and the bpf.PerfEventHandler of
// a perf buffer stream receive exactly the batches the live reader delivered
// during recording (contract 1 of docs/architecture.md): same grouping, same order,
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
// # Time order
//
// The recorded order is the order the live readers handed batches over:
// per stream, each up to its flush deadline late, and per CPU within a perf
// buffer batch. Reorder puts items back into time order within a bounded
// window (time and count), and HandleDecodedInOrder uses it to deliver
// decoded events and loss points in time order, which ebpfrec replay
// prints by default; analyze's export writes each table through it. Batch
// handlers always get the recorded order.
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
	"maps"
	"math"
	"slices"
	"strings"
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
	// The decoded handlers (HandleDecoded, HandleDecodedInOrder) get the
	// events whose own time (Decoded.Time) is in [From, To) instead: a
	// batch's span is when it was read, after its events, so the batches
	// read up to RangeSlack after To are read for them too.
	// FromStart and ToStart, if not zero, give them instead as offsets from
	// the recording's start (Meta.Started), resolved when the recording is
	// read (with Follow, possibly before the recorder started); a time
	// given as well wins.
	From, To           time.Time
	FromStart, ToStart time.Duration
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
	// (which then returns nil). The recording need not exist yet: Run
	// waits for its recorder's first segment. The segment being written is read through
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
	// Batches, Events and Bytes (of raw events) count what was delivered.
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
	// Missed counts the records (batches and loss points) a follower could
	// not read because the recorder's retention deleted them first; each
	// range is reported as a *MissedError.
	Missed uint64
	// Unhandled counts batches of streams without a handler.
	Unhandled uint64
	// LastSeq is the sequence number of the last batch read.
	LastSeq uint64
	// Streams holds per-stream figures, by stream name.
	Streams map[string]*StreamStats
	// Order counts what the merge into time order met
	// (HandleDecodedInOrder; zero without it).
	Order OrderStats
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
	// Stream and Seq name the batch the handler failed on; Err is the
	// handler's error.
	Stream string
	Seq    uint64
	Err    error
}

// Error names the stream and batch whose handler failed, and why.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("replay: stream %s, batch %d: handler: %v", e.Stream, e.Seq, e.Err)
}

// Unwrap returns the handler's error.
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

// Error is the store's description of the damage (segment, batch, what).
func (e *DamageError) Error() string { return "replay: " + e.Err.Error() }

// Unwrap returns the store's *store.CorruptError.
func (e *DamageError) Unwrap() error { return e.Err }

// MissedError reports records that a follower (Options.Follow) could not
// read because the recorder's retention deleted them before it got there.
// It goes to Options.Report and never stops the replay.
type MissedError struct {
	// First and Last bound the records missed (sequence numbers).
	First, Last uint64
	// Deleted is the recording's deletion record that covers them (zero
	// when the follower found the segment gone as it reached it).
	Deleted store.Deleted
}

// Error says which records retention deleted before the follower read them.
func (e *MissedError) Error() string {
	upTo := ""
	if !e.Deleted.To.IsZero() {
		upTo = " (events up to " + e.Deleted.To.UTC().Format(time.RFC3339Nano) + ")"
	}
	return fmt.Sprintf("replay: records %d-%d deleted by the recorder's retention before they were read%s; keep more segments, or follow with less delay",
		e.First, e.Last, upTo)
}

// ErrRunTwice is returned by a second call of Replayer.Run: a Replayer
// replays its recording once (open another for another pass).
var ErrRunTwice = errors.New("replay: Run called twice")

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

	// decodedAll: the handlers of every stream are HandleDecoded's.
	decodedAll bool
	// from and to are the window resolved (window); widened says that the
	// store reads up to RangeSlack past to, for the decoded handlers.
	from, to time.Time
	widened  bool

	cur   *store.Batch  // the batch being handled
	order *decodedOrder // HandleDecodedInOrder's merge, if used
	stats Stats
	last  *StreamStats // stats of the last stream seen (cache)
	lastN string

	// The events, and their raw bytes, of cur that HandleDecoded's
	// handlers passed on (in the time range): what they count as
	// delivered.
	curEvents, curBytes uint64

	// pacing
	paced bool
	t0    int64 // recording time of the first paced batch (ns)
	start time.Time

	skipTo uint64 // records up to this sequence number were handled
	maxSeq uint64 // the last sequence number read (batches and loss points)
	seen   map[string]bool
	// retried holds the gaps (by first record) a follower looked at again
	// before reporting them.
	retried map[uint64]bool
	ran     bool // Run was called
	// misuse is the first misuse of the Handle methods (a nil handler),
	// which Run returns: they return nothing.
	misuse error
	// openDeleted is the last record retention had deleted when a
	// follower opened the recording (0: none).
	openDeleted uint64
}

// Open opens the recording in dir for replay. It reads the recording's
// metadata; nothing is delivered before Run.
func Open(dir string, opts Options) (*Replayer, error) {
	if opts.Speed < 0 || math.IsNaN(opts.Speed) || math.IsInf(opts.Speed, 0) {
		return nil, fmt.Errorf("replay: bad speed %v (0: as fast as possible, 1: original pace)", opts.Speed)
	}
	// Anything but Stop would read as Continue.
	for _, p := range []struct {
		name string
		v    Policy
	}{{"OnHandlerError", opts.OnHandlerError}, {"OnDamage", opts.OnDamage}} {
		if p.v != Stop && p.v != Continue {
			return nil, fmt.Errorf("replay: %s: %w: %d (Stop or Continue)", p.name, ErrBadPolicy, int(p.v))
		}
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
	meta, deleted, err := readMeta(dir, opts)
	if err != nil {
		return nil, err
	}
	r.meta, r.openDeleted = meta, deleted
	if !opts.Follow {
		for _, name := range opts.Streams {
			if _, ok := meta.Stream(name); !ok {
				var names []string
				for _, si := range meta.Streams {
					names = append(names, si.Name)
				}
				return nil, fmt.Errorf("replay: %w %q (the recording has: %s)", ErrUnknownStream, name, strings.Join(names, ", "))
			}
		}
		if _, _, err := r.window(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ErrUnknownStream is wrapped by Open's error for Options.Streams naming
// a stream the recording does not have, and by Run's for a handler set
// for such a stream or for a stream of the other kind.
var ErrUnknownStream = errors.New("no stream")

// ErrEmptyRange is wrapped by the error of a time range (From, To) that
// holds no time.
var ErrEmptyRange = errors.New("empty time range")

// window returns the time range to replay, the offsets from the
// recording's start resolved.
func (r *Replayer) window() (from, to time.Time, err error) {
	from, to = r.opts.From, r.opts.To
	if (r.opts.FromStart != 0 && from.IsZero()) || (r.opts.ToStart != 0 && to.IsZero()) {
		start := r.meta.Started
		if start.IsZero() {
			return from, to, errors.New("replay: the recording has no start time (made by an early ebpfrec): give From and To as times")
		}
		if r.opts.FromStart != 0 && from.IsZero() {
			from = start.Add(r.opts.FromStart)
		}
		if r.opts.ToStart != 0 && to.IsZero() {
			to = start.Add(r.opts.ToStart)
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, fmt.Errorf("replay: %w: [%s, %s)", ErrEmptyRange, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return from, to, nil
}

// RangeSlack is how long after Options.To the batches are read for the
// decoded handlers: an event is read and stamped after it happened, by up
// to the recorder's --read-flush (100 ms by default), and later for an
// event stamped at its start and emitted at its end (a blocked open). An
// event read later than this after To is not replayed.
const RangeSlack = 5 * time.Second

// storeWindow resolves the window (window) for the replay, and returns
// the one the store reads: To moved RangeSlack later when the decoded
// handlers take every stream's events by their own time.
func (r *Replayer) storeWindow() (from, to time.Time, err error) {
	if r.from, r.to, err = r.window(); err != nil {
		return r.from, r.to, err
	}
	from, to = r.from, r.to
	if r.decodedAll && !to.IsZero() {
		to, r.widened = to.Add(RangeSlack), true
	}
	return from, to, nil
}

// inWindow says whether an event's own time is in [From, To).
func (r *Replayer) inWindow(t time.Time) bool {
	return (r.from.IsZero() || !t.Before(r.from)) && (r.to.IsZero() || t.Before(r.to))
}

// pastTo says whether batch b was read only for the decoded handlers:
// the store read it past To (RangeSlack), and its span starts at or
// after To.
func (r *Replayer) pastTo(b *store.Batch) bool {
	if !r.widened {
		return false
	}
	first, _, ok := b.TimeSpan()
	return ok && first >= r.to.UnixNano()
}

// readMeta opens the recording briefly for its metadata, and for a
// follower the last record retention had deleted by then.
func readMeta(dir string, opts Options) (store.Meta, uint64, error) {
	if opts.Follow {
		if !store.HasSegments(dir) {
			return store.Meta{}, 0, nil // a recorder yet to start: Run waits
		}
		lr, err := store.OpenLive(dir, store.ReaderOptions{}, 0, opts.ScratchDir)
		if errors.Is(err, store.ErrNothingCommitted) {
			return store.Meta{}, 0, nil // the first pass of Run reads it
		}
		if err != nil {
			return store.Meta{}, 0, fmt.Errorf("replay: %w", err)
		}
		defer lr.Close()
		// What retention deleted before the follower opened the recording
		// is history it never had; what it deletes from now on, missed.
		var deleted uint64
		if d := lr.Deleted(); d != nil {
			deleted = d.LastSeq
		}
		return lr.Meta(), deleted, nil
	}
	meta, err := store.ReadMeta(dir)
	if err != nil {
		return store.Meta{}, 0, fmt.Errorf("replay: %w", err)
	}
	return meta, 0, nil
}

// Meta returns the recording's metadata (its streams, MonoToWall, ...).
// With Follow, it is empty until the writer's first commit has been read,
// and it is updated as the writer declares streams.
func (r *Replayer) Meta() store.Meta { return r.meta }

// HandleRingbuf sets the handler of the ring buffer stream called stream,
// or, with stream "", of every ring buffer stream without its own handler.
func (r *Replayer) HandleRingbuf(stream string, h bpf.EventHandler) {
	if h == nil {
		r.nilHandler("HandleRingbuf", stream)
		return
	}
	if stream == "" {
		r.ringAll = h
		return
	}
	r.ring[stream] = h
}

// HandlePerfbuf sets the handler of the perf buffer stream called stream,
// or, with stream "", of every perf buffer stream without its own handler.
func (r *Replayer) HandlePerfbuf(stream string, h bpf.PerfEventHandler) {
	if h == nil {
		r.nilHandler("HandlePerfbuf", stream)
		return
	}
	if stream == "" {
		r.perfAll = h
		return
	}
	r.perf[stream] = h
}

// nilHandler notes a nil handler given to method, for Run to refuse.
func (r *Replayer) nilHandler(method, stream string) {
	if r.misuse != nil {
		return
	}
	if stream != "" {
		method += fmt.Sprintf("(%q)", stream)
	}
	r.misuse = fmt.Errorf("replay: %s: %w", method, ErrNilHandler)
}

// ErrBadPolicy is wrapped by Open's error for an OnHandlerError or
// OnDamage that is neither Stop nor Continue.
var ErrBadPolicy = errors.New("unknown policy")

// ErrNilHandler is wrapped by Run's error when a Handle method was given
// a nil handler.
var ErrNilHandler = errors.New("nil handler")

// Current returns the batch being handled, for handlers that want its
// sequence number or stream (valid during the handler call only). The
// events of a ring buffer batch are in its Ringbuf (the slice the handler
// got), not in Events.
func (r *Replayer) Current() *store.Batch { return r.cur }

// Stats returns the figures so far.
func (r *Replayer) Stats() Stats {
	if r.order != nil {
		r.stats.Order = r.order.ro.Stats()
	}
	return r.stats
}

// Run replays the recording into the handlers until its end (or, with
// Follow, until ctx ends) and returns the figures. It returns ctx's error
// if ctx ends first (nil with Follow), a *HandlerError or *DamageError
// under the Stop policies, or an error reading the recording. It refuses
// to start, with an error, if a Handle method was given a nil handler
// (ErrNilHandler) or a handler for a stream the recording does not have
// (ErrUnknownStream; not with Follow, whose streams may come later).
func (r *Replayer) Run(ctx context.Context) (Stats, error) {
	if r.ran {
		return r.stats, ErrRunTwice
	}
	r.ran = true
	if r.misuse != nil {
		return r.stats, r.misuse
	}
	// Ring buffer batches are decoded into the handlers' own type.
	ropts := store.ReaderOptions{Streams: r.selected(), OnLoss: r.onLossPoint, RingbufEvents: true}
	if r.opts.Follow {
		err := r.follow(ctx, ropts)
		if err == nil {
			err = r.flushOrder()
		}
		return r.Stats(), err
	}
	if err := r.checkHandlers(); err != nil {
		return r.stats, err
	}
	var err error
	if ropts.From, ropts.To, err = r.storeWindow(); err != nil {
		return r.stats, err
	}
	sr, err := store.Open(r.dir, ropts)
	if err != nil {
		return r.stats, fmt.Errorf("replay: %w", err)
	}
	defer sr.Close()
	_, err = r.drain(ctx, sr, 0)
	var de *DamageError
	if err == nil || errors.As(err, &de) {
		// The end of what is readable: the events held in the time-order
		// window are due.
		if ferr := r.flushOrder(); err == nil {
			err = ferr
		}
	}
	return r.Stats(), err
}

// flushOrder delivers the events held by HandleDecodedInOrder's window.
func (r *Replayer) flushOrder() error {
	if r.order == nil {
		return nil
	}
	return r.releaseOrder(r.order.ro.Flush)
}

// releaseOrder runs release (passing on events held in the time-order
// window outside a batch's handler) under the OnHandlerError policy: an
// error of the handler stops it (Stop), or is counted and reported and
// the rest is passed on (Continue).
func (r *Replayer) releaseOrder(release func() error) error {
	for {
		err := r.order.handlerError(release())
		if err == nil {
			return nil
		}
		r.stats.HandlerErrors++
		if r.opts.OnHandlerError == Stop {
			return err
		}
		if r.opts.Report != nil {
			r.opts.Report(err)
		}
	}
}

// checkHandlers refuses a handler set for a stream the recording does
// not have, or of the other kind than the stream: it would never run,
// and the replay would end with nothing delivered and no error. (A
// follower cannot tell: streams may be declared later.)
func (r *Replayer) checkHandlers() error {
	check := func(name string, kind store.Kind, what string) error {
		si, ok := r.meta.Stream(name)
		if !ok {
			var names []string
			for _, s := range r.meta.Streams {
				names = append(names, s.Name)
			}
			return fmt.Errorf("replay: %s handler: %w %q (the recording has: %s)", what, ErrUnknownStream, name, strings.Join(names, ", "))
		}
		if si.Kind != kind {
			return fmt.Errorf("replay: %s handler: %w %q of that kind: it is a %s stream", what, ErrUnknownStream, name, kindName(si.Kind))
		}
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(r.ring)) {
		if err := check(name, store.KindRingbuf, "ring buffer"); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.perf)) {
		if err := check(name, store.KindPerfbuf, "perf buffer"); err != nil {
			return err
		}
	}
	return nil
}

func kindName(k store.Kind) string {
	switch k {
	case store.KindRingbuf:
		return "ring buffer"
	case store.KindPerfbuf:
		return "perf buffer"
	}
	return k.String()
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
			if r.seen != nil && errors.Is(err, store.ErrSegmentDeleted) {
				// Retention deleted it after this pass opened the
				// recording. A closed segment's summary gave its range:
				// those records are missed, and the reader goes on past
				// them. Else the next pass reads the deletion record.
				if ce.Last == 0 {
					return r.stats.LastSeq, errPassCut
				}
				r.reportMissed(&MissedError{First: ce.Seq, Last: ce.Last})
				continue
			}
			if r.seen != nil && r.missed(ce, sr.Deleted()) {
				continue
			}
			if r.seen != nil && ce.Last != 0 && !r.retried[ce.Seq] {
				// A gap the deletion record this pass read does not
				// cover: retention may have run while the pass opened the
				// recording (a segment gone, the newest copied before it
				// recorded that), so the next pass looks again, with a
				// newer record, before the gap is called damage.
				r.retried[ce.Seq] = true
				return r.stats.LastSeq, errPassCut
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

// reportMissed counts and reports records a follower missed.
func (r *Replayer) reportMissed(me *MissedError) {
	r.maxSeq = max(r.maxSeq, me.Last) // accounted for
	r.stats.Missed += me.Last - me.First + 1
	if r.opts.Report != nil {
		r.opts.Report(me)
	}
}

// errPassCut ends a follower's pass early: a segment was deleted under it.
var errPassCut = errors.New("replay: a segment was deleted during the pass")

// missed reports, as a *MissedError, the part of a gap that the recording's
// deletion record d covers: records retention deleted before a follower
// read them. It says whether nothing of the gap is left to report as
// damage (ce is trimmed to the rest otherwise).
func (r *Replayer) missed(ce *store.CorruptError, d *store.Deleted) bool {
	if ce.Last == 0 || ce.After || d == nil || ce.Seq > d.LastSeq {
		return false
	}
	last := min(ce.Last, d.LastSeq)
	r.reportMissed(&MissedError{First: ce.Seq, Last: last, Deleted: *d})
	if last == ce.Last {
		return true
	}
	ce.Seq = last + 1
	return false
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
	if r.widened && !p.Time.IsZero() && !p.Time.Before(r.to) {
		return // read past To for the decoded handlers only
	}
	st := r.streamStats(p.Stream)
	st.LossPoints++
	r.lossMoved(st, p)
}

func (r *Replayer) lossMoved(st *StreamStats, p store.LossPoint) {
	if st.Loss.Rise(p.Loss).Total() == 0 {
		return // no counter rose (an older sample is not a change)
	}
	if r.opts.OnLoss != nil {
		p.Loss = st.Loss
		r.opts.OnLoss(p)
	}
}

// batch delivers one batch.
func (r *Replayer) batch(ctx context.Context, b *store.Batch) error {
	past := r.pastTo(b)
	if past && (b.Kind == store.KindRingbuf && r.ring[b.Stream] != nil || b.Kind == store.KindPerfbuf && r.perf[b.Stream] != nil) {
		return nil // a batch handler gets the batches of [From, To) only
	}
	st := r.streamStats(b.Stream)
	if !past && (b.Loss != st.Loss || r.opts.Speed > 0) {
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
	r.cur, r.curEvents, r.curBytes = b, 0, 0
	defer func() { r.cur = nil }()
	var err error
	var n uint64 // raw bytes
	// HandleDecoded's handlers, of every stream without its own, pass on
	// only the events of the time range: they count what they passed.
	decoded := r.decodedAll && (b.Kind == store.KindRingbuf && r.ring[b.Stream] == nil || b.Kind == store.KindPerfbuf && r.perf[b.Stream] == nil)
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
	events := uint64(b.Len())
	if decoded {
		events, n = r.curEvents, r.curBytes
	}
	if events > 0 || !decoded {
		r.stats.Batches++
		st.Batches++
	}
	r.stats.Events += events
	r.stats.Bytes += n
	st.Events += events
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
