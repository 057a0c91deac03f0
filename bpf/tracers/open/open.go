// Package open is the built-in tracer of file opens through the openat
// family (open, creat, openat, openat2): the syscall-entry tracepoints save
// the arguments in a hash keyed by thread, the exit tracepoints emit one
// event with the result, so every event pairs a path with its outcome.
package open

import (
	"errors"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "open"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it only for a change of the layout that
// its size does not tell (Decode reads the earlier layouts by size).
const EventType = "open.Event"

// Stream name and maps.
const (
	StreamOpen = "open"
	MapEvents  = "open_events"
	MapDrops   = "open_drops"
	MapEmitted = "open_emitted"
)

var syscallNames = []string{"openat", "openat2", "open", "creat"}

// Tracer records file opens.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the open tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamOpen,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "open_event",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "open".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "file opens (open, creat, openat, openat2): pid, comm, path, flags, mode, result, latency"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	var out []string
	for _, n := range syscallNames {
		out = append(out, "tracepoint/syscalls/sys_enter_"+n, "tracepoint/syscalls/sys_exit_"+n)
	}
	return out
}

// Supported checks that the syscall tracepoints exist (tracefs mounted,
// CONFIG_FTRACE_SYSCALLS). openat is required; the others are used where
// they exist.
func (t *Tracer) Supported() error {
	var errs []error
	for _, dir := range []string{"sys_enter_openat", "sys_exit_openat"} {
		errs = append(errs, tracers.CheckTracepoint("syscalls", dir))
	}
	return errors.Join(errs...)
}

// Tracepoints returns the programs to attach, keyed "syscalls/NAME". The
// openat pair is required; open, creat and openat2 are optional (not every
// architecture has open and creat).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	o := &t.objs
	return map[string]bpf.ProbeDesc{
		"syscalls/sys_enter_openat":  {Required: true, Start: o.OpenEnterOpenat},
		"syscalls/sys_exit_openat":   {Required: true, Start: o.OpenExitOpenat},
		"syscalls/sys_enter_openat2": {Start: o.OpenEnterOpenat2},
		"syscalls/sys_exit_openat2":  {Start: o.OpenExitOpenat2},
		"syscalls/sys_enter_open":    {Start: o.OpenEnterOpen},
		"syscalls/sys_exit_open":     {Start: o.OpenExitOpen},
		"syscalls/sys_enter_creat":   {Start: o.OpenEnterCreat},
		"syscalls/sys_exit_creat":    {Start: o.OpenExitCreat},
	}
}
