package exec

import (
	"bytes"
	"fmt"
	"strings"

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
	// EventSize is the size of struct exec_event.
	EventSize = 560

	commLen     = 16
	filenameLen = 256
	argsLen     = 256
)

// Event is one process execution.
type Event struct {
	KtimeNs           uint64   `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the exec (CLOCK_MONOTONIC)"`
	Pid               uint32   `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Ppid              uint32   `json:"ppid" parquet:"ppid" doc:"parent process id"`
	UID               uint32   `json:"uid" parquet:"uid" doc:"real user id"`
	OldPid            uint32   `json:"old_pid" parquet:"old_pid" doc:"thread id that called exec"`
	Command           string   `json:"comm" parquet:"comm" doc:"command name after the exec (at most 15 bytes)"`
	Filename          string   `json:"filename" parquet:"filename" doc:"path of the executed file, as given to exec"`
	FilenameTruncated bool     `json:"filename_truncated" parquet:"filename_truncated" doc:"filename filled its 255-byte buffer and may be cut"`
	Args              []string `json:"args" parquet:"args,list" doc:"argv, from the first 256 bytes of the arguments"`
	ArgsTruncated     bool     `json:"args_truncated" parquet:"args_truncated" doc:"the arguments were longer than 256 bytes: args holds the first ones"`
}

// Tracer returns "exec".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the command name.
func (e *Event) Comm() string { return e.Command }

// AppendText appends "filename=... args=... ppid=... uid=...".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "filename", e.Filename)
	args := strings.Join(e.Args, " ")
	if e.ArgsTruncated {
		args += "..."
	}
	dst = tracers.AppendStr(dst, "args", args)
	dst = tracers.AppendUint(dst, "ppid", uint64(e.Ppid))
	dst = tracers.AppendUint(dst, "uid", uint64(e.UID))
	if e.OldPid != e.Pid {
		dst = tracers.AppendUint(dst, "old_pid", uint64(e.OldPid))
	}
	return dst
}

// Decode decodes a raw struct exec_event into ev. It accepts trailing
// bytes (perf padding) and never panics; a short or malformed event gives
// an error wrapping a bpf decoder error.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("exec event: %w", err)
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
	n, _ := bpf.ReadU32(raw, offArgsLen)
	ev.ArgsTruncated = n > argsLen
	ev.Args = nil // never reuse: a copied Event must not share it
	args, _ := bpf.ReadBytes(raw, offArgs, int(min(n, argsLen)))
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
