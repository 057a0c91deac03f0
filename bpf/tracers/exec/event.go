package exec

import (
	"bytes"
	"fmt"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct exec_event (exec.c).
const (
	offKtime         = 0
	offPID           = 8
	offPPID          = 12
	offUID           = 16
	offOldPID        = 20
	offComm          = 24
	offFilename      = 40
	offFilenameTrunc = 296
	offArgsLen       = 300
	offArgs          = 304
	offCPU           = 560
	// EventSize is the size of struct exec_event.
	EventSize = 568

	// Earlier layouts, which Decode still reads (recordings made then):
	// each is the current one cut short, its missing fields zero and its
	// CPU unknown.
	sizeNoCPU = 560 // before cpu
	sizeV1    = 304 // before args_len and args (its last 4 bytes were padding)

	commLen     = 16
	filenameLen = 256
	argsLen     = 256
)

// Event is one process execution.
type Event struct {
	KtimeNs           uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the exec (CLOCK_MONOTONIC)"`
	Pid               uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Ppid              uint32      `json:"ppid" parquet:"ppid" doc:"parent process id"`
	UID               uint32      `json:"uid" parquet:"uid" doc:"real user id"`
	OldPid            uint32      `json:"old_pid" parquet:"old_pid" doc:"thread id that called exec"`
	Command           string      `json:"comm" parquet:"comm" doc:"command name after the exec (at most 15 bytes)"`
	Filename          string      `json:"filename" parquet:"filename" doc:"path of the executed file, as given to exec"`
	FilenameTruncated bool        `json:"filename_truncated" parquet:"filename_truncated" doc:"filename filled its 255-byte buffer and may be cut"`
	Args              []string    `json:"args" parquet:"args,list" doc:"argv, from the first 256 bytes of the arguments"`
	ArgsTruncated     bool        `json:"args_truncated" parquet:"args_truncated" doc:"the arguments were longer than 256 bytes: args holds the first ones"`
	CPU               tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU the exec ran on (null in recordings made before events carried it)"`
}

// LayoutSizes lists the sizes of every layout of struct exec_event that
// Decode reads, the current one (EventSize) first: a raw event is read by
// the layout of its size (anything longer than EventSize as EventSize).
var LayoutSizes = []int{EventSize, sizeNoCPU, sizeV1}

// Tracer returns "exec".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the command name.
func (e *Event) Comm() string { return e.Command }

// EventCPU returns the CPU, -1 if unknown (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// AppendText appends "filename=... args=[...] ppid=... uid=...", the
// arguments quoted as a shell would need them.
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "filename", e.Filename)
	dst = tracers.AppendList(dst, "args", e.Args, e.ArgsTruncated)
	dst = tracers.AppendUint(dst, "ppid", uint64(e.Ppid))
	dst = tracers.AppendUint(dst, "uid", uint64(e.UID))
	if e.OldPid != e.Pid {
		dst = tracers.AppendUint(dst, "old_pid", uint64(e.OldPid))
	}
	return dst
}

// Decode decodes a raw struct exec_event into ev, of the current layout
// or an earlier one (LayoutSizes). It accepts trailing bytes after the
// current layout and never panics; an event of no known size or malformed
// gives an error wrapping a bpf decoder error.
func Decode(raw []byte, ev *Event) error {
	n := len(raw)
	switch {
	case n >= EventSize:
		cpu, _ := bpf.ReadU32(raw, offCPU)
		ev.CPU = tracers.CPU(cpu)
	case n == sizeNoCPU || n == sizeV1:
		ev.CPU = tracers.UnknownCPU
	default:
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("exec event: %d bytes, not of a known layout (%d, %d or %d bytes): %w", n, EventSize, sizeNoCPU, sizeV1, err)
	}
	// Fixed fields: the length check above makes these reads infallible.
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Ppid, _ = bpf.ReadU32(raw, offPPID)
	ev.UID, _ = bpf.ReadU32(raw, offUID)
	ev.OldPid, _ = bpf.ReadU32(raw, offOldPID)
	trunc, _ := bpf.ReadU32(raw, offFilenameTrunc)
	ev.FilenameTruncated = trunc != 0
	var err error
	if ev.Command, err = bpf.ReadCString(raw, offComm, commLen); err != nil {
		return fmt.Errorf("exec event: comm: %w", err)
	}
	if ev.Filename, err = bpf.ReadCString(raw, offFilename, filenameLen); err != nil {
		return fmt.Errorf("exec event: filename: %w", err)
	}
	var alen uint32 // v1 had no arguments: its bytes at args_len are padding
	if n > sizeV1 {
		alen, _ = bpf.ReadU32(raw, offArgsLen)
	}
	ev.ArgsTruncated = alen > argsLen
	ev.Args = nil // never reuse: a copied Event must not share it
	args, _ := bpf.ReadBytes(raw, offArgs, int(min(alen, argsLen)))
	for len(args) > 0 {
		i := bytes.IndexByte(args, 0)
		if i < 0 { // the last, cut argument
			i = len(args)
		}
		ev.Args = append(ev.Args, string(args[:i]))
		args = args[min(i+1, len(args)):]
	}
	return nil
}
