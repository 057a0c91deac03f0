package exit

import (
	"fmt"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct exit_event (exit.c).
const (
	offKtime    = 0
	offLifetime = 8
	offPID      = 16
	offPPID     = 20
	offTID      = 24
	offCode     = 28
	offComm     = 32
	// EventSize is the size of struct exit_event.
	EventSize = 48

	commLen = 16
)

func init() {
	var e bpfExitEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.LifetimeNs) != offLifetime ||
		unsafe.Offsetof(e.Tid) != offTID || unsafe.Offsetof(e.ExitCode) != offCode || unsafe.Offsetof(e.Comm) != offComm {
		panic("exit: decoder offsets do not match struct exit_event")
	}
}

// Event is one process exit.
type Event struct {
	KtimeNs    uint64 `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the exit (CLOCK_MONOTONIC)"`
	Pid        uint32 `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Ppid       uint32 `json:"ppid" parquet:"ppid" doc:"parent process id"`
	Tid        uint32 `json:"tid" parquet:"tid" doc:"the thread that exited last"`
	Command    string `json:"comm" parquet:"comm" doc:"command name"`
	ExitCode   uint8  `json:"exit_code" parquet:"exit_code" doc:"exit status (0-255), meaningful when signal is 0"`
	Signal     uint8  `json:"signal" parquet:"signal" doc:"signal that killed the process, 0 if it exited"`
	CoreDumped bool   `json:"core_dumped" parquet:"core_dumped" doc:"the process dumped core"`
	Status     uint32 `json:"status" parquet:"status" doc:"raw wait status: exit_code<<8 | core 0x80 | signal"`
	LifetimeNs uint64 `json:"lifetime_ns" parquet:"lifetime_ns" doc:"time since the process started, ns"`
}

// Tracer returns "exit".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the command name.
func (e *Event) Comm() string { return e.Command }

// AppendText appends "exit_code=... | signal=... ppid=... lifetime=1.5s".
func (e *Event) AppendText(dst []byte) []byte {
	if e.Signal != 0 {
		dst = tracers.AppendUint(dst, "signal", uint64(e.Signal))
		if e.CoreDumped {
			dst = tracers.AppendStr(dst, "core", "dumped")
		}
	} else {
		dst = tracers.AppendUint(dst, "exit_code", uint64(e.ExitCode))
	}
	dst = tracers.AppendUint(dst, "ppid", uint64(e.Ppid))
	return tracers.AppendDuration(dst, "lifetime", e.LifetimeNs)
}

// Decode decodes a raw struct exit_event into ev. It accepts trailing
// bytes (perf pads samples) and never panics.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("exit event: %w", err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.LifetimeNs, _ = bpf.ReadU64(raw, offLifetime)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Ppid, _ = bpf.ReadU32(raw, offPPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	ev.Status, _ = bpf.ReadU32(raw, offCode)
	ev.ExitCode = uint8(ev.Status >> 8)
	ev.Signal = uint8(ev.Status & 0x7f)
	ev.CoreDumped = ev.Status&0x80 != 0
	var err error
	if ev.Command, err = bpf.ReadCString(raw, offComm, commLen); err != nil {
		return fmt.Errorf("exit event: comm: %w", err)
	}
	return nil
}
