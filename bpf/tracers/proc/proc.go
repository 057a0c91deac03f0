// Package proc is the built-in tracer of the process table: every
// recording's proc stream, from which replay and export tell who did what
// (Table resolves a pid at a moment to the process as it was then).
//
// The kernel side reports each new process (fork), each exec (new comm,
// filename, arguments) and each exit, with pid, tid, ppid, uid, comm,
// cgroup id and start time. When the recording starts, user space adds to
// the same stream a snapshot of the processes already alive (Snapshot,
// from /proc) and the paths of the cgroups they live in: taken after the
// kernel side is attached, so no process falls between; what both report
// is merged by the Table.
package proc

import (
	"errors"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "proc"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it when Event changes.
const EventType = "proc.Event"

// Stream names and maps.
const (
	StreamProc = "proc"
	MapEvents  = "proc_events"
	MapDrops   = "proc_drops"
	MapEmitted = "proc_emitted"
)

var attachPoints = []string{"sched_process_fork", "sched_process_exec", "sched_process_exit", "task_rename"}

// Tracer records the process table.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the proc tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamProc,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "proc_head",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "proc".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "the process table: fork, exec, exit, rename (pid, ppid, uid, comm, cgroup) and a snapshot of the processes alive at start"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	var out []string
	for _, a := range attachPoints {
		out = append(out, "tp_btf/"+a)
	}
	return out
}

// Supported checks for BTF and the four tracepoints.
func (t *Tracer) Supported() error {
	var errs []error
	for _, a := range attachPoints {
		errs = append(errs, tracers.CheckBTFTracepoint(a))
	}
	return errors.Join(errs...)
}

// Tracepoints returns the programs to attach, by tracepoint name (tp_btf).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{
		"sched_process_fork": {Required: true, Start: t.objs.ProcFork},
		"sched_process_exec": {Required: true, Start: t.objs.ProcExec},
		"sched_process_exit": {Required: true, Start: t.objs.ProcExit},
		"task_rename":        {Required: true, Start: t.objs.ProcRename},
	}
}

// IsStream reports whether a recorded stream (its tracer, name and event
// type, and whether a user object recorded it, as store.StreamInfo holds
// them) is a proc stream, whose events make
// the process table: the proc tracer's Go decoder decodes it
// (tracers.DecoderOf, the decision replay, export and summary take too). A
// stream the proc tracer recorded with an event type this build does not
// decode is not one: its events would be misread.
func IsStream(tracer, stream, eventType string, fromObject bool) bool {
	d, _ := tracers.DecoderOf(tracer, stream, eventType, fromObject)
	return d != nil && d.Tracer == Name
}
