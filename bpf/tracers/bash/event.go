package bash

import (
	"fmt"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct bash_event (bash.c).
const (
	offKtime = 0
	offPID   = 8
	offTID   = 12
	offUID   = 16
	offCPU   = 20
	offLen   = 24
	offFlags = 28
	offLine  = 32
	lineLen  = 480
	// EventSize is the size of struct bash_event.
	EventSize = 512

	flagEOF       = 1
	flagTruncated = 2
)

// LayoutSizes lists the sizes of every layout of struct bash_event that
// Decode reads.
var LayoutSizes = []int{EventSize}

func init() {
	var e bpfBashEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Pid) != offPID || unsafe.Offsetof(e.Uid) != offUID ||
		unsafe.Offsetof(e.Cpu) != offCPU || unsafe.Offsetof(e.Len) != offLen || unsafe.Offsetof(e.Flags) != offFlags ||
		unsafe.Offsetof(e.Line) != offLine || len(e.Line) != lineLen {
		panic("bash: decoder offsets do not match struct bash_event")
	}
}

// Event is one line read by an interactive bash, or its end of input.
type Event struct {
	KtimeNs   uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() when readline returned (CLOCK_MONOTONIC)"`
	Pid       uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Tid       uint32      `json:"tid" parquet:"tid" doc:"thread id"`
	UID       uint32      `json:"uid" parquet:"uid" doc:"user id"`
	Line      string      `json:"line" parquet:"line" doc:"the command line as typed, without its newline (cut to 479 bytes)"`
	Truncated bool        `json:"line_truncated" parquet:"line_truncated" doc:"the line filled the buffer and may be cut"`
	EOF       bool        `json:"eof" parquet:"eof" doc:"readline returned no line: end of input (Ctrl-D)"`
	CPU       tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU at readline's return"`
}

// Tracer returns "bash".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// EventCPU returns the CPU (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// Comm returns "": the process table has it.
func (e *Event) Comm() string { return "" }

// AppendText appends "uid=1000 line="ls -l"" (or "uid=1000 eof").
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendUint(dst, "uid", uint64(e.UID))
	if e.EOF {
		return append(dst, " eof"...)
	}
	dst = tracers.AppendStr(dst, "line", e.Line)
	if e.Truncated {
		dst = append(dst, " truncated"...)
	}
	return dst
}

// Decode decodes a raw struct bash_event into ev. It accepts trailing
// bytes after the layout and never panics.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("bash event: %d bytes, want %d: %w", len(raw), EventSize, err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	ev.UID, _ = bpf.ReadU32(raw, offUID)
	cpu, _ := bpf.ReadU32(raw, offCPU)
	ev.CPU = tracers.CPU(cpu)
	flags, _ := bpf.ReadU32(raw, offFlags)
	ev.EOF = flags&flagEOF != 0
	ev.Truncated = flags&flagTruncated != 0
	line, err := bpf.ReadCString(raw, offLine, lineLen)
	if err != nil {
		return fmt.Errorf("bash event: line: %w", err)
	}
	ev.Line = line
	return nil
}
