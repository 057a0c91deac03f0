package gofunc

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct go_event (gofunc.c).
const (
	offKtime   = 0
	offLatency = 8
	offGoid    = 16
	offPID     = 24
	offTID     = 28
	offCPU     = 32
	offKind    = 36
	offFlags   = 37
	offFuncID  = 40
	offName    = 48
	nameLen    = 128
	// EventSize is the size of struct go_event.
	EventSize = 176
)

// Kinds of event (go_event.kind).
const (
	KindEntry = 1
	KindExit  = 2
)

// ErrBadKind is wrapped by Decode's error for an event that is neither an
// entry nor an exit.
var ErrBadKind = errors.New("bad event kind")

// flagNoEntry marks an exit whose entry was not seen (FLAG_NO_ENTRY).
const flagNoEntry = 1

// LayoutSizes lists the sizes of every layout of struct go_event that
// Decode reads.
var LayoutSizes = []int{EventSize}

func init() {
	var e bpfGoEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.LatencyNs) != offLatency || unsafe.Offsetof(e.Goid) != offGoid ||
		unsafe.Offsetof(e.Pid) != offPID || unsafe.Offsetof(e.Tid) != offTID || unsafe.Offsetof(e.Cpu) != offCPU ||
		unsafe.Offsetof(e.Kind) != offKind || unsafe.Offsetof(e.Flags) != offFlags || unsafe.Offsetof(e.FuncId) != offFuncID ||
		unsafe.Offsetof(e.Name) != offName || len(e.Name) != nameLen {
		panic("gofunc: decoder offsets do not match struct go_event")
	}
	var f bpfGoFunc
	if len(f.Name) != nameLen {
		panic("gofunc: name length does not match struct go_func")
	}
}

// Event is one entry into or exit from a traced Go function.
type Event struct {
	KtimeNs   uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the entry or exit (CLOCK_MONOTONIC)"`
	Kind      string      `json:"kind" parquet:"kind" doc:"entry or exit"`
	Func      string      `json:"func" parquet:"func" doc:"the function's symbol name (cut to 127 bytes)"`
	FuncID    uint32      `json:"func_id" parquet:"func_id" doc:"the function's id in the recording (one per function per executable)"`
	Goid      uint64      `json:"goid" parquet:"goid" doc:"goroutine id (runtime.g.goid)"`
	Pid       uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Tid       uint32      `json:"tid" parquet:"tid" doc:"thread id"`
	LatencyNs uint64      `json:"latency_ns" parquet:"latency_ns" doc:"at an exit: time since the goroutine entered the function, ns; 0 at an entry"`
	EntrySeen bool        `json:"entry_seen" parquet:"entry_seen" doc:"at an exit: whether its entry was seen (false: entered before the probes, or an inner recursive call took it); true at an entry"`
	CPU       tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU at the event"`
}

// Tracer returns "gofunc".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// EventCPU returns the CPU (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// Comm returns "": gofunc events carry no comm (the process table has it).
func (e *Event) Comm() string { return "" }

// AppendText appends "kind=exit func=main.handle goid=7 tid=12 latency=1.2µs".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "kind", e.Kind)
	dst = tracers.AppendStr(dst, "func", e.Func)
	dst = tracers.AppendUint(dst, "goid", e.Goid)
	dst = tracers.AppendUint(dst, "tid", uint64(e.Tid))
	if e.Kind == "exit" {
		if e.EntrySeen {
			dst = tracers.AppendDuration(dst, "latency", e.LatencyNs)
		} else {
			dst = tracers.AppendStr(dst, "latency", "?")
		}
	}
	return dst
}

// Decode decodes a raw struct go_event into ev. It accepts trailing bytes
// after the layout and never panics.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("gofunc event: %d bytes, want %d: %w", len(raw), EventSize, err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.LatencyNs, _ = bpf.ReadU64(raw, offLatency)
	ev.Goid, _ = bpf.ReadU64(raw, offGoid)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	cpu, _ := bpf.ReadU32(raw, offCPU)
	ev.CPU = tracers.CPU(cpu)
	switch k := raw[offKind]; k {
	case KindEntry:
		ev.Kind = "entry"
	case KindExit:
		ev.Kind = "exit"
	default:
		return fmt.Errorf("gofunc event: kind %d is neither entry (%d) nor exit (%d): %w", k, KindEntry, KindExit, ErrBadKind)
	}
	ev.EntrySeen = raw[offFlags]&flagNoEntry == 0
	ev.FuncID, _ = bpf.ReadU32(raw, offFuncID)
	name, err := bpf.ReadCString(raw, offName, nameLen)
	if err != nil {
		return fmt.Errorf("gofunc event: func: %w", err)
	}
	ev.Func = name
	return nil
}
