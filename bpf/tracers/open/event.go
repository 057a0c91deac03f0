package open

import (
	"encoding/json"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct open_event (open.c).
const (
	offKtime   = 0
	offLatency = 8
	offFlags   = 16
	offPID     = 24
	offTID     = 28
	offRet     = 32
	offDFD     = 36
	offMode    = 40
	offNR      = 44
	offComm    = 48
	offPath    = 64
	offCPU     = 320
	// EventSize is the size of struct open_event.
	EventSize = 328

	// sizeNoCPU is the earlier layout (before cpu), which Decode still
	// reads: the current one cut short, its CPU unknown.
	sizeNoCPU = 320

	commLen = 16
	pathLen = 256
)

func init() {
	var e bpfOpenEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Flags) != offFlags || unsafe.Offsetof(e.Ret) != offRet ||
		unsafe.Offsetof(e.Nr) != offNR || unsafe.Offsetof(e.Comm) != offComm || unsafe.Offsetof(e.Path) != offPath ||
		unsafe.Offsetof(e.Cpu) != offCPU {
		panic("open: decoder offsets do not match struct open_event")
	}
}

// Syscall numbers (x86_64) of the event's Nr.
const (
	NROpen    = 2
	NRCreat   = 85
	NROpenat  = 257
	NROpenat2 = 437
)

// AtFDCWD is the Dfd of a path relative to the working directory.
const AtFDCWD = -100

// Event is one file open.
type Event struct {
	KtimeNs   uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at syscall entry (CLOCK_MONOTONIC)"`
	LatencyNs uint64      `json:"latency_ns" parquet:"latency_ns" doc:"syscall duration, ns"`
	Pid       uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Tid       uint32      `json:"tid" parquet:"tid" doc:"thread id"`
	Command   string      `json:"comm" parquet:"comm" doc:"command name"`
	Syscall   string      `json:"syscall" parquet:"syscall" doc:"open, creat, openat or openat2"`
	Path      string      `json:"path" parquet:"path" doc:"the path as given (at most 255 bytes; empty if unreadable)"`
	Dfd       int32       `json:"dfd" parquet:"dfd" doc:"directory fd of a relative path (-100: working directory)"`
	Flags     uint64      `json:"flags" parquet:"flags" doc:"open flags (O_*)"`
	Mode      uint32      `json:"mode" parquet:"mode" doc:"creation mode"`
	Ret       int32       `json:"ret" parquet:"ret" doc:"the new file descriptor, or -errno"`
	CPU       tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU at the syscall's exit (null in recordings made before events carried it)"`
}

// LayoutSizes lists the sizes of every layout of struct open_event that
// Decode reads, the current one (EventSize) first: a raw event is read by
// the layout of its size (anything longer than EventSize as EventSize).
var LayoutSizes = []int{EventSize, sizeNoCPU}

// Tracer returns "open".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns (at entry).
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the command name.
func (e *Event) Comm() string { return e.Command }

// MarshalJSON writes the event's fields and "errno", the name of the
// error of a failed open (tracers.ErrnoName), null on success.
func (e *Event) MarshalJSON() ([]byte, error) {
	type fields Event // without this method
	return json.Marshal(struct {
		*fields
		Errno *string `json:"errno"`
	}{(*fields)(e), tracers.ErrnoPtr(int64(e.Ret))})
}

// EventCPU returns the CPU, -1 if unknown (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// Errno returns the error of a failed open, 0 on success.
func (e *Event) Errno() syscall.Errno {
	if e.Ret < 0 {
		return syscall.Errno(-e.Ret)
	}
	return 0
}

var flagNames = []struct {
	bit  uint64
	name string
}{
	{syscall.O_CREAT, "O_CREAT"}, {syscall.O_EXCL, "O_EXCL"}, {syscall.O_NOCTTY, "O_NOCTTY"},
	{syscall.O_TRUNC, "O_TRUNC"}, {syscall.O_APPEND, "O_APPEND"}, {syscall.O_NONBLOCK, "O_NONBLOCK"},
	{syscall.O_DSYNC, "O_DSYNC"}, {syscall.O_ASYNC, "O_ASYNC"}, {syscall.O_DIRECT, "O_DIRECT"},
	{0o100000, "O_LARGEFILE"}, {syscall.O_DIRECTORY, "O_DIRECTORY"}, {syscall.O_NOFOLLOW, "O_NOFOLLOW"},
	{syscall.O_NOATIME, "O_NOATIME"}, {syscall.O_CLOEXEC, "O_CLOEXEC"}, {0o4000000 | syscall.O_DSYNC, "O_SYNC"},
	{0o10000000, "O_PATH"}, {0o20000000 | syscall.O_DIRECTORY, "O_TMPFILE"},
}

// AppendFlags appends the symbolic form of open flags, e.g. O_RDONLY|O_CLOEXEC.
func AppendFlags(dst []byte, flags uint64) []byte {
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		dst = append(dst, "O_RDONLY"...)
	case syscall.O_WRONLY:
		dst = append(dst, "O_WRONLY"...)
	case syscall.O_RDWR:
		dst = append(dst, "O_RDWR"...)
	default:
		dst = append(dst, "O_ACCMODE3"...)
	}
	rest := flags &^ syscall.O_ACCMODE
	for _, f := range flagNames {
		if rest&f.bit == f.bit {
			dst = append(append(dst, '|'), f.name...)
			rest &^= f.bit
		}
	}
	if rest != 0 {
		dst = fmt.Appendf(dst, "|0x%x", rest)
	}
	return dst
}

// AppendText appends "syscall=... path=... flags=... ret=-2 (ENOENT)
// latency=1.2µs" and more.
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "syscall", e.Syscall)
	dst = tracers.AppendStr(dst, "path", e.Path)
	if e.Dfd != AtFDCWD {
		dst = tracers.AppendInt(dst, "dfd", int64(e.Dfd))
	}
	dst = AppendFlags(append(dst, " flags="...), e.Flags)
	if e.Flags&(syscall.O_CREAT|0o20000000) != 0 {
		dst = fmt.Appendf(append(dst, ' '), "mode=0%o", e.Mode)
	}
	dst = tracers.AppendRet(dst, "ret", int64(e.Ret))
	return tracers.AppendDuration(dst, "latency", e.LatencyNs)
}

// SyscallName names a syscall number of the openat family.
func SyscallName(nr uint32) string {
	switch nr {
	case NROpenat:
		return "openat"
	case NROpenat2:
		return "openat2"
	case NROpen:
		return "open"
	case NRCreat:
		return "creat"
	}
	return "syscall_" + fmt.Sprint(nr)
}

// Decode decodes a raw struct open_event into ev, of the current layout or
// an earlier one (LayoutSizes). It accepts trailing bytes after the current
// layout and never panics.
func Decode(raw []byte, ev *Event) error {
	switch n := len(raw); {
	case n >= EventSize:
		cpu, _ := bpf.ReadU32(raw, offCPU)
		ev.CPU = tracers.CPU(cpu)
	case n == sizeNoCPU:
		ev.CPU = tracers.UnknownCPU
	default:
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("open event: %d bytes, not of a known layout (%d or %d bytes): %w", n, EventSize, sizeNoCPU, err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.LatencyNs, _ = bpf.ReadU64(raw, offLatency)
	ev.Flags, _ = bpf.ReadU64(raw, offFlags)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	ret, _ := bpf.ReadU32(raw, offRet)
	ev.Ret = int32(ret)
	dfd, _ := bpf.ReadU32(raw, offDFD)
	ev.Dfd = int32(dfd)
	ev.Mode, _ = bpf.ReadU32(raw, offMode)
	nr, _ := bpf.ReadU32(raw, offNR)
	ev.Syscall = SyscallName(nr)
	var err error
	if ev.Command, err = bpf.ReadCString(raw, offComm, commLen); err != nil {
		return fmt.Errorf("open event: comm: %w", err)
	}
	if ev.Path, err = bpf.ReadCString(raw, offPath, pathLen); err != nil {
		return fmt.Errorf("open event: path: %w", err)
	}
	return nil
}
