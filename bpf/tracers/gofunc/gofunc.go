// Package gofunc is the built-in tracer of Go functions chosen by glob
// ("main.(*Server).Handle*"): an event at each entry and each exit, with
// the goroutine id, thread, CPU and, at the exit, the call's latency.
//
// It runs in processes that bpf.ProcessTracer instruments (a Go
// ProcessTracer with GoFields, which attaches GoProbes at each matching
// function's entry and at each of its return instructions). The goroutine
// id is read from the goroutine (g, in R14 on amd64, R28 on arm64) at the
// offset of runtime.g's goid that DWARF gives, per executable, or for a
// binary without DWARF (-ldflags=-w) the offset its Go release is known to
// use; a binary without symbols (-s) has its functions found in its Go
// function table (bpf/exeinfo). Position-independent executables
// (-buildmode=pie) are probed alike.
package gofunc

import (
	"debug/elf"
	"fmt"
	"os"
	"sync"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "gofunc"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType).
const EventType = "gofunc.Event"

// Stream name and maps.
const (
	StreamGofunc = "gofunc"
	MapEvents    = "go_events"
	MapDrops     = "go_drops"
	MapEmitted   = "go_emitted"
	// MapFuncs maps each probed instruction (executable inode, address)
	// to its function.
	MapFuncs = "go_funcs"
)

// The struct fields whose offsets the tracer needs from each executable's
// DWARF (bpf.ProcessTracer.GoFields): the goroutine's id, and the top of
// its stack (g.stack.hi), from which a call's depth on the stack is
// measured.
const (
	FieldGoid    = "runtime.g.goid"
	FieldGStack  = "runtime.g.stack"
	FieldStackHi = "runtime.stack.hi"
)

// UprobePMU is the file that exists when the kernel supports uprobes
// through perf events, which cilium/ebpf's uprobe links use.
const UprobePMU = "/sys/bus/event_source/devices/uprobe/type"

// Tracer records calls of Go functions.
type Tracer struct {
	tracers.Base
	objs bpfObjects

	mu     sync.Mutex
	funcs  []string
	nextID uint32
	// Funcs registered, by id, for Names.
	names map[uint32]string
}

var (
	_ tracers.ProcessInstrumenter = (*Tracer)(nil)
	_ bpf.OffsetsRegisterer       = (*Tracer)(nil)
)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the gofunc tracer (nothing is loaded yet). Choose its
// functions with SetFuncs.
func New(opts tracers.Options) *Tracer {
	t := &Tracer{names: map[uint32]string{}}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamGofunc,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		Struct:         "go_event",
		EventType:      EventType,
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// SetFuncs chooses the functions to trace, as globs of their symbol names
// (exeinfo.Glob: '*' matches any run of characters, so
// "main.(*Server).Handle*" matches the methods of *Server named Handle...).
func (t *Tracer) SetFuncs(globs []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.funcs = append([]string(nil), globs...)
}

// Funcs returns the globs SetFuncs chose.
func (t *Tracer) Funcs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.funcs...)
}

// Name returns "gofunc".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "entry and exit of chosen Go functions (--func GLOB): function, goroutine id, pid, tid, latency, cpu (176-byte events)"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	return []string{"uprobe/<Go function entry>", "uprobe/<each return instruction>"}
}

// Supported checks that the kernel has uprobes (their perf event PMU).
func (t *Tracer) Supported() error { return CheckUprobes() }

// CheckUprobes returns nil if the kernel supports uprobes through perf
// events, or an error saying they are missing.
func CheckUprobes() error {
	if _, err := os.Stat(UprobePMU); err != nil {
		return fmt.Errorf("the kernel has no uprobe PMU (%s): %w", UprobePMU, err)
	}
	return nil
}

// Tracepoints returns nil: the tracer's programs are attached to processes
// (GoProbes), by bpf.ProcessTracer.
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc { return nil }

// ProcessTracerType says that the tracer instruments Go executables.
func (t *Tracer) ProcessTracerType() bpf.ProcessTracerType { return bpf.Go }

// GoFields lists the fields whose offsets the tracer needs in each
// executable (bpf.ProcessTracer.GoFields).
func (t *Tracer) GoFields() []string { return []string{FieldGoid, FieldGStack, FieldStackHi} }

// GoProbes returns, for each glob, the entry and return programs
// (Required: a glob that matches nothing fails the executable).
func (t *Tracer) GoProbes() map[string][]*bpf.ProbeDesc {
	out := map[string][]*bpf.ProbeDesc{}
	for _, g := range t.Funcs() {
		out[g] = []*bpf.ProbeDesc{{Required: true, Start: t.objs.GoEntry, End: t.objs.GoExit}}
	}
	return out
}

// RegisterOffsets registers the executable's functions; see
// RegisterOffsetsErr, which bpf.ProcessTracer calls instead.
func (t *Tracer) RegisterOffsets(fi *bpf.FileInfo, offs *bpf.GoOffsets) {
	_ = t.RegisterOffsetsErr(fi, offs)
}

// RegisterOffsetsErr fills go_funcs with the address of the entry and of
// every return instruction of each function of offs that a glob matches,
// relative to the start of the executable's code, keyed by the
// executable's inode, and with the goid offset of offs. The probes find
// the same key from the instruction pointer minus the process's
// mm->start_code, so a position-independent executable, mapped at another
// address in each process, is probed alike.
func (t *Tracer) RegisterOffsetsErr(fi *bpf.FileInfo, offs *bpf.GoOffsets) error {
	path := fi.ProExeLink
	if path == "" {
		path = fi.CmdExePath
	}
	for _, f := range t.GoFields() {
		if _, ok := offs.Field[f]; !ok {
			return fmt.Errorf("gofunc: %s: no offset of %s", path, f)
		}
	}
	goidOff, hiOff := offs.Field[FieldGoid], offs.Field[FieldGStack]+offs.Field[FieldStackHi]
	m := t.objs.GoFuncs
	if m == nil {
		return fmt.Errorf("gofunc: %s: tracer not loaded", path)
	}
	ef, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("gofunc: %s: %w", path, err)
	}
	defer ef.Close()
	code, ok := codeStart(ef)
	if !ok {
		return fmt.Errorf("gofunc: %s: no executable loadable segment", path)
	}
	globs := t.Funcs()
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, fo := range offs.Funcs {
		if !matchAny(globs, name) {
			continue
		}
		t.nextID++
		id := t.nextID
		val := bpfGoFunc{Id: id, GoidOff: uint32(goidOff), StackHiOff: uint32(hiOff)}
		setName(&val.Name, name)
		for _, off := range append([]uint64{fo.Start}, fo.Returns...) {
			va, ok := vaddr(ef, off)
			if !ok {
				return fmt.Errorf("gofunc: %s: %s: file offset %#x is in no loadable segment", path, name, off)
			}
			key := bpfGoAddr{Ino: fi.Ino, Ip: va - code}
			if err := m.Put(&key, &val); err != nil {
				return fmt.Errorf("gofunc: %s: %s: registering %#x in %s: %w", path, name, va, MapFuncs, err)
			}
		}
		t.names[id] = name
	}
	return nil
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if exeinfo.Glob(g, name) {
			return true
		}
	}
	return false
}

// vaddr returns the virtual address at which the byte at file offset off
// of an executable is mapped.
func vaddr(ef *elf.File, off uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && off >= p.Off && off-p.Off < p.Filesz {
			return off - p.Off + p.Vaddr, true
		}
	}
	return 0, false
}

// codeStart returns the lowest address of the executable's executable
// loadable segments: where binfmt_elf starts mm->start_code, before it
// adds the load bias of a position-independent executable.
func codeStart(ef *elf.File) (uint64, bool) {
	start, ok := uint64(0), false
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && (!ok || p.Vaddr < start) {
			start, ok = p.Vaddr, true
		}
	}
	return start, ok
}

// setName copies name, cut to fit with its NUL, into dst.
func setName(dst *[nameLen]int8, name string) {
	if len(name) > nameLen-1 {
		name = name[:nameLen-1]
	}
	for i := 0; i < len(name); i++ {
		dst[i] = int8(name[i])
	}
}

// FuncName returns the name of the function registered with id, "" if
// none was.
func (t *Tracer) FuncName(id uint32) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.names[id]
}
