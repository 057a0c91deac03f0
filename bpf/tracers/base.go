package tracers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
)

// Base implements the parts of bpf.Tracer and Builtin that are the same
// for every built-in tracer: Load, Decode, Run, the filter and the life
// cycle (and the methods that do not apply to them, which return empty
// values). A tracer embeds it, calls Init from its constructor, and adds
// its own Name, Description, AttachPoints, Supported and Tracepoints.
type Base struct {
	self     Builtin // the tracer that embeds the Base
	opts     Options
	objs     io.Closer // the tracer's bpf2go objects (a pointer)
	variants []Variant
	streams  []Stream

	choiceOnce sync.Once
	choice     VariantChoice

	mu      sync.Mutex
	closers []io.Closer
	libs    map[uint64]int
	own     *common.Filter // over the tracer's own maps, when Options.Filter is nil
	pending []func(*common.Filter) error
	ferr    error
	// borrowed: the objects came from UseCollection; their owner closes them.
	borrowed bool
	// afterLoad, if set (SetAfterLoad), runs once the objects are loaded.
	afterLoad func() error
}

// SetAfterLoad sets a function that Load and UseCollection run once the
// tracer's objects are loaded (after the filter's queued operations), e.g.
// to fill a map with what exists before the recording; its error fails the
// load.
func (b *Base) SetAfterLoad(f func() error) { b.afterLoad = f }

// loaded runs what follows a load: the queued filter operations, then the
// tracer's afterLoad.
func (b *Base) loaded() error {
	if err := b.applyPending(); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if b.afterLoad != nil {
		return b.afterLoad()
	}
	return nil
}

// Init sets up the Base of self, the tracer that embeds it: its options,
// the bpf2go objects it loads into (a pointer to its generated
// xxxObjects), the bpf2go function that loads its spec, and its streams
// (each with its Decode). A tracer with several builds of its programs
// adds them with SetVariants.
func (b *Base) Init(self Builtin, opts Options, objs io.Closer, loadSpec func() (*ebpf.CollectionSpec, error), streams []Stream) {
	if opts.WakeupEvery == 0 {
		opts.WakeupEvery = DefaultWakeupEvery
	}
	b.self = self
	b.opts = opts
	b.objs = objs
	b.variants = []Variant{{Name: "default", Spec: loadSpec}}
	b.streams = streams
}

// Variants lists the tracer's variants, newest first.
func (b *Base) Variants() []Variant { return append([]Variant(nil), b.variants...) }

// SetVariants replaces the single build given to Init by vs, newest
// first (see Variant).
func (b *Base) SetVariants(vs ...Variant) { b.variants = vs }

// Variant says which variant Load uses on this kernel (Options.Variant, or
// the first whose check passes) and why the ones before it were passed
// over. It probes the kernel once.
func (b *Base) Variant() VariantChoice {
	b.choiceOnce.Do(func() { b.choice = chooseVariant(b.self.Name(), b.variants, b.opts.Variant) })
	return b.choice
}

// Load returns the spec of the tracer's variant for this kernel with its
// options applied.
func (b *Base) Load() (*ebpf.CollectionSpec, error) {
	ch := b.Variant()
	if ch.Err != nil {
		return nil, ch.Err
	}
	spec, err := ch.spec()
	if err != nil {
		return nil, fmt.Errorf("variant %s: %w", ch.Name, err)
	}
	return b.PrepareSpec(spec, b.Constants())
}

// Decode decodes an event of the named stream with the stream's Decode.
func (b *Base) Decode(stream string, raw []byte) (Event, error) {
	for i := range b.streams {
		if st := &b.streams[i]; st.Name == stream && st.Decode != nil {
			return st.Decode(raw)
		}
	}
	return nil, UnknownStream(b.self.Name(), stream)
}

// Run reads and decodes the tracer's events into out until ctx ends.
func (b *Base) Run(ctx context.Context, ectx *bpf.EventContext, out *bpf.Queue[[]bpf.Span]) {
	Run(ctx, b.self, ectx, out)
}

// Decoder makes a Stream.Decode of a tracer's decoder into *E: each call
// returns a new *E.
func Decoder[E any, P interface {
	*E
	Event
}](decode func(raw []byte, ev P) error) func([]byte) (Event, error) {
	return func(raw []byte) (Event, error) {
		ev := P(new(E))
		if err := decode(raw, ev); err != nil {
			return nil, err
		}
		return ev, nil
	}
}

// Options returns the tracer's options (with defaults filled in).
func (b *Base) Options() Options { return b.opts }

// BpfObjects returns the pointer to the tracer's bpf2go objects, for
// CollectionSpec.LoadAndAssign.
func (b *Base) BpfObjects() any { return b.objs }

// Streams lists the tracer's outputs.
func (b *Base) Streams() []Stream { return append([]Stream(nil), b.streams...) }

// PrepareSpec applies the options to a freshly loaded spec: the constants
// (so a plain LoadAndAssign gets them too) and the ring buffer size.
func (b *Base) PrepareSpec(spec *ebpf.CollectionSpec, constants map[string]any) (*ebpf.CollectionSpec, error) {
	for name, v := range constants {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("constant %s not in the spec", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set constant %s: %w", name, err)
		}
	}
	if b.opts.RingbufSize != 0 {
		for _, s := range b.streams {
			if s.Kind != Ringbuf {
				continue
			}
			ms, ok := spec.Maps[s.Map]
			if !ok {
				return nil, fmt.Errorf("stream %s: map %s not in the spec", s.Name, s.Map)
			}
			ms.MaxEntries = b.opts.RingbufSize
		}
	}
	return spec, nil
}

// Constants returns the constants of every built-in tracer: wakeup_every.
func (b *Base) Constants() map[string]any {
	return map[string]any{"wakeup_every": b.opts.WakeupEvery}
}

// MapReplacements returns the shared filter's maps, if any.
func (b *Base) MapReplacements() map[string]*ebpf.Map {
	if b.opts.Filter == nil {
		return map[string]*ebpf.Map{}
	}
	return b.opts.Filter.MapReplacements()
}

// UseCollection makes the tracer use the maps and programs of coll, a
// collection loaded from its spec by someone else (e.g. bpf.Manager's
// LoadCollection, with MapReplacements), instead of loading its own: after
// it, Map, Tracepoints, AllowPID and BlockPID work on coll's objects. The
// collection keeps ownership: Close does not close them.
func (b *Base) UseCollection(coll *ebpf.Collection) error {
	if coll == nil {
		return errors.New("UseCollection: nil collection")
	}
	v := reflect.ValueOf(b.objs)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return errors.New("UseCollection: the tracer has no objects to fill")
	}
	if err := fillObjects(v.Elem(), coll); err != nil {
		return err
	}
	b.mu.Lock()
	b.borrowed = true
	b.mu.Unlock()
	return b.loaded()
}

func fillObjects(v reflect.Value, coll *ebpf.Collection) error {
	t := v.Type()
	mapType := reflect.TypeOf((*ebpf.Map)(nil))
	progType := reflect.TypeOf((*ebpf.Program)(nil))
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := fillObjects(v.Field(i), coll); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("ebpf")
		if name == "" || !f.IsExported() {
			continue
		}
		switch f.Type {
		case mapType:
			m, ok := coll.Maps[name]
			if !ok {
				return fmt.Errorf("UseCollection: map %s not in the collection", name)
			}
			v.Field(i).Set(reflect.ValueOf(m))
		case progType:
			p, ok := coll.Programs[name]
			if !ok {
				return fmt.Errorf("UseCollection: program %s not in the collection", name)
			}
			v.Field(i).Set(reflect.ValueOf(p))
		}
	}
	return nil
}

// Map returns a map of the loaded objects by its name in the spec.
func (b *Base) Map(name string) *ebpf.Map {
	if b.objs == nil {
		return nil
	}
	return findMap(reflect.ValueOf(b.objs), name)
}

func findMap(v reflect.Value, name string) *ebpf.Map {
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
	mapType := reflect.TypeOf((*ebpf.Map)(nil))
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			if m := findMap(v.Field(i), name); m != nil {
				return m
			}
			continue
		}
		if f.Type == mapType && f.Tag.Get("ebpf") == name && f.IsExported() {
			m, _ := v.Field(i).Interface().(*ebpf.Map)
			return m
		}
	}
	return nil
}

// filter returns the filter AllowPID and BlockPID act on: the shared one,
// or one over the tracer's own maps once loaded (nil before).
func (b *Base) filterLocked() *common.Filter {
	if b.opts.Filter != nil {
		return b.opts.Filter
	}
	if b.own != nil {
		return b.own
	}
	f, err := common.WrapMaps(b.Map(common.MapFilterConfig), b.Map(common.MapPIDAllow), b.Map(common.MapPIDBlock), b.Map(common.MapCommAllow))
	if err != nil {
		return nil
	}
	b.own = f
	for _, op := range b.pending {
		if err := op(f); err != nil {
			b.ferr = errors.Join(b.ferr, err)
		}
	}
	b.pending = nil
	return f
}

func (b *Base) filterOp(op func(*common.Filter) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.filterLocked()
	if f == nil {
		b.pending = append(b.pending, op)
		return
	}
	if err := op(f); err != nil {
		slog.Warn("tracers: filter update failed", "error", err)
		b.ferr = errors.Join(b.ferr, err)
	}
}

// AllowPID selects process pid (in the initial pid namespace; ns and attrs
// are not used) through the shared filter, or the tracer's own filter maps.
// Before load, without a shared filter, it is applied at the next call
// after load (Load of this package does it).
func (b *Base) AllowPID(pid, _ uint32, _ *bpf.ServiceAttrs) {
	b.filterOp(func(f *common.Filter) error { return f.AllowPID(pid) })
}

// BlockPID deselects process pid, as AllowPID selects it.
func (b *Base) BlockPID(pid, _ uint32) {
	b.filterOp(func(f *common.Filter) error { return f.BlockPID(pid) })
}

// ForgetPID withdraws the allowance AllowPID gave process pid, blocking
// nothing (common.Filter.ForgetPID); ProcessTracer.Release calls it.
func (b *Base) ForgetPID(pid, _ uint32) {
	b.filterOp(func(f *common.Filter) error { return f.ForgetPID(pid) })
}

// AllowComm selects the processes named comm, as AllowPID selects pids.
func (b *Base) AllowComm(comm string) {
	b.filterOp(func(f *common.Filter) error { return f.AllowComm(comm) })
}

// FilterErr returns the errors of filter updates so far.
func (b *Base) FilterErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ferr
}

// applyPending applies filter operations queued before load.
func (b *Base) applyPending() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.filterLocked()
	return b.ferr
}

// AddCloser adds closers that Close closes.
func (b *Base) AddCloser(c ...io.Closer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closers = append(b.closers, c...)
}

// Close closes the closers (last added first) and the loaded objects.
func (b *Base) Close() error {
	b.mu.Lock()
	cs := b.closers
	b.closers = nil
	b.own = nil
	borrowed := b.borrowed
	b.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		errs = append(errs, cs[i].Close())
	}
	if b.objs != nil && !borrowed {
		errs = append(errs, b.objs.Close())
	}
	return errors.Join(errs...)
}

// SetupTailCalls does nothing: built-in tracers use no tail calls.
func (b *Base) SetupTailCalls() {}

// KProbes returns nil: built-in tracers use tracepoints only.
func (b *Base) KProbes() map[string]bpf.ProbeDesc { return nil }

// GoProbes returns nil.
func (b *Base) GoProbes() map[string][]*bpf.ProbeDesc { return nil }

// UProbes returns nil.
func (b *Base) UProbes() map[string]map[string][]*bpf.ProbeDesc { return nil }

// SocketFilters returns nil.
func (b *Base) SocketFilters() []*ebpf.Program { return nil }

// SockMsgs returns nil.
func (b *Base) SockMsgs() []bpf.SockMsg { return nil }

// SockOps returns nil.
func (b *Base) SockOps() []bpf.SockOps { return nil }

// Iters returns nil.
func (b *Base) Iters() []*bpf.Iter { return nil }

// RecordInstrumentedLib remembers a library's closers (unused by built-in
// tracers, kept for the interface).
func (b *Base) RecordInstrumentedLib(ino uint64, closers []io.Closer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.libs == nil {
		b.libs = map[uint64]int{}
	}
	b.libs[ino]++
	b.closers = append(b.closers, closers...)
}

// AddInstrumentedLibRef counts one more user of a library.
func (b *Base) AddInstrumentedLibRef(ino uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.libs == nil {
		b.libs = map[uint64]int{}
	}
	b.libs[ino]++
}

// AlreadyInstrumentedLib reports whether a library was recorded.
func (b *Base) AlreadyInstrumentedLib(ino uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.libs[ino] > 0
}

// UnlinkInstrumentedLib counts one user of a library less.
func (b *Base) UnlinkInstrumentedLib(ino uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.libs[ino] > 0 {
		b.libs[ino]--
	}
}

// RegisterOffsets does nothing: built-in tracers use no Go offsets.
func (b *Base) RegisterOffsets(*bpf.FileInfo, *bpf.GoOffsets) {}

// ProcessBinary does nothing.
func (b *Base) ProcessBinary(*bpf.FileInfo) {}

// Required returns true: a built-in tracer that was asked for must load.
func (b *Base) Required() bool { return true }

// Load loads t's spec into its bpf2go objects with its map replacements
// (the shared filter) and applies filter calls made before load. The
// caller attaches it (Attach) and finally closes it (t.Close).
func Load(t Builtin) error {
	spec, err := t.Load() // Load applies the constants (PrepareSpec)
	if err != nil {
		return fmt.Errorf("tracer %s: %w", t.Name(), err)
	}
	if err := spec.LoadAndAssign(t.BpfObjects(), &ebpf.CollectionOptions{MapReplacements: t.MapReplacements()}); err != nil {
		return fmt.Errorf("tracer %s: load: %w", t.Name(), err)
	}
	if p, ok := t.(interface{ loaded() error }); ok {
		if err := p.loaded(); err != nil {
			return fmt.Errorf("tracer %s: %w", t.Name(), err)
		}
	}
	return nil
}

// ReadCounter sums key 0 of a per-CPU counter map (a stream's DropCounter
// or EmittedCounter) over all CPUs.
func ReadCounter(m *ebpf.Map) (uint64, error) {
	if m == nil {
		return 0, errors.New("counter map not loaded")
	}
	var zero uint32
	var per []uint64
	if err := m.Lookup(&zero, &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// StreamByName returns t's stream called name.
func StreamByName(t Builtin, name string) (Stream, bool) {
	for _, s := range t.Streams() {
		if s.Name == name {
			return s, true
		}
	}
	return Stream{}, false
}

// UnknownStream is the error of Decode for a stream the tracer lacks.
func UnknownStream(tracer, stream string) error {
	return fmt.Errorf("tracer %s has no stream %q", tracer, stream)
}

// RecursionMisses sums, over t's tracepoint programs, the runs the kernel
// skipped because a BPF program was already running on that CPU (e.g. a
// tracepoint hit in an interrupt while another tracing program ran). Such
// events never reach the program, so no stream counter sees them: the
// recorder reports this figure beside the drops.
func RecursionMisses(t bpf.KprobesTracer) (uint64, error) {
	var n uint64
	for key, pd := range t.Tracepoints() {
		for _, p := range []*ebpf.Program{pd.Start, pd.End} {
			if p == nil {
				continue
			}
			st, err := p.Stats()
			if err != nil {
				return n, fmt.Errorf("program at %s: stats: %w", key, err)
			}
			n += st.RecursionMisses
		}
	}
	return n, nil
}
