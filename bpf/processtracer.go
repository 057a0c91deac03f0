package bpf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// ProcessTracerType says which kind of executable a ProcessTracer
// instruments.
type ProcessTracerType int

// Kinds of ProcessTracer.
const (
	Go = ProcessTracerType(iota)
	Generic
)

// String names the type ("go", "generic").
func (t ProcessTracerType) String() string {
	switch t {
	case Go:
		return "go"
	case Generic:
		return "generic"
	}
	return fmt.Sprintf("ProcessTracerType(%d)", int(t))
}

// instrumenter is what instrumenting one executable file left behind: the
// links and other resources to release once no process of that file is
// traced any more, and how many processes use them.
type instrumenter struct {
	closers []io.Closer
	refs    int
	offsets *GoOffsets // what inspecting a Go executable found
}

// ProcessTracer instruments an executable with eBPF and provides the eBPF
// readers that will forward the traces to later stages in the pipeline.
//
// Programs are the tracers run for the executable. Instrumentables holds, by
// the executable's FileKey (its inode, with its device mixed in when
// known), the resources of each instrumented file; use Instrument and
// Release, or AddInstrumented / UnlinkInstrumented / Close, rather than
// touching the map, which they guard with a lock.
type ProcessTracer struct {
	Programs        []Tracer
	Type            ProcessTracerType
	Instrumentables map[uint64]*instrumenter
	// GoFields are the struct fields whose offsets Instrument reads from a
	// Go executable's DWARF for the programs' RegisterOffsets, as
	// "TYPE.FIELD" ("runtime.g.goid"); a missing one fails the executable.
	GoFields []string

	instMu sync.Mutex // serializes Instrument and Release
	closed bool       // Close was called (under instMu)
	mu     sync.Mutex
	log    *slog.Logger
	procs  map[int32]*procState // instrumented processes, by PID
	// held are the library references InstrumentFile and
	// InstrumentLibraries took for processes not yet running; Close
	// drops them.
	held []libRef
}

// NewProcessTracer returns a ProcessTracer of type t running programs.
// log may be nil.
func NewProcessTracer(t ProcessTracerType, log *slog.Logger, programs ...Tracer) *ProcessTracer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProcessTracer{
		Programs:        programs,
		Type:            t,
		Instrumentables: make(map[uint64]*instrumenter),
		log:             log,
	}
}

func (pt *ProcessTracer) logger() *slog.Logger {
	if pt.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return pt.log
}

// AllowPID tells every program to report the process pid in PID namespace
// ns; attrs is shared by the process's children.
func (pt *ProcessTracer) AllowPID(pid, ns uint32, attrs *ServiceAttrs) {
	for _, p := range pt.Programs {
		p.AllowPID(pid, ns, attrs)
	}
}

// BlockPID tells every program to stop reporting the process pid in PID
// namespace ns.
func (pt *ProcessTracer) BlockPID(pid, ns uint32) {
	for _, p := range pt.Programs {
		p.BlockPID(pid, ns)
	}
}

// PIDForgetter is a Tracer that can withdraw the allowance AllowPID gave
// a process without blocking its pid (which a later process may reuse).
// Release uses it where a program has it, BlockPID otherwise.
type PIDForgetter interface {
	ForgetPID(pid, ns uint32)
}

// ForgetPID tells every program to stop reporting process pid in PID
// namespace ns as AllowPID asked, without blocking the pid: through
// PIDForgetter where a program has it, else BlockPID.
func (pt *ProcessTracer) ForgetPID(pid, ns uint32) {
	for _, p := range pt.Programs {
		if f, ok := p.(PIDForgetter); ok {
			f.ForgetPID(pid, ns)
		} else {
			p.BlockPID(pid, ns)
		}
	}
}

// AddInstrumented records that the executable with inode ino is
// instrumented, with closers to release when it is no longer. Calling it
// again for the same inode (another process of the same file) adds a
// reference and the closers, if any.
func (pt *ProcessTracer) AddInstrumented(ino uint64, closers ...io.Closer) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.Instrumentables == nil {
		pt.Instrumentables = make(map[uint64]*instrumenter)
	}
	in := pt.Instrumentables[ino]
	if in == nil {
		in = &instrumenter{}
		pt.Instrumentables[ino] = in
	}
	in.refs++
	in.closers = append(in.closers, closers...)
}

// IsInstrumented reports whether the executable with inode ino is
// instrumented.
func (pt *ProcessTracer) IsInstrumented(ino uint64) bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	_, ok := pt.Instrumentables[ino]
	return ok
}

// UnlinkInstrumented drops one reference to the executable with inode ino;
// with the last one its closers are closed, in reverse order. Unknown
// inodes are ignored.
func (pt *ProcessTracer) UnlinkInstrumented(ino uint64) error {
	pt.mu.Lock()
	in := pt.Instrumentables[ino]
	if in == nil {
		pt.mu.Unlock()
		return nil
	}
	in.refs--
	if in.refs > 0 {
		pt.mu.Unlock()
		return nil
	}
	delete(pt.Instrumentables, ino)
	pt.mu.Unlock()
	return closeReverse(in.closers)
}

// Close releases every instrumented process (ReleaseAll) and the library
// references taken for processes not yet running (InstrumentFile,
// InstrumentLibraries), so that a library's probes are detached with its
// last reference, then the resources of every instrumented executable.
// Instrument, InstrumentFile and InstrumentLibraries then return
// ErrTracerClosed; Close may be called again.
func (pt *ProcessTracer) Close() error {
	// The processes' and the held library references first: a library's
	// probes are detached with its last reference, and the libraries
	// belong to the programs, which outlive this.
	errs := []error{pt.ReleaseAll()}
	pt.instMu.Lock()
	// Probes attached after this would be held by nothing.
	pt.closed = true
	pt.mu.Lock()
	held := pt.held
	pt.held = nil
	ins := pt.Instrumentables
	pt.Instrumentables = make(map[uint64]*instrumenter)
	pt.procs = nil
	pt.mu.Unlock()
	pt.instMu.Unlock()
	for _, r := range held {
		r.prog.UnlinkInstrumentedLib(r.key)
	}
	for ino, in := range ins {
		if err := closeReverse(in.closers); err != nil {
			pt.logger().Debug("releasing instrumented executable", "ino", ino, "error", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func closeReverse(cs []io.Closer) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Instrumentable is an executable (one or more processes) selected for
// instrumentation, and what instrumenting it produced.
type Instrumentable struct {
	Type                 InstrumentableType
	InstrumentationError error
	// in some runtimes, like python gunicorn, we need to allow
	// tracing both the parent pid and all of its children pid
	ChildPids []uint32
	FileInfo  *FileInfo
	Offsets   *GoOffsets
	Tracer    *ProcessTracer
	// LogEnricherEnabled says whether log lines of the process are enriched
	// with trace context.
	LogEnricherEnabled bool
}

// CopyToServiceAttributes copies the executable's type and child PIDs into
// its service attributes (FileInfo.Service). The child PIDs are copied, not
// shared. It does nothing if ie or ie.FileInfo is nil.
func (ie *Instrumentable) CopyToServiceAttributes() {
	if ie == nil || ie.FileInfo == nil {
		return
	}
	ie.FileInfo.Service.Type = ie.Type
	if ie.ChildPids == nil {
		ie.FileInfo.Service.ChildPIDs = nil
		return
	}
	ie.FileInfo.Service.ChildPIDs = append([]uint32(nil), ie.ChildPids...)
}
