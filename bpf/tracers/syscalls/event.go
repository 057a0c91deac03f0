package syscalls

import (
	"encoding/json"
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
	offCPU     = 32
	// EventSize is the size of struct sys_event.
	EventSize = 40

	// sizeNoCPU is the earlier layout (before cpu), which Decode still
	// reads: the current one cut short, its CPU unknown.
	sizeNoCPU = 32
)

// LayoutSizes lists the sizes of every layout of struct sys_event that
// Decode reads, the current one (EventSize) first: a raw event is read by
// the layout of its size (anything longer than EventSize as EventSize).
var LayoutSizes = []int{EventSize, sizeNoCPU}

func init() {
	var e bpfSysEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Ret) != offRet || unsafe.Offsetof(e.Pid) != offPID || unsafe.Offsetof(e.Nr) != offNR ||
		unsafe.Offsetof(e.Cpu) != offCPU {
		panic("syscalls: decoder offsets do not match struct sys_event")
	}
}

// Event is one syscall.
type Event struct {
	KtimeNs   uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at syscall entry (CLOCK_MONOTONIC)"`
	LatencyNs uint64      `json:"latency_ns" parquet:"latency_ns" doc:"syscall duration, ns (0 for exit and exit_group)"`
	Ret       int64       `json:"ret" parquet:"ret" doc:"return value (-errno on failure)"`
	Pid       uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Nr        uint32      `json:"nr" parquet:"nr" doc:"syscall number (x86_64)"`
	Syscall   string      `json:"syscall" parquet:"syscall" doc:"syscall name, or sys_NR if unknown"`
	CPU       tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU at the syscall's exit (null in recordings made before events carried it)"`
}

// Tracer returns "syscalls".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns (at entry).
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// EventCPU returns the CPU, -1 if unknown (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// Comm returns "": syscall events carry no comm (join with exec events).
func (e *Event) Comm() string { return "" }

// AppendText appends "syscall=... ret=-11 (EAGAIN) latency=1.2µs".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "syscall", e.Syscall)
	dst = tracers.AppendRet(dst, "ret", e.Ret)
	return tracers.AppendDuration(dst, "latency", e.LatencyNs)
}

// MarshalJSON writes the event's fields and "errno", the name of the
// error of a failed syscall (tracers.ErrnoName), null otherwise.
func (e *Event) MarshalJSON() ([]byte, error) {
	type fields Event // without this method
	return json.Marshal(struct {
		*fields
		Errno *string `json:"errno"`
	}{(*fields)(e), tracers.ErrnoPtr(e.Ret)})
}

// SyscallName returns the name of syscall nr (x86_64), or "sys_NR".
func SyscallName(nr uint32) string {
	if int64(nr) < int64(len(names)) && names[nr] != "" {
		return names[nr]
	}
	return "sys_" + strconv.FormatUint(uint64(nr), 10)
}

// Decode decodes a raw struct sys_event into ev, of the current layout or
// an earlier one (LayoutSizes). It accepts trailing bytes after the current
// layout and never panics. Known syscall names are not allocated.
func Decode(raw []byte, ev *Event) error {
	switch n := len(raw); {
	case n >= EventSize:
		cpu, _ := bpf.ReadU32(raw, offCPU)
		ev.CPU = tracers.CPU(cpu)
	case n == sizeNoCPU:
		ev.CPU = tracers.UnknownCPU
	default:
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("syscalls event: %d bytes, not of a known layout (%d or %d bytes): %w", n, EventSize, sizeNoCPU, err)
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
