// Package exec is the built-in tracer of process executions: one event per
// successful execve/execveat, from the sched_process_exec BTF tracepoint.
package exec

import (
	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "exec"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it only for a change of the layout that
// its size does not tell (Decode reads the earlier layouts by size).
const EventType = "exec.Event"

// Stream names and maps.
const (
	StreamExec  = "exec"
	MapEvents   = "exec_events"
	MapDrops    = "exec_drops"
	MapEmitted  = "exec_emitted"
	attachPoint = "sched_process_exec"
)

// Tracer records process executions.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the exec tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamExec,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "exec_event",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "exec".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "process executions (execve/execveat): pid, ppid, uid, comm, filename, args"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string { return []string{"tp_btf/" + attachPoint} }

// Supported checks for BTF and the sched_process_exec tracepoint.
func (t *Tracer) Supported() error { return tracers.CheckBTFTracepoint(attachPoint) }

// Tracepoints returns the program to attach, by tracepoint name (tp_btf).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{attachPoint: {Required: true, Start: t.objs.ExecSchedProcessExec}}
}
