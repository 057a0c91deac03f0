// Package syscalls is the built-in tracer of every syscall of the selected
// processes, with its return value and latency, from the raw tracepoints
// sys_enter and sys_exit. It is the load of ebpfrec's benchmarks: a 40-byte
// event and batched reader wakeups.
package syscalls

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "syscalls"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it only for a change of the layout that
// its size does not tell (Decode reads the earlier layouts by size).
const EventType = "syscalls.Event"

// Stream name and maps.
const (
	StreamSyscalls = "syscalls"
	MapEvents      = "sys_events"
	MapDrops       = "sys_drops"
	MapEmitted     = "sys_emitted"
)

// Tracer records syscalls.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the syscalls tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamSyscalls,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "sys_event",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	t.SetVariants(
		tracers.Variant{Name: VariantTaskStorage, Spec: loadBpf, Check: checkTaskStorage},
		tracers.Variant{Name: VariantHash, Spec: loadBpfHash,
			Note: "per-thread state in an LRU hash of 65536 threads"},
	)
	return t
}

// The variants of the syscalls tracer's programs, newest first.
const (
	// VariantTaskStorage keeps each thread's state in task local storage
	// (kernels from 5.11 on).
	VariantTaskStorage = "task-storage"
	// VariantHash keeps it in an LRU hash keyed by thread id.
	VariantHash = "hash"
)

// checkTaskStorage reports whether raw tracepoint programs can use task
// local storage (the map type and bpf_get_current_task_btf). Only a probe
// that finds the feature missing passes the variant over: one that could
// not run (no privileges, e.g. `ebpfrec tracers` as a user) keeps it, and
// loading says what is wrong.
func checkTaskStorage() error {
	if err := features.HaveMapType(ebpf.TaskStorage); errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("no task storage maps: %w", err)
	}
	if err := features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnGetCurrentTaskBtf); errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("no bpf_get_current_task_btf for raw tracepoints: %w", err)
	}
	return nil
}

// Name returns "syscalls".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "every syscall of the selected processes: pid, syscall, return value, latency, cpu (40-byte events)"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string { return []string{"raw_tp/sys_enter", "raw_tp/sys_exit"} }

// Supported checks for kernel BTF and the sys_enter and sys_exit
// tracepoints.
func (t *Tracer) Supported() error {
	for _, n := range []string{"sys_enter", "sys_exit"} {
		if err := tracers.CheckBTFTracepoint(n); err != nil {
			return err
		}
	}
	return nil
}

// Tracepoints returns the programs to attach, by raw tracepoint name.
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{
		"sys_enter": {Required: true, Start: t.objs.SysEnter},
		"sys_exit":  {Required: true, Start: t.objs.SysExit},
	}
}
