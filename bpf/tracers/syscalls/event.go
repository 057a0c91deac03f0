package syscalls

import (
	"fmt"
	"strconv"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct sys_event (syscalls.c).
const (
	offKtime   = 0
	offLatency = 8
	offRet     = 16
	offPID     = 24
	offNR      = 28
	// EventSize is the size of struct sys_event.
	EventSize = 32
)

func init() {
	var e bpfSysEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Ret) != offRet || unsafe.Offsetof(e.Pid) != offPID || unsafe.Offsetof(e.Nr) != offNR {
		panic("syscalls: decoder offsets do not match struct sys_event")
	}
}

// Event is one syscall.
type Event struct {
	KtimeNs   uint64 `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at syscall entry (CLOCK_MONOTONIC)"`
	LatencyNs uint64 `json:"latency_ns" parquet:"latency_ns" doc:"syscall duration, ns (0 for exit and exit_group)"`
	Ret       int64  `json:"ret" parquet:"ret" doc:"return value (-errno on failure)"`
	Pid       uint32 `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Nr        uint32 `json:"nr" parquet:"nr" doc:"syscall number (x86_64)"`
	Syscall   string `json:"syscall" parquet:"syscall" doc:"syscall name, or sys_NR if unknown"`
}

// Tracer returns "syscalls".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns (at entry).
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns "": syscall events carry no comm (join with exec events).
func (e *Event) Comm() string { return "" }

// AppendText appends "syscall=... ret=... latency_ns=...".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "syscall", e.Syscall)
	dst = tracers.AppendInt(dst, "ret", e.Ret)
	return tracers.AppendUint(dst, "latency_ns", e.LatencyNs)
}

// SyscallName returns the name of syscall nr (x86_64), or "sys_NR".
func SyscallName(nr uint32) string {
	if int64(nr) < int64(len(names)) && names[nr] != "" {
		return names[nr]
	}
	return "sys_" + strconv.FormatUint(uint64(nr), 10)
}

// Decode decodes a raw struct sys_event into ev. It accepts trailing bytes
// and never panics. Known syscall names are not allocated.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("syscalls event: %w", err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.LatencyNs, _ = bpf.ReadU64(raw, offLatency)
	ret, _ := bpf.ReadU64(raw, offRet)
	ev.Ret = int64(ret)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Nr, _ = bpf.ReadU32(raw, offNR)
	ev.Syscall = SyscallName(ev.Nr)
	return nil
}
