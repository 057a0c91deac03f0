// Package record makes recordings: it loads and attaches BPF collections
// through bpf.Manager, reads their ring buffers and perf event arrays with
// bpf.RingbufReader and bpf.PerfbufReader, and tees every batch the readers
// deliver into a store.Writer, together with the streams' loss counters.
//
// Every event is accounted for, per stream:
//
//	emitted by the kernel program = recorded + lost in the kernel + dropped in user space
//
// Perf event arrays report their lost samples themselves; ring buffers do
// not, so built-in tracers count failed reservations in a per-CPU map that
// the reader samples (Stream.DropCounter). The counters go into every
// recorded batch and, every LossInterval and at the end, into the
// recording's loss time series.
//
// A recording of a user's own BPF collection takes a few lines:
//
//	rec, _ := record.New(record.Options{Dir: "rec"})
//	_ = rec.AddCollection(record.Collection{Name: "mine", Spec: spec,
//		Streams: []record.Stream{{Map: "events"}}})
//	sum, err := rec.Run(ctx) // until ctx ends
package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/store"
)

// Sentinel errors, wrapped by the errors of this package.
var (
	// ErrNoStreams: Run was called with nothing to record.
	ErrNoStreams = errors.New("nothing to record")
	// ErrUnknownMap: a stream names a map the collection does not have.
	ErrUnknownMap = errors.New("unknown map")
	// ErrStarted: the recorder was already run.
	ErrStarted = errors.New("recorder already started")
)

// Options configure a recording. Zero values take the defaults.
type Options struct {
	// Dir is the recording directory to create (required; it must not hold
	// a recording yet).
	Dir string
	// Duration stops the recording after this long (0: until the context
	// given to Run ends, or the command exits).
	Duration time.Duration
	// Store tunes the segment writer (flush, sync, rotation, retention,
	// compression).
	Store store.WriterOptions
	// Ringbuf and Perfbuf configure the readers. Workers is always 1: batches
	// are recorded in the order the handler receives them.
	Ringbuf bpf.RingbufConfig
	Perfbuf bpf.PerfbufConfig
	// Manager configures the BPF manager.
	Manager bpf.ManagerConfig
	// LossInterval is how often the streams' loss counters are stored when
	// they changed (default 1s); they are always stored at start and end.
	LossInterval time.Duration
	// Progress, if set, is called every ProgressInterval (default 1s) and
	// once at the end.
	Progress func(Progress)
	// Started, if set, is called once, when the recording is live: every
	// program attached, every reader running, and the Command started.
	// What happens from then on is recorded.
	Started          func()
	ProgressInterval time.Duration
	// Log receives the recorder's log (nil: discarded).
	Log *slog.Logger
	// Metrics, if set, receives the readers' Prometheus metrics.
	Metrics *bpf.Metrics
	// ToolVersion and CommandLine are stored in the recording's metadata.
	ToolVersion string
	CommandLine []string

	// PIDs and Comms select processes for the built-in tracers (in the
	// kernel: unselected events never reach user space). Empty: every
	// process except the recorder itself. Like perf record -p, a recording
	// of PIDs ends when they have all exited.
	PIDs  []uint32
	Comms []string
	// Command, if set, is started (behind a gate, so its first event is
	// recorded too) and recorded with all its descendants; the recording
	// stops when it exits. Its stdio is CommandStdin/out/err.
	Command       []string
	CommandStdin  io.Reader
	CommandStdout io.Writer
	CommandStderr io.Writer
	// Fingerprints, if set, receives one store.FingerprintLine per recorded
	// batch, computed from the events as the live handler received them, so
	// that a replay can be checked against the live run.
	Fingerprints io.Writer
	// WakeupEvery and RingbufSize are passed to built-in tracers.
	WakeupEvery uint32
	RingbufSize uint32
}

func (o *Options) setDefaults() {
	if o.LossInterval <= 0 {
		o.LossInterval = time.Second
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	def := bpf.DefaultRingbufConfig()
	if o.Ringbuf.BatchSize <= 0 {
		o.Ringbuf.BatchSize = def.BatchSize
	}
	if o.Ringbuf.FlushInterval <= 0 {
		o.Ringbuf.FlushInterval = def.FlushInterval
	}
	if o.Ringbuf.BufferSize <= 0 {
		o.Ringbuf.BufferSize = def.BufferSize
	}
	o.Ringbuf.Workers = 1
	pdef := bpf.DefaultPerfbufConfig()
	if o.Perfbuf.BatchSize <= 0 {
		o.Perfbuf.BatchSize = pdef.BatchSize
	}
	if o.Perfbuf.FlushInterval <= 0 {
		o.Perfbuf.FlushInterval = pdef.FlushInterval
	}
	if o.Perfbuf.PerCPUBufferSize <= 0 {
		o.Perfbuf.PerCPUBufferSize = pdef.PerCPUBufferSize
	}
	if o.Perfbuf.Watermark <= 0 {
		o.Perfbuf.Watermark = pdef.Watermark
	}
	o.Perfbuf.Workers = 1
	if o.Manager == (bpf.ManagerConfig{}) {
		o.Manager = bpf.DefaultManagerConfig()
	}
}

// Stream is one ring buffer or perf event array of a collection to record.
type Stream struct {
	// Name names the stream in the recording (default: the map's name,
	// prefixed by the collection's name when several collections are
	// recorded).
	Name string
	// Map is the ring buffer or perf event array in the collection.
	Map string
	// DropCounter optionally names a per-CPU array map whose key 0 counts
	// the events the program failed to reserve (ring buffer) or output
	// (perf). For a perf buffer it is the exact kernel loss: perf reports
	// lost samples only once a later sample fits in the buffer, so its own
	// count can lag; the larger of the two is recorded.
	DropCounter string
	// EmittedCounter optionally names a per-CPU array map whose key 0 counts
	// the events the program tried to emit, to check the accounting.
	EmittedCounter string
	// Tracer and EventType describe the events for replay and export.
	Tracer    string
	EventType string
	// Object identifies a user-supplied object file.
	Object *store.ObjectInfo
	// Handler and PerfHandler, if set, receive every batch after it was
	// recorded (for live processing beside the recording).
	Handler     bpf.EventHandler
	PerfHandler bpf.PerfEventHandler
}

// Collection is a BPF collection to load, attach and record.
type Collection struct {
	// Name names the collection in the manager (and in link names).
	Name string
	// Spec is the collection to load (e.g. from bpf2go's loadXxx()).
	Spec *ebpf.CollectionSpec
	// Options are passed to the loader (e.g. MapReplacements).
	Options *ebpf.CollectionOptions
	// Attach lists where to attach programs. If empty, every program whose
	// ELF section names a target (tracepoint/G/N, raw_tp/N, tp_btf/N,
	// kprobe/SYM) is attached there.
	Attach []Attachment
	// Streams lists the buffers to record.
	Streams []Stream
}

// StreamResult is the account of one stream at the end of a recording.
type StreamResult struct {
	Name   string
	Kind   store.Kind
	Tracer string
	// Recorded counts the events (and batches and payload bytes) stored.
	Recorded, Batches, Bytes uint64
	// KernelLost: perf samples lost in the kernel; RingbufDropped: failed
	// ring buffer reservations (drop counter); UserDropped: events read but
	// not recorded.
	KernelLost, RingbufDropped, UserDropped uint64
	// Emitted is the program's own count of emitted events, when it keeps
	// one (EmittedCounter); HasEmitted says whether it does.
	Emitted    uint64
	HasEmitted bool
}

// Lost is every event of the stream that was not recorded.
func (s StreamResult) Lost() uint64 { return s.KernelLost + s.RingbufDropped + s.UserDropped }

// Balanced reports whether emitted = recorded + lost holds (true when the
// program keeps no emitted count).
func (s StreamResult) Balanced() bool {
	return !s.HasEmitted || s.Emitted == s.Recorded+s.Lost()
}

// Summary is the result of a recording.
type Summary struct {
	Dir      string
	Started  time.Time
	Duration time.Duration
	Streams  []StreamResult
	// Segments is the number of segment files; DiskBytes their size.
	Segments  int
	DiskBytes int64
	// CommandExit is the exit code of Options.Command (-1 if none ran).
	CommandExit int
	// Aborted says the recording was stopped at once (Abort), without
	// draining the buffers.
	Aborted bool
	// Skipped lists the built-in tracers this kernel cannot run, each with
	// the reason ("tracer: reason"): the others recorded without them.
	// A recording of one tracer alone fails instead.
	Skipped []string
}

// Events sums the recorded events of every stream.
func (s *Summary) Events() uint64 {
	var n uint64
	for _, st := range s.Streams {
		n += st.Recorded
	}
	return n
}

// Progress is a snapshot of a running recording.
type Progress struct {
	Elapsed time.Duration
	Streams []StreamProgress
	// DiskBytes is the size of the recording's files so far.
	DiskBytes int64
	// Final is set on the last call, after the recording stopped.
	Final bool
}

// StreamProgress is one stream's counters in a Progress.
type StreamProgress struct {
	Name                  string
	Events, Bytes         uint64
	Lost, Dropped         uint64
	EventsPerSec          float64
	KernelLost, RingDrops uint64
}

// Recorder records collections and built-in tracers. Make one with New,
// add what to record, then Run it once.
type Recorder struct {
	opts    Options
	colls   []Collection
	tracers []tracers.Builtin
	filter  *common.Filter
	started atomic.Bool
	abort   chan struct{}
	abortMu sync.Once
}

// New returns a recorder. Nothing is loaded until Run.
func New(opts Options) (*Recorder, error) {
	if opts.Dir == "" {
		return nil, errors.New("record: no output directory")
	}
	opts.setDefaults()
	for _, bs := range []int{opts.Ringbuf.BatchSize, opts.Perfbuf.BatchSize} {
		if bs > store.MaxBatchEvents {
			return nil, fmt.Errorf("record: batch size %d is more than a recording's batch may hold (%d events)", bs, store.MaxBatchEvents)
		}
	}
	return &Recorder{opts: opts, abort: make(chan struct{})}, nil
}

// AddCollection adds a collection to record.
func (r *Recorder) AddCollection(c Collection) error {
	if c.Name == "" || c.Spec == nil {
		return errors.New("record: a collection needs a name and a spec")
	}
	for _, s := range c.Streams {
		ms, ok := c.Spec.Maps[s.Map]
		if !ok {
			return fmt.Errorf("record: collection %s: %w %q (maps: %s)", c.Name, ErrUnknownMap, s.Map, mapNames(c.Spec))
		}
		if ms.Type != ebpf.RingBuf && ms.Type != ebpf.PerfEventArray {
			return fmt.Errorf("record: collection %s: map %q is a %s, not a ring buffer or perf event array", c.Name, s.Map, ms.Type)
		}
	}
	for _, a := range c.Attach {
		if _, ok := c.Spec.Programs[a.Program]; !ok {
			return fmt.Errorf("record: collection %s: attachment %s: %w: no program %q (programs: %s)", c.Name, a, ErrBadAttachment, a.Program, programNames(c.Spec))
		}
	}
	r.colls = append(r.colls, c)
	return nil
}

// AddBuiltin adds the built-in tracer called name (see tracers.Names).
func (r *Recorder) AddBuiltin(name string) error {
	// The filter maps are created at Run; tracers get them then.
	t, err := tracers.New(name, tracers.Options{WakeupEvery: r.opts.WakeupEvery, RingbufSize: r.opts.RingbufSize})
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	r.tracers = append(r.tracers, t)
	return nil
}

// Abort stops a running recording at once: the buffers are not drained,
// but what was recorded is committed and the recording stays valid.
func (r *Recorder) Abort() { r.abortMu.Do(func() { close(r.abort) }) }

func mapNames(spec *ebpf.CollectionSpec) string {
	var n []string
	for k, m := range spec.Maps {
		if m.Type == ebpf.RingBuf || m.Type == ebpf.PerfEventArray {
			n = append(n, k)
		}
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "none that is a ring buffer or perf event array"
	}
	return fmt.Sprint(n)
}

func programNames(spec *ebpf.CollectionSpec) string {
	var n []string
	for k := range spec.Programs {
		n = append(n, k)
	}
	sort.Strings(n)
	return fmt.Sprint(n)
}

// builtinCollection turns a built-in tracer into a Collection that loads
// with the recording's shared filter.
func (r *Recorder) builtinCollection(t tracers.Builtin) (Collection, error) {
	spec, err := t.Load() // with the tracer's constants and ring size applied
	if err != nil {
		return Collection{}, fmt.Errorf("record: tracer %s: %w", t.Name(), err)
	}
	c := Collection{
		Name:    t.Name(),
		Spec:    spec,
		Options: &ebpf.CollectionOptions{MapReplacements: r.filter.MapReplacements()},
	}
	for _, s := range t.Streams() {
		st := Stream{
			Name:           s.Name,
			Map:            s.Map,
			EmittedCounter: s.EmittedCounter,
			Tracer:         t.Name(),
			EventType:      s.EventType,
		}
		st.DropCounter = s.DropCounter
		c.Streams = append(c.Streams, st)
	}
	return c, nil
}

// Run makes the recording: it loads and attaches everything added, reads
// until the context ends, Duration passes or the command exits, then
// detaches the programs, drains the buffers, stores the final loss
// counters, closes the recording and returns its summary. A recording that
// was started stays valid whatever error ends it.
func (r *Recorder) Run(ctx context.Context) (*Summary, error) {
	if !r.started.CompareAndSwap(false, true) {
		return nil, ErrStarted
	}
	if len(r.colls) == 0 && len(r.tracers) == 0 {
		return nil, fmt.Errorf("record: %w: add a tracer or a collection", ErrNoStreams)
	}
	s := &session{rec: r, opts: r.opts, commandExit: -1}
	return s.run(ctx)
}

// streamState is the live state of one recorded stream.
type streamState struct {
	info  store.StreamInfo
	coll  string
	m     *ebpf.Map
	drop  *ebpf.Map
	emit  *ebpf.Map
	user  Stream
	ring  *bpf.RingbufReader
	perf  *bpf.PerfbufReader
	batch store.Batch // reused by the tee handler (one reader goroutine)

	recorded, batches, bytes atomic.Uint64
	lastLoss                 store.Loss
	lastEvents               uint64

	dropMu    sync.Mutex // perf drop counter cache
	perfDrops uint64
	dropRead  time.Time
}

// perfDropsEvery bounds how often a perf stream's drop counter map is read
// (a syscall) on the batch path.
const perfDropsEvery = 50 * time.Millisecond

// loss returns the stream's cumulative loss counters; exact forces a fresh
// read of a perf stream's drop counter.
func (st *streamState) loss(exact bool) store.Loss {
	var l store.Loss
	if st.ring != nil {
		s := st.ring.Stats()
		l.RingbufDropped = uint64(s.EventsLost)
		l.UserDropped = uint64(s.EventsDropped)
	} else if st.perf != nil {
		s := st.perf.Stats()
		l.KernelLost = uint64(s.EventsLost)
		l.UserDropped = uint64(s.EventsDropped)
		if st.drop != nil {
			st.dropMu.Lock()
			if now := time.Now(); exact || now.Sub(st.dropRead) >= perfDropsEvery {
				if n, err := tracers.ReadCounter(st.drop); err == nil {
					st.perfDrops, st.dropRead = n, now
				}
			}
			l.KernelLost = max(l.KernelLost, st.perfDrops)
			st.dropMu.Unlock()
		}
	}
	return l
}
