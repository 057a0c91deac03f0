// Package exit is the built-in tracer of process exits: one event when the
// last thread of a process exits, from the sched_process_exit BTF
// tracepoint, emitted through a perf event array.
package exit

import (
	"fmt"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "exit"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it when Event changes.
const EventType = "exit.Event"

// Stream name and maps.
const (
	StreamExit  = "exit"
	MapEvents   = "exit_events"
	MapDrops    = "exit_drops"
	MapEmitted  = "exit_emitted"
	attachPoint = "sched_process_exit"
)

// Tracer records process exits.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the exit tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamExit,
		Map:            MapEvents,
		Kind:           tracers.Perfbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "exit_event",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	t.SetVariants(
		tracers.Variant{Name: VariantGroupDead, Spec: loadBpf, Check: checkGroupDead},
		tracers.Variant{Name: VariantLive, Spec: loadBpfLive,
			Note: "the last thread is found by the signal's live count; tid is the first thread to see it at 0"},
	)
	return t
}

// The variants of the exit tracer's programs, newest first.
const (
	// VariantGroupDead reads the tracepoint's group_dead argument, which
	// recent kernels pass (6.18 does; 6.12 and older do not).
	VariantGroupDead = "tp_btf+group_dead"
	// VariantLive checks the process's live thread count instead, and
	// reports each process once (older kernels).
	VariantLive = "tp_btf+live"
)

// checkGroupDead reports whether sched_process_exit passes group_dead.
func checkGroupDead() error {
	n, err := tracers.BTFTracepointArgs(attachPoint)
	if err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("tracepoint %s has no group_dead argument on this kernel", attachPoint)
	}
	return nil
}

// Name returns "exit".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "process exits: pid, ppid, exit code, signal, lifetime (perf buffer)"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string { return []string{"tp_btf/" + attachPoint} }

// Supported checks for BTF and the sched_process_exit tracepoint.
func (t *Tracer) Supported() error { return tracers.CheckBTFTracepoint(attachPoint) }

// Tracepoints returns the program to attach, by tracepoint name (tp_btf).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{attachPoint: {Required: true, Start: t.objs.ExitSchedProcessExit}}
}
