// Package tracers is the registry of ebpfrec's built-in tracers and the
// shape they share, so that the recorder, the replayer and the exporter use
// any of them without knowing it: its streams (which ring buffer or perf
// event array, which loss counters), its typed events and their decoder.
//
// Each tracer lives in its own package under bpf/tracers/<name> and
// registers itself in init; import bpf/tracers/all to register them all.
//
// A tracer's life, with plain cilium/ebpf:
//
//	t, _ := tracers.New("exec", tracers.Options{Filter: f})
//	_ = tracers.Load(t)          // t.Load(), then LoadAndAssign(t.BpfObjects(), MapReplacements)
//	links, _ := tracers.Attach(t) // every program of t.Tracepoints()
//	for _, s := range t.Streams() { m := t.Map(s.Map); ... read, t.Decode(s.Name, raw) ... }
//
// With bpf.Manager, which loads and attaches collections by name:
//
//	spec, _ := t.Load()
//	_ = m.LoadSpec(t.Name(), spec)
//	coll, _ := m.LoadCollection(t.Name(), &ebpf.CollectionOptions{MapReplacements: t.MapReplacements()})
//	_ = t.UseCollection(coll) // t.Map, t.Tracepoints, t.AllowPID now work on coll
//	for key, prog := range tracers.ProgramsByAttachPoint(spec) {
//		group, name, ok := strings.Cut(key, "/")
//		if !ok {
//			group, name = "", key
//		}
//		m.AttachTracepoint(t.Name(), prog, group, name) // optional points: see t.Tracepoints()[key].Required
//	}
package tracers

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
)

// StreamKind says how a stream reaches user space.
type StreamKind int

// Stream kinds.
const (
	Ringbuf StreamKind = iota // a BPF_MAP_TYPE_RINGBUF, read with bpf.RingbufReader
	Perfbuf                   // a BPF_MAP_TYPE_PERF_EVENT_ARRAY, read with bpf.PerfbufReader
)

// String names the kind of buffer ("ringbuf", "perfbuf").
func (k StreamKind) String() string {
	switch k {
	case Ringbuf:
		return "ringbuf"
	case Perfbuf:
		return "perf"
	}
	return fmt.Sprintf("StreamKind(%d)", int(k))
}

// MarshalText renders the kind as "ringbuf" or "perf" (in JSON too).
func (k StreamKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Stream is one output of a tracer: a ring buffer or perf event array of its
// BPF object and the events found in it.
type Stream struct {
	// Name names the stream in recordings and on the command line, e.g. "exec".
	Name string `json:"name"`
	// Map is the name of the ring buffer or perf event array in the spec.
	Map string `json:"map"`
	// Kind says which reader reads Map.
	Kind StreamKind `json:"kind"`
	// DropCounter is a per-CPU array map whose key 0 counts, per CPU, the
	// events the program failed to reserve (ring buffer) or output (perf:
	// every failed bpf_perf_event_output, including the ENOSPC failures
	// that perf also reports to the reader as lost samples).
	DropCounter string `json:"drop_counter"`
	// EmittedCounter is a per-CPU array map whose key 0 counts, per CPU,
	// the events the program tried to emit. For every stream, ring buffer
	// or perf: sum(emitted) = received + sum(drops). (For perf streams the
	// lost samples perf reports are a subset of the drops: do not add them.)
	EmittedCounter string `json:"emitted_counter"`
	// EventType names the Go type of the stream's events, e.g. "exec.Event".
	// Recordings store it. A layout grows only at its end, and Decode
	// reads every earlier layout by its size (see the tracer's
	// LayoutSizes); give the type a new name (e.g. "exec.Event/2") only for
	// a change that the size cannot tell, so that replay and export show
	// older recordings' events raw, saying why, instead of misreading them.
	EventType string `json:"event_type"`
	// Struct names the C struct the stream's programs write (its BTF is
	// in the tracer's object: bpf2go's -type keeps it there); the
	// recorder stores its layout with the stream (bpf/btflayout). For a
	// stream of several record types, the one every record starts with.
	Struct string `json:"struct,omitempty"`
	// Event is a zero value of that type (for schemas: see Fields).
	Event Event `json:"-"`
	// Decode decodes one raw event of the stream (see Decoder).
	Decode func(raw []byte) (Event, error) `json:"-"`
}

// Event is a decoded event of a built-in tracer: a Go struct with stable
// snake_case `json` and `parquet` tags on every field. replay prints it
// (text and JSON lines); analyze maps it to its own row types, which add
// the wall-clock time, stream, CPU and batch sequence.
type Event interface {
	// Tracer names the tracer that produced the event.
	Tracer() string
	// KernelTime is bpf_ktime_get_ns() (CLOCK_MONOTONIC) at the event.
	KernelTime() uint64
	// PID is the process (thread group id) the event belongs to; 0 if
	// the tracer could not know it (a tcp socket's owner).
	PID() uint32
	// Comm is the process's command name, "" if the event does not carry it.
	Comm() string
	// AppendText appends the event's own fields as one perf-script-like
	// line of key=value pairs (no newline), e.g. "filename=/bin/ls ppid=12 uid=0".
	AppendText(dst []byte) []byte
}

// AppendLine appends a complete one-line rendering of ev:
// "KTIME COMM PID TRACER: FIELDS" (an unknown comm or pid 0 as "-").
func AppendLine(dst []byte, ev Event) []byte {
	t := ev.KernelTime()
	pid := "-"
	if p := ev.PID(); p != 0 {
		pid = strconv.FormatUint(uint64(p), 10)
	}
	dst = fmt.Appendf(dst, "%d.%09d %s %s %s: ", t/1e9, t%1e9, orDash(ev.Comm()), pid, ev.Tracer())
	return ev.AppendText(dst)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Builtin is a built-in tracer.
type Builtin interface {
	bpf.Tracer
	// Name is the tracer's name on the command line, e.g. "exec".
	Name() string
	// Description says in one line what the tracer records.
	Description() string
	// Streams lists the tracer's outputs.
	Streams() []Stream
	// AttachPoints lists where the tracer attaches, for humans
	// (e.g. "tp_btf/sched_process_exec").
	AttachPoints() []string
	// Supported returns nil if this kernel can run the tracer, or an error
	// saying what is missing (a tracepoint, BTF, an unmounted tracefs).
	Supported() error
	// Variant says which build of the tracer's programs Load uses on this
	// kernel, and why (see Variant).
	Variant() VariantChoice
	// Decode decodes one raw event of the named stream. It never panics:
	// short or malformed input gives an error wrapping a bpf decoder error.
	Decode(stream string, raw []byte) (Event, error)
	// MapReplacements are the maps to pass as
	// ebpf.CollectionOptions.MapReplacements when loading the tracer: the
	// recording's shared filter maps (empty without a shared filter).
	MapReplacements() map[string]*ebpf.Map
	// UseCollection makes the tracer use a collection loaded from its spec
	// elsewhere (e.g. by bpf.Manager) instead of its own objects; the
	// collection keeps ownership of them.
	UseCollection(coll *ebpf.Collection) error
	// Map returns a map of the loaded object by its name in the spec (a
	// stream's Map, DropCounter or EmittedCounter), nil before load.
	Map(name string) *ebpf.Map
	// Close releases the loaded objects and every closer added.
	Close() error
}

// ProcessInstrumenter is a Builtin that records what chosen processes do
// in user space: its programs are attached to processes by a
// bpf.ProcessTracer (through its GoProbes or UProbes), not to the kernel's
// tracepoints, so a recorder runs it only for the processes it is given.
type ProcessInstrumenter interface {
	Builtin
	// ProcessTracerType says which kind of executable the tracer
	// instruments (bpf.Go for Go functions, bpf.Generic for C libraries).
	ProcessTracerType() bpf.ProcessTracerType
	// GoFields lists the struct fields (bpf.ProcessTracer.GoFields) whose
	// offsets the tracer needs from a Go executable.
	GoFields() []string
}

// InstrumentsProcesses reports whether t is a ProcessInstrumenter.
func InstrumentsProcesses(t Builtin) bool {
	_, ok := t.(ProcessInstrumenter)
	return ok
}

// DefaultWakeupEvery is the default of Options.WakeupEvery: under a getpid
// storm on a 2-CPU machine, 256 recorded about 1.4 times the rate of 64
// and 8 times that of waking on every event; the reader's flush deadline
// bounds the latency of the events in between.
const DefaultWakeupEvery = 256

// Options configure a built-in tracer.
type Options struct {
	// Filter is the recording's shared process filter (common.NewFilter).
	// Without one, the tracer uses its own filter maps, once loaded.
	Filter *common.Filter
	// WakeupEvery forces a reader wakeup every WakeupEvery events per CPU
	// (ring buffer tracers); the others are submitted without wakeup and the
	// reader's flush deadline bounds their latency. 0 means
	// DefaultWakeupEvery; 1 wakes the reader on every event.
	WakeupEvery uint32
	// RingbufSize overrides the size in bytes of ring buffer streams (a
	// power of two, multiple of the page size); 0 keeps the default.
	RingbufSize uint32
	// Variant names the variant of the tracer's programs to load (see
	// Variant); "" picks the first this kernel can run. Tests use it to run
	// every variant the kernel allows.
	Variant string
}

// Constructor makes a tracer.
type Constructor func(Options) (Builtin, error)

var (
	regMu    sync.RWMutex
	registry = map[string]Constructor{}
)

// Register makes a tracer available under name. It panics if name is
// taken, as it is called from init.
func Register(name string, c Constructor) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, ok := registry[name]; ok {
		panic("tracers: " + name + " registered twice")
	}
	registry[name] = c
}

// Names returns the registered tracers' names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownTracer is wrapped by the error New returns for an unknown name.
var ErrUnknownTracer = errors.New("unknown tracer")

// UnknownTracerError names an unknown tracer and lists the known ones.
type UnknownTracerError struct {
	Name  string
	Known []string
}

// Error names the tracer and lists the registered ones.
func (e *UnknownTracerError) Error() string {
	return fmt.Sprintf("unknown tracer %q (known tracers: %s)", e.Name, strings.Join(e.Known, ", "))
}

// Unwrap returns ErrUnknownTracer.
func (e *UnknownTracerError) Unwrap() error { return ErrUnknownTracer }

// New makes the tracer called name. It needs no privileges: nothing is
// loaded until Load.
func New(name string, opts Options) (Builtin, error) {
	regMu.RLock()
	c, ok := registry[name]
	regMu.RUnlock()
	if !ok {
		return nil, &UnknownTracerError{Name: name, Known: Names()}
	}
	return c(opts)
}

// All makes every registered tracer, in Names order.
func All(opts Options) ([]Builtin, error) {
	var out []Builtin
	for _, n := range Names() {
		t, err := New(n, opts)
		if err != nil {
			return nil, fmt.Errorf("tracer %s: %w", n, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Field describes one field of an event type.
type Field struct {
	Name string `json:"name"` // the json/parquet name
	Type string `json:"type"` // the Go type
	Doc  string `json:"doc,omitempty"`
}

// Fields lists the fields of an event type (from a value such as
// Stream.Event), by their json tags, with the `doc` tag as documentation.
func Fields(ev Event) []Field {
	t := reflect.TypeOf(ev)
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, Field{Name: name, Type: f.Type.String(), Doc: f.Tag.Get("doc")})
	}
	return out
}

// FieldValues returns the fields of ev by their json names (for bpf.Span).
func FieldValues(ev Event) map[string]any {
	v := reflect.ValueOf(ev)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	t := v.Type()
	out := make(map[string]any, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = v.Field(i).Interface()
	}
	return out
}

// CPU is the CPU an event happened on, as its BPF program saw it
// (bpf_get_smp_processor_id()). Ring buffers, unlike perf buffers, do not
// say which CPU wrote an event, so ring buffer tracers record it in the
// event. UnknownCPU marks an event of an earlier layout that did not.
type CPU int32

// UnknownCPU is the CPU of an event that does not carry one.
const UnknownCPU CPU = -1

// MarshalJSON renders the CPU as a number, UnknownCPU as null.
func (c CPU) MarshalJSON() ([]byte, error) {
	if c < 0 {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, int64(c), 10), nil
}

// CPUEvent is an Event that carries the CPU it happened on: the events of
// every ring buffer tracer. Replay's text and export's cpu column use it
// where the recorded buffer gives no CPU (see EventCPU).
type CPUEvent interface {
	Event
	// EventCPU returns the CPU the event happened on, -1 if the event (of
	// an earlier layout) does not say.
	EventCPU() int
}

// EventCPU returns the CPU of an event that the buffer it was read from
// placed on bufCPU (-1 for a ring buffer, which does not say): bufCPU if
// known, else the CPU the event carries (CPUEvent), else -1.
func EventCPU(ev Event, bufCPU int) int {
	if bufCPU >= 0 {
		return bufCPU
	}
	if c, ok := ev.(CPUEvent); ok {
		return c.EventCPU()
	}
	return -1
}
