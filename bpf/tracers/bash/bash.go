// Package bash is the built-in tracer of the command lines that
// interactive bash reads: a uretprobe on readline, in the processes that
// bpf.ProcessTracer instruments (bash itself, which links readline
// statically on Debian, or libreadline; one attachment per file, shared by
// every process that maps it). A uretprobe is safe here: bash is C.
package bash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "bash"

// EventType names the layout of the tracer's events in recordings.
const EventType = "bash.Event"

// Stream name and maps.
const (
	StreamBash = "bash"
	MapEvents  = "bash_events"
	MapDrops   = "bash_drops"
	MapEmitted = "bash_emitted"
)

// Function is the function probed; Modules the files that may hold it,
// as bpf.ProcessTracer finds them among a process's mapped files.
const Function = "readline"

// Modules are bash's executable and the readline library.
var Modules = []string{"bash", "libreadline.so"}

// Tracer records the lines interactive bash reads.
type Tracer struct {
	tracers.Base
	objs bpfObjects
	libs bpf.InstrumentedLibs
}

var _ tracers.ProcessInstrumenter = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the bash tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamBash,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		Struct:         "bash_event",
		EventType:      EventType,
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "bash".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "command lines read by interactive bash (readline's result): line, pid, tid, uid, cpu (512-byte events)"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	return []string{"uretprobe/bash:readline", "uretprobe/libreadline.so:readline"}
}

// Supported checks for uprobes and for a bash on this host whose
// readline can be probed (its own symbol, or libreadline's).
func (t *Tracer) Supported() error {
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err != nil {
		return fmt.Errorf("the kernel has no uprobe PMU: %w", err)
	}
	path, err := exec.LookPath("bash")
	if err != nil {
		return fmt.Errorf("no bash on this host: %w", err)
	}
	f, err := exeinfo.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Symbol(Function); err != nil {
		if !errors.Is(err, exeinfo.ErrNoSymbol) {
			return err
		}
		return fmt.Errorf("%s has no readline symbol (it may use libreadline, which is probed where a process maps it): %w", path, err)
	}
	return nil
}

// Tracepoints returns nil: the program is attached to the processes
// bpf.ProcessTracer instruments (UProbes).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc { return nil }

// ProcessTracerType says that the tracer instruments any executable.
func (t *Tracer) ProcessTracerType() bpf.ProcessTracerType { return bpf.Generic }

// GoFields returns nil.
func (t *Tracer) GoFields() []string { return nil }

// UProbes returns readline's return program for bash and libreadline
// (whichever the process maps).
func (t *Tracer) UProbes() map[string]map[string][]*bpf.ProbeDesc {
	out := map[string]map[string][]*bpf.ProbeDesc{}
	for _, m := range Modules {
		out[m] = map[string][]*bpf.ProbeDesc{Function: {{Required: true, End: t.objs.BashReadline}}}
	}
	return out
}

// RecordInstrumentedLib records a file's probes, by its first user.
func (t *Tracer) RecordInstrumentedLib(key uint64, closers []io.Closer) {
	t.libs.RecordInstrumentedLib(key, closers)
}

// AddInstrumentedLibRef counts one more user of a file.
func (t *Tracer) AddInstrumentedLibRef(key uint64) { t.libs.AddInstrumentedLibRef(key) }

// AlreadyInstrumentedLib reports whether a file is instrumented.
func (t *Tracer) AlreadyInstrumentedLib(key uint64) bool { return t.libs.AlreadyInstrumentedLib(key) }

// UnlinkInstrumentedLib counts one user of a file less, and detaches its
// probes with the last.
func (t *Tracer) UnlinkInstrumentedLib(key uint64) { t.libs.UnlinkInstrumentedLib(key) }

// LibRefs returns how many processes use the file key.
func (t *Tracer) LibRefs(key uint64) int { return t.libs.LibRefs(key) }

// Close detaches every file's probes and closes the tracer.
func (t *Tracer) Close() error {
	return errors.Join(t.libs.Close(), t.Base.Close())
}
