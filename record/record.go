// Package record makes recordings: it loads and attaches BPF collections
// through bpf.Manager, reads their ring buffers and perf event arrays with
// bpf.RingbufReader and bpf.PerfbufReader, and tees every batch the readers
// deliver into a store.Writer, together with the streams' loss counters.
//
// Every event is accounted for, per stream, in the terms of
// internal/lossterms that every output of ebpfrec uses:
//
//	emitted by the kernel program = recorded + kernel_lost_perfbuf + kernel_lost_ringbuf + ebpfrec_dropped + storage_lost
//
// (lost in the kernel because a perf buffer or the ring buffer was full;
// read, then dropped by ebpfrec; read, then lost to a storage failure).
// Apart from these, a program the kernel skipped because another BPF
// program ran on the CPU emitted nothing: kernel_missed counts those runs
// per stream, from the programs' recursion_misses, where the kernel counts
// them (StreamResult.KernelMissedCounted; "not counted" otherwise).
// Recorded counts only what the recording holds: after a storage failure,
// batches the writer took but could not commit count as storage_lost, and
// Run's error names the failure. Perf event arrays report their lost
// samples themselves, but only once a later sample on the same CPU fits in
// the buffer: the samples lost after a CPU's last one are never reported
// (a burst that ends with a full buffer), unless the program counts them
// (Stream.DropCounter). Ring buffers report none, so built-in tracers count
// failed reservations in a per-CPU map that the reader samples
// (Stream.DropCounter). The counters go into every recorded batch and,
// every LossInterval and at the end, into the recording's loss time series.
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
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/store"
)

// Sentinel errors, wrapped by the errors of this package.
var (
	// ErrNoStreams: Run was called with nothing to record.
	ErrNoStreams = errors.New("nothing to record")
	// ErrUnknownMap: a stream names a map the collection does not have.
	ErrUnknownMap = errors.New("unknown map")
	// ErrStarted: the recorder was already run (Run), or is running
	// (AddCollection, AddBuiltin).
	ErrStarted = errors.New("recorder already started")
	// ErrNoProcessFilter: the recording selects processes (PIDs, Comms or
	// Command) but a collection cannot be filtered by process: it does not
	// opt into the filter (bpf/include/ebpfrec_filter.h), or one of its
	// programs writes events without asking the filter.
	ErrNoProcessFilter = errors.New("cannot select processes")
	// ErrUnbalanced: a stream's program counted more or fewer events than
	// were recorded and counted lost (emitted != recorded + lost). Run
	// returns it, with the summary, after the recording, which stays
	// valid: the accounting, not the recording, is in doubt.
	ErrUnbalanced = errors.New("accounting mismatch")
	// ErrBadOption: an Options field is out of its range (a negative
	// Duration, LossInterval or ProgressInterval, a batch size above
	// store.MaxBatchEvents).
	ErrBadOption = errors.New("option out of range")
	// ErrHandler: a stream's live handler (Stream.Handler, PerfHandler)
	// returned an error. The batch was recorded already and the recording
	// went on; Run returns the stream's first handler error, wrapping
	// this and the handler's error, with the summary (StreamResult's
	// HandlerErrors counts them).
	ErrHandler = errors.New("live handler failed")
)

// FilterHookHelp says how a BPF object of one's own opts into the process
// filter; errors about a missing hook end with it.
const FilterHookHelp = `#include "ebpfrec_filter.h" (bpf/include in ebpfrec's source) and start each program that emits events with "if (!ebpfrec_selected()) return 0;"`

// Options configure a recording. Zero values take the defaults.
type Options struct {
	// Dir is the recording directory to create (required; it must not hold
	// a recording yet).
	Dir string
	// Duration stops the recording this long after every tracer is
	// attached (0: until the context given to Run ends, or the command
	// exits). Loading the tracers takes a moment, during which those
	// attached first already record.
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
	Started func()
	// ProgressInterval is how often Progress is called (default 1s).
	ProgressInterval time.Duration
	// Log receives the recorder's log (nil: discarded).
	Log *slog.Logger
	// Metrics, if set, receives the readers' Prometheus metrics.
	Metrics *bpf.Metrics
	// ToolVersion and CommandLine are stored in the recording's metadata.
	ToolVersion string
	CommandLine []string

	// PIDs and Comms select processes (in the kernel: unselected events
	// never reach user space). Empty: every process except the recorder
	// itself. Like perf record -p, a recording of PIDs ends when they have
	// all exited. They apply to the built-in tracers and to every
	// collection that opts into the filter (bpf/include/ebpfrec_filter.h);
	// AddCollection refuses a collection that does not, rather than record
	// processes that were not selected.
	PIDs  []uint32
	Comms []string
	// Command, if set, is started (behind a gate, so its first event is
	// recorded too) and recorded with all its descendants; the recording
	// stops when it exits. Its stdio is CommandStdin/out/err. It selects
	// processes as PIDs does, with the same condition on collections.
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
	// Exec chooses, by executable path, the processes that the user-space
	// tracers (tracers.ProcessInstrumenter: gofunc) instrument, besides
	// those of PIDs, Comms and the Command: those running the file at the
	// start and those that exec it later. The file is instrumented at the
	// start, and the kernel's filter selects each process of it from its
	// exec on (common.Filter.AllowExec: the file by device and inode), so
	// a later process is traced from its first instruction; the proc
	// stream's exec of it adds it to Summary.Instrumented (its libraries
	// too, for dns and bash). A missing file fails the recording at the
	// start. A process that cannot be instrumented is listed in
	// Summary.Instrumented with its error, and the recording goes on.
	Exec []string
	// Instrumented, if set, is called with the result of every process a
	// user-space tracer instrumented or failed to: those running at the
	// start, and those whose exec the recording sees later with a comm
	// that Comms matches or of a file of Exec (from the proc stream: not
	// with NoProc). A process started later that exits before it is
	// instrumented (short-lived ones often do) is left out: no failure.
	Instrumented func(InstrumentResult)
	// Funcs are the Go functions (globs, "main.(*Server).Handle*") that
	// the gofunc tracer traces.
	Funcs []string
	// NoProc leaves out the proc stream (the built-in tracer proc: fork,
	// exec and exit of every selected process, and a snapshot of those
	// alive at start), which every recording has otherwise, so that replay
	// and export can say which process each event comes from.
	NoProc bool
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
		// The default, within a smaller buffer (--perf-buffer-size 4096):
		// the kernel wants the watermark below the buffer's size.
		o.Perfbuf.Watermark = min(pdef.Watermark, o.Perfbuf.PerCPUBufferSize/2)
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
	// count can lag, and misses the losses after a CPU's last sample; the
	// larger of the two is recorded.
	DropCounter string
	// EmittedCounter optionally names a per-CPU array map whose key 0 counts
	// the events the program tried to emit, to check the accounting.
	EmittedCounter string
	// Tracer and EventType describe the events for replay and export.
	Tracer    string
	EventType string
	// Struct names the C struct the stream's programs write, in the
	// collection's BTF: its layout (bpf/btflayout) is stored with the
	// stream, so that replay and export decode the events by their fields
	// where no Go decoder knows them. Empty: none is stored.
	Struct string
	// Object identifies a user-supplied object file.
	Object *store.ObjectInfo
	// Handler (for a ring buffer) or PerfHandler (for a perf event array),
	// if set, receives every batch after it was recorded (for live
	// processing beside the recording); AddCollection refuses the other
	// kind's. An error it returns does not stop the recording: it is
	// counted (StreamResult.HandlerErrors), and Run returns the first
	// (ErrHandler) with the summary.
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
	// The process filter: a collection whose spec declares the maps of
	// bpf/include/ebpfrec_filter.h gets the recording's filter maps in
	// their place, so PIDs, Comms and Command select its events too.

	// Attach lists where to attach programs. If empty, every program whose
	// ELF section names a target (tracepoint/G/N, raw_tp/N, tp_btf/N,
	// kprobe/SYM) is attached there.
	Attach []Attachment
	// Streams lists the buffers to record.
	Streams []Stream

	// user says the collection is a user-space tracer's, whose programs
	// are attached to processes (instrument.go), not by attachAll.
	user bool

	// loaded, if set, is given the collection once loaded (a built-in
	// tracer's UseCollection: its objects, and what it fills in at load,
	// such as the tcp tracer's listeners that exist before the recording).
	loaded func(*ebpf.Collection) error
}

// StreamResult is the account of one stream at the end of a recording.
type StreamResult struct {
	// Name is the stream's name in the recording, Kind its buffer's kind,
	// Tracer the built-in tracer that made it ("" for a collection's).
	Name   string
	Kind   store.Kind
	Tracer string
	// Recorded counts the events (and batches and payload bytes) stored.
	Recorded, Batches, Bytes uint64
	// The events not recorded (internal/lossterms): KernelLostPerfbuf, lost
	// in the kernel because a perf buffer was full; KernelLostRingbuf, lost
	// in the kernel because the ring buffer was full (the drop counter);
	// EbpfrecDropped, read and then dropped by the recorder; StorageLost,
	// read but never committed because the storage failed (Summary.StorageErr).
	KernelLostPerfbuf, KernelLostRingbuf, EbpfrecDropped, StorageLost uint64
	// KernelLossUncounted says the stream's loss in the kernel is not
	// counted (a ring buffer without Stream.DropCounter): KernelLostRingbuf
	// 0 means unknown, and the equation cannot be checked either.
	KernelLossUncounted bool
	// KernelMissed counts the runs of the stream's programs that the
	// kernel skipped because a BPF program was running on the CPU
	// (kernel_missed): each could have cost the stream an event, which was
	// never emitted, so it is not part of Lost or of the equation. A
	// program counts against the streams whose maps it writes; one that
	// writes none of its collection's streams, against each of them (so
	// the streams of one collection may count the same run).
	// KernelMissedCounted says this kernel counts such skips for every one
	// of those programs (bpf.RecursionMissesCounted); without it,
	// KernelMissed 0 means unknown.
	KernelMissed        uint64
	KernelMissedCounted bool
	// Emitted is the program's own count of emitted events, when it keeps
	// one (EmittedCounter); HasEmitted says whether it does.
	Emitted    uint64
	HasEmitted bool
	// HandlerErrors counts the calls of the stream's live handler
	// (Stream.Handler, PerfHandler) that returned an error; HandlerErr is
	// the first, naming the stream and the batch (it wraps ErrHandler).
	// Those batches are recorded all the same.
	HandlerErrors uint64
	HandlerErr    error
}

// Lost is every event the stream's programs emitted that was not
// recorded (KernelMissed, runs that emitted nothing, is apart).
func (s StreamResult) Lost() uint64 {
	return s.KernelLostPerfbuf + s.KernelLostRingbuf + s.EbpfrecDropped + s.StorageLost
}

// Balanced reports whether emitted = recorded + lost holds (true when the
// program keeps no emitted count).
func (s StreamResult) Balanced() bool {
	return !s.HasEmitted || s.Emitted == s.Recorded+s.Lost()
}

// Summary is the result of a recording.
type Summary struct {
	// Dir is the recording's directory; Started when the recording
	// started and Duration how long it ran; Streams the account of each
	// stream, in the recording's order.
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
	// StorageErr is the storage failure (full disk, file or directory
	// removed, ...) that stopped the recording, if one did: Run returns an
	// error that wraps it, and each stream's StorageLost counts the events
	// read from the kernel that the recording does not hold. The recorder's
	// note in the recording says so too (NoteName).
	StorageErr error
	// Skipped lists the built-in tracers this kernel cannot run, each with
	// the reason ("tracer: reason"): the others recorded without them.
	// A recording of one tracer alone fails instead.
	Skipped []string
	// Instrumented lists the processes the user-space tracers were to
	// instrument, each with its error if it could not be.
	Instrumented []InstrumentResult
	// Deleted is what retention (Options.Store's KeepSegments, KeepBytes)
	// deleted during the recording, or nil.
	Deleted *store.Deleted
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
	// Elapsed is the time since the recording started; Streams the
	// counters of each stream.
	Elapsed time.Duration
	Streams []StreamProgress
	// DiskBytes is the size of the recording's files so far.
	DiskBytes int64
	// Final is set on the last call, after the recording stopped.
	Final bool
}

// StreamProgress is one stream's counters in a Progress, the losses in the
// terms of StreamResult.
type StreamProgress struct {
	// Name is the stream's name.
	Name string
	// Events and Bytes are what was recorded so far.
	Events, Bytes uint64
	// KernelLostPerfbuf, KernelLostRingbuf and EbpfrecDropped are the
	// events not recorded so far, and KernelMissed the runs of its
	// programs the kernel skipped, as in StreamResult.
	KernelLostPerfbuf, KernelLostRingbuf, EbpfrecDropped, KernelMissed uint64
	// EventsPerSec is the recorded event rate over the last
	// ProgressInterval.
	EventsPerSec float64
}

// Recorder records collections and built-in tracers. Make one with New,
// add what to record, then Run it once.
type Recorder struct {
	opts    Options
	colls   []Collection
	tracers []tracers.Builtin
	proc    tracers.Builtin // the proc stream's tracer (nil with NoProc or when added by name)
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
	for _, pid := range opts.PIDs {
		if pid == 0 {
			// The idle task, no process: pidfd_open said only "invalid
			// argument".
			return nil, errors.New("record: --pid 0: not a process ID (processes are 1 and up)")
		}
	}
	// A negative duration (a deadline already past, computed) would
	// otherwise read as 0, which means no limit at all.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Duration", opts.Duration}, {"LossInterval", opts.LossInterval}, {"ProgressInterval", opts.ProgressInterval}} {
		if d.v < 0 {
			return nil, fmt.Errorf("record: %s %v: %w (0 takes the default)", d.name, d.v, ErrBadOption)
		}
	}
	opts.setDefaults()
	for _, bs := range []int{opts.Ringbuf.BatchSize, opts.Perfbuf.BatchSize} {
		if bs > store.MaxBatchEvents {
			return nil, fmt.Errorf("record: batch size %d: %w: more than a recording's batch may hold (%d events)", bs, ErrBadOption, store.MaxBatchEvents)
		}
	}
	r := &Recorder{opts: opts, abort: make(chan struct{})}
	if !opts.NoProc {
		t, err := tracers.New(proc.Name, tracers.Options{WakeupEvery: opts.WakeupEvery, RingbufSize: opts.RingbufSize})
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		r.proc = t
	}
	return r, nil
}

// AddCollection adds a collection to record. It must be called before
// Run: afterwards it returns ErrStarted.
func (r *Recorder) AddCollection(c Collection) error {
	if r.started.Load() {
		return fmt.Errorf("record: AddCollection %s: %w", c.Name, ErrStarted)
	}
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
		// A handler of the other kind would never be called.
		if ms.Type == ebpf.RingBuf && s.PerfHandler != nil {
			return fmt.Errorf("record: collection %s: stream of map %q: a PerfHandler on a ring buffer (set Handler)", c.Name, s.Map)
		}
		if ms.Type == ebpf.PerfEventArray && s.Handler != nil {
			return fmt.Errorf("record: collection %s: stream of map %q: a Handler on a perf event array (set PerfHandler)", c.Name, s.Map)
		}
	}
	for _, a := range c.Attach {
		if _, ok := c.Spec.Programs[a.Program]; !ok {
			return fmt.Errorf("record: collection %s: attachment %s: %w: no program %q (programs: %s)", c.Name, a, ErrBadAttachment, a.Program, programNames(c.Spec))
		}
	}
	if err := r.checkFilterHook(c); err != nil {
		return err
	}
	r.colls = append(r.colls, c)
	return nil
}

// selects reports whether the recording selects processes.
func (o *Options) selects() bool {
	return len(o.PIDs) > 0 || len(o.Comms) > 0 || len(o.Command) > 0 || len(o.Exec) > 0
}

// selection names the recording's selection of processes for errors.
func (o *Options) selection() string {
	var parts []string
	if len(o.PIDs) > 0 {
		parts = append(parts, fmt.Sprintf("pids %v", o.PIDs))
	}
	if len(o.Comms) > 0 {
		parts = append(parts, fmt.Sprintf("comms %q", o.Comms))
	}
	if len(o.Command) > 0 {
		parts = append(parts, fmt.Sprintf("the command %q and its descendants", o.Command[0]))
	}
	if len(o.Exec) > 0 {
		parts = append(parts, fmt.Sprintf("the processes of %q", o.Exec))
	}
	return strings.Join(parts, ", ")
}

// checkFilterHook refuses a collection that the recording's selection of
// processes cannot reach: a filter that is not applied would record every
// process while the user believes otherwise. A declared hook must be
// whole and right even without a selection.
func (r *Recorder) checkFilterHook(c Collection) error {
	hooked, err := common.UserHook(c.Spec)
	if err != nil {
		return fmt.Errorf("record: collection %s: %w", c.Name, err)
	}
	if hooked && c.Options != nil {
		for _, name := range []string{common.UserMapFilterConfig, common.UserMapPIDAllow, common.UserMapPIDBlock, common.UserMapCommAllow} {
			if _, ok := c.Options.MapReplacements[name]; ok {
				return fmt.Errorf("record: collection %s: MapReplacements replaces %s, a map of the process filter that the recorder provides", c.Name, name)
			}
		}
	}
	if !r.opts.selects() {
		return nil
	}
	if !hooked {
		return fmt.Errorf("record: collection %s: %w (%s): it has no process filter; to opt in, %s", c.Name, ErrNoProcessFilter, r.opts.selection(), FilterHookHelp)
	}
	// Every program that writes to a recorded buffer must ask the filter,
	// or its events would be recorded for every process.
	streams := map[string]bool{}
	for _, s := range c.Streams {
		streams[s.Map] = true
	}
	var progs []string
	for name := range c.Spec.Programs {
		progs = append(progs, name)
	}
	sort.Strings(progs)
	for _, name := range progs {
		writes, asks := "", false
		for _, ins := range c.Spec.Programs[name].Instructions {
			ref := ins.Reference()
			if ref == common.UserMapFilterConfig {
				asks = true
			} else if streams[ref] && writes == "" {
				writes = ref
			}
		}
		if writes != "" && !asks {
			return fmt.Errorf("record: collection %s: %w (%s): program %s writes to %s without calling ebpfrec_selected(); %s", c.Name, ErrNoProcessFilter, r.opts.selection(), name, writes, FilterHookHelp)
		}
	}
	return nil
}

// AddBuiltin adds the built-in tracer called name (see tracers.Names). A
// tracer is known once its package is imported: a program that records
// built-in tracers imports them, e.g. all of them with
//
//	import _ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
//
// (record itself imports only proc, which every recording has). It must
// be called before Run: afterwards it returns ErrStarted.
func (r *Recorder) AddBuiltin(name string) error {
	if r.started.Load() {
		return fmt.Errorf("record: AddBuiltin %s: %w", name, ErrStarted)
	}
	// The filter maps are created at Run; tracers get them then.
	t, err := tracers.New(name, tracers.Options{WakeupEvery: r.opts.WakeupEvery, RingbufSize: r.opts.RingbufSize})
	if err != nil {
		return builtinError(err, tracers.Names())
	}
	if err := r.opts.checkUserTracer(t); err != nil {
		return err
	}
	if name == proc.Name { // named (even with NoProc): the one proc stream
		r.proc = t
		return nil
	}
	r.tracers = append(r.tracers, t)
	return nil
}

// builtinError is AddBuiltin's error for tracers.New's err, registered
// the tracers called known. A program that imported no tracer package
// knows only proc (which record imports): the list of known tracers
// alone would not say why "exec" is unknown.
func builtinError(err error, known []string) error {
	if errors.Is(err, tracers.ErrUnknownTracer) && !slices.ContainsFunc(known, func(n string) bool { return n != proc.Name }) {
		return fmt.Errorf("record: %w; no tracer package is imported: import _ \"github.com/ebpfrec/ebpfrec/bpf/tracers/all\" for every built-in tracer", err)
	}
	return fmt.Errorf("record: %w", err)
}

// Abort stops a running recording at once, also while it drains its
// buffers after a stop: the events still in them are read and counted as
// dropped by ebpfrec (ebpfrec_dropped) instead of recorded, so the
// accounting holds; what was recorded is committed and the recording stays
// valid. Summary.Aborted says it took effect.
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
		loaded:  t.UseCollection,
		user:    tracers.InstrumentsProcesses(t),
	}
	for _, s := range t.Streams() {
		st := Stream{
			Name:           s.Name,
			Map:            s.Map,
			EmittedCounter: s.EmittedCounter,
			Tracer:         t.Name(),
			EventType:      s.EventType,
			Struct:         s.Struct,
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
// was started stays valid whatever error ends it, and then Run returns its
// summary with the error (a storage failure, a failed drain): both are
// set; so do ErrUnbalanced and ErrHandler (a live handler failed) after a
// recording that ended well. An error before anything was recorded comes
// with a nil summary. Run may be called once; a second call returns
// ErrStarted.
func (r *Recorder) Run(ctx context.Context) (*Summary, error) {
	if !r.started.CompareAndSwap(false, true) {
		return nil, ErrStarted
	}
	if len(r.colls) == 0 && len(r.tracers) == 0 && r.proc == nil {
		return nil, fmt.Errorf("record: %w: add a tracer or a collection", ErrNoStreams)
	}
	if len(r.opts.Exec) > 0 && !r.hasUserTracer() {
		return nil, fmt.Errorf("record: Exec (--exec) chooses processes for a user-space tracer (gofunc): %w", ErrNoStreams)
	}
	s := &session{rec: r, opts: r.opts, commandExit: -1}
	sum, err := s.run(ctx)
	if err == nil && sum != nil {
		err = sum.checkBalance()
	}
	if err == nil && sum != nil {
		for _, st := range sum.Streams {
			if st.HandlerErr != nil {
				err = fmt.Errorf("%w (%d failed calls)", st.HandlerErr, st.HandlerErrors)
				break
			}
		}
	}
	return sum, err
}

// checkBalance returns an error wrapping ErrUnbalanced for the first
// stream whose emitted count (where its program keeps one) is not what was
// recorded and lost.
func (s *Summary) checkBalance() error {
	for _, st := range s.Streams {
		if !st.Balanced() {
			return fmt.Errorf("record: stream %s: %w: emitted %d != recorded %d + %s %d + %s %d + %s %d + %s %d", st.Name, ErrUnbalanced, st.Emitted, st.Recorded,
				lossterms.KernelLostPerfbuf, st.KernelLostPerfbuf, lossterms.KernelLostRingbuf, st.KernelLostRingbuf,
				lossterms.EbpfrecDropped, st.EbpfrecDropped, lossterms.StorageLost, st.StorageLost)
		}
	}
	return nil
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
	storageLost              atomic.Uint64            // events read but never committed
	abortDropped             atomic.Uint64            // events read after Abort, not recorded
	synthesized              atomic.Uint64            // records user space wrote into the stream (proc's snapshot)
	handlerErrors            atomic.Uint64            // errors of the user's live handler
	handlerErr               error                    // the first (set by the reader goroutine before the count is read)
	observe                  func([]bpf.RingbufEvent) // sees every recorded batch (proc's cgroup namer)
	pending                  []pendingBatch
	lastLoss                 store.Loss
	lastEvents               uint64

	dropMu    sync.Mutex // perf drop counter cache
	perfDrops uint64
	dropRead  time.Time

	// progs are the programs whose skipped runs count against the stream
	// (streamPrograms); missMu guards the cache of their sum.
	progs    []*ebpf.Program
	missMu   sync.Mutex
	missed   uint64
	missRead time.Time

	// logMu orders the stream's records in the log with the loss counters
	// they carry: batches (reader goroutine) and loss points (session) are
	// appended under it, each with the counters raised to at least logged,
	// the highest already logged, so the log's counters never go down.
	logMu  sync.Mutex
	logged store.Loss
}

// nextLoss returns the counters for the stream's next record in the log
// and notes them as logged. Call with logMu held, and append under it.
func (st *streamState) nextLoss(exact bool) store.Loss {
	st.logged = st.logged.Max(st.loss(exact))
	return st.logged
}

// pendingBatch is a batch the writer took but has not committed yet: if a
// storage failure stops the writer first, it never will.
type pendingBatch struct {
	seq, events, bytes uint64
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
	l.UserDropped += st.abortDropped.Load()
	l.KernelMissed = st.kernelMissed(exact)
	return l
}
