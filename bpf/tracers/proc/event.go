package proc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Kinds of proc events (the head's kind field). The kernel writes fork,
// exec, exit and rename; user space writes snapshot and cgroup records.
const (
	KindFork     = 1
	KindExec     = 2
	KindExit     = 3
	KindSnapshot = 4 // a process alive when the recording started, from /proc
	KindCgroup   = 5 // the path of a cgroup v2 id (CgroupID, CgroupPath)
	KindRename   = 6 // the process renamed itself (its main thread's comm: prctl PR_SET_NAME, /proc/PID/comm)
)

// Offsets of struct proc_head and struct proc_exec_event (proc.c).
const (
	offKtime    = 0
	offKind     = 8
	offPID      = 12
	offTID      = 16
	offPPID     = 20
	offUID      = 24
	offExitCode = 28
	offCgroupID = 32
	offStart    = 40
	offComm     = 48
	offCPU      = 68 // 0xffffffff in records user space writes
	// HeadSize is the size of struct proc_head: fork and exit events are a
	// head alone.
	HeadSize = 72

	offFilename      = 72
	offFilenameTrunc = 328
	offArgsLen       = 332
	offArgs          = 336
	// ExecSize is the size of struct proc_exec_event.
	ExecSize = 592

	commLen     = 16
	filenameLen = 256
	argsLen     = 256

	// MaxUserString bounds each string of a record user space writes (exe,
	// arguments, cgroup path): a cmdline may be long, a recording needs
	// its start.
	MaxUserString = 4096
)

// Errors wrapped by Decode's errors.
var (
	// ErrBadKind: an event of no known kind.
	ErrBadKind = errors.New("unknown kind")
	// ErrTooLong: a string of a user-written record is longer than
	// MaxUserString.
	ErrTooLong = errors.New("string too long")
)

// Event is one record of the proc stream: a process's fork, exec or exit,
// a process found alive at start (snapshot), or a cgroup's path.
type Event struct {
	KtimeNs           uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the event, or when the snapshot read the process (CLOCK_MONOTONIC)"`
	Kind              string      `json:"kind" parquet:"kind" doc:"fork, exec, exit, rename (a new comm), snapshot (alive at start, from /proc) or cgroup (a cgroup's path)"`
	Pid               uint32      `json:"pid" parquet:"pid" doc:"process id (tgid; for fork the child's)"`
	Tid               uint32      `json:"tid" parquet:"tid" doc:"thread id (fork: the child's, exec: the caller's, exit: the last thread's)"`
	Ppid              uint32      `json:"ppid" parquet:"ppid" doc:"parent process id"`
	UID               uint32      `json:"uid" parquet:"uid" doc:"real user id"`
	ExitCode          uint32      `json:"exit_code" parquet:"exit_code" doc:"exit: raw wait status"`
	CgroupID          uint64      `json:"cgroup_id,string" parquet:"cgroup_id" doc:"cgroup v2 id (the inode of its directory)"`
	StartNs           uint64      `json:"start_ns" parquet:"start_ns" doc:"when the process started (CLOCK_MONOTONIC; at clock-tick resolution for snapshots)"`
	Command           string      `json:"comm" parquet:"comm" doc:"command name (at most 15 bytes)"`
	Exe               string      `json:"exe" parquet:"exe" doc:"exec: the file given to exec; snapshot: /proc/PID/exe"`
	FilenameTruncated bool        `json:"filename_truncated" parquet:"filename_truncated" doc:"exe filled its buffer and may be cut"`
	Args              []string    `json:"args" parquet:"args,list" doc:"argv (exec: from its first 256 bytes)"`
	ArgsTruncated     bool        `json:"args_truncated" parquet:"args_truncated" doc:"the arguments were longer than what args holds"`
	CgroupPath        string      `json:"cgroup_path" parquet:"cgroup_path" doc:"snapshot, cgroup: the cgroup v2 path from its root"`
	CPU               tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU of a fork, exec or exit (null for the records user space writes)"`
}

// KindName names a kind ("fork", ...); unknown kinds are "kind(N)".
func KindName(k uint32) string {
	switch k {
	case KindFork:
		return "fork"
	case KindExec:
		return "exec"
	case KindExit:
		return "exit"
	case KindSnapshot:
		return "snapshot"
	case KindCgroup:
		return "cgroup"
	case KindRename:
		return "rename"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Tracer returns "proc".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's ktime.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// EventCPU returns the CPU, -1 if unknown (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the command name.
func (e *Event) Comm() string { return e.Command }

// AppendText appends "kind=... ppid=... ..." (the fields the kind has).
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "kind", e.Kind)
	if e.Kind == "cgroup" {
		dst = tracers.AppendUint(dst, "cgroup_id", e.CgroupID)
		return tracers.AppendStr(dst, "cgroup_path", e.CgroupPath)
	}
	dst = tracers.AppendUint(dst, "ppid", uint64(e.Ppid))
	dst = tracers.AppendUint(dst, "uid", uint64(e.UID))
	if e.Tid != 0 && e.Tid != e.Pid {
		dst = tracers.AppendUint(dst, "tid", uint64(e.Tid))
	}
	dst = tracers.AppendUint(dst, "cgroup_id", e.CgroupID)
	if e.Exe != "" {
		dst = tracers.AppendStr(dst, "exe", e.Exe)
	}
	if len(e.Args) > 0 {
		args := strings.Join(e.Args, " ")
		if e.ArgsTruncated {
			args += "..."
		}
		dst = tracers.AppendStr(dst, "args", args)
	}
	if e.CgroupPath != "" {
		dst = tracers.AppendStr(dst, "cgroup_path", e.CgroupPath)
	}
	if e.Kind == "exit" {
		// ExitCode holds the raw wait status: said as the exit tracer
		// says it (exit_code=3, not 768; signal=15, not exit_code=15).
		if sig := e.ExitCode & 0x7f; sig != 0 {
			dst = tracers.AppendUint(dst, "signal", uint64(sig))
			if e.ExitCode&0x80 != 0 {
				dst = tracers.AppendStr(dst, "core", "dumped")
			}
		} else {
			dst = tracers.AppendUint(dst, "exit_code", uint64(e.ExitCode>>8&0xff))
		}
	}
	return dst
}

// Decode decodes a raw proc event into ev: a head, and what its kind adds.
// It accepts trailing bytes (ring buffer padding) and never panics; a
// short or malformed event gives an error wrapping a bpf decoder error,
// ErrBadKind or ErrTooLong.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < HeadSize {
		_, err := bpf.ReadBytes(raw, 0, HeadSize)
		return fmt.Errorf("proc event: %w", err)
	}
	*ev = Event{}
	kind, _ := bpf.ReadU32(raw, offKind)
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	ev.Ppid, _ = bpf.ReadU32(raw, offPPID)
	ev.UID, _ = bpf.ReadU32(raw, offUID)
	ev.ExitCode, _ = bpf.ReadU32(raw, offExitCode)
	ev.CgroupID, _ = bpf.ReadU64(raw, offCgroupID)
	ev.StartNs, _ = bpf.ReadU64(raw, offStart)
	ev.CPU = tracers.UnknownCPU
	if cpu, _ := bpf.ReadU32(raw, offCPU); cpu != 0xffffffff && (kind == KindFork || kind == KindExec || kind == KindExit || kind == KindRename) {
		ev.CPU = tracers.CPU(cpu)
	}
	var err error
	if ev.Command, err = bpf.ReadCString(raw, offComm, commLen); err != nil {
		return fmt.Errorf("proc event: comm: %w", err)
	}
	ev.Kind = KindName(kind)
	switch kind {
	case KindFork, KindExit, KindRename:
	case KindExec:
		return decodeExec(raw, ev)
	case KindSnapshot, KindCgroup:
		return decodeUser(raw, ev)
	default:
		return fmt.Errorf("proc event: %w %d", ErrBadKind, kind)
	}
	return nil
}

func decodeExec(raw []byte, ev *Event) error {
	if len(raw) < ExecSize {
		_, err := bpf.ReadBytes(raw, 0, ExecSize)
		return fmt.Errorf("proc exec event: %w", err)
	}
	var err error
	if ev.Exe, err = bpf.ReadCString(raw, offFilename, filenameLen); err != nil {
		return fmt.Errorf("proc exec event: filename: %w", err)
	}
	trunc, _ := bpf.ReadU32(raw, offFilenameTrunc)
	ev.FilenameTruncated = trunc != 0
	n, _ := bpf.ReadU32(raw, offArgsLen)
	ev.ArgsTruncated = n > argsLen
	args, _ := bpf.ReadBytes(raw, offArgs, int(min(n, argsLen)))
	ev.Args = splitArgs(args)
	return nil
}

// splitArgs splits NUL-terminated arguments (the last may be cut).
func splitArgs(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		out = append(out, string(b[:i]))
		b = b[min(i+1, len(b)):]
	}
	return out
}

// userStrings name the strings after the head of a user-written record.
var userStrings = [3]string{"exe", "args", "cgroup path"}

// decodeUser decodes what follows the head of a record user space wrote:
// three strings, each a u32 length and its bytes: exe, the arguments
// (NUL-terminated, as in /proc/PID/cmdline) and the cgroup path; then a
// u32 of flags (1: the arguments were cut).
func decodeUser(raw []byte, ev *Event) error {
	off := HeadSize
	var strs [3][]byte
	for i := range strs {
		n, err := bpf.ReadU32(raw, off)
		if err != nil {
			return fmt.Errorf("proc %s record: %s length: %w", ev.Kind, userStrings[i], err)
		}
		if n > MaxUserString {
			return fmt.Errorf("proc %s record: %s at offset %d: %w: %d bytes (at most %d)", ev.Kind, userStrings[i], off, ErrTooLong, n, MaxUserString)
		}
		if strs[i], err = bpf.ReadBytes(raw, off+4, int(n)); err != nil {
			return fmt.Errorf("proc %s record: %s: %w", ev.Kind, userStrings[i], err)
		}
		off += 4 + int(n)
	}
	flags, err := bpf.ReadU32(raw, off)
	if err != nil {
		return fmt.Errorf("proc %s record: flags: %w", ev.Kind, err)
	}
	ev.Exe = string(strs[0])
	ev.Args = splitArgs(strs[1])
	ev.ArgsTruncated = flags&1 != 0
	ev.CgroupPath = string(strs[2])
	return nil
}

// AppendRecord appends the raw bytes of a record that user space writes
// into the proc stream (kind KindSnapshot or KindCgroup; ev.Kind is not
// used): the head, then exe, the arguments and the cgroup path, each cut
// to MaxUserString bytes, and the flags.
func AppendRecord(dst []byte, kind uint32, ev *Event) []byte {
	var h [HeadSize]byte
	ne := binary.NativeEndian
	ne.PutUint64(h[offKtime:], ev.KtimeNs)
	ne.PutUint32(h[offKind:], kind)
	ne.PutUint32(h[offPID:], ev.Pid)
	ne.PutUint32(h[offTID:], ev.Tid)
	ne.PutUint32(h[offPPID:], ev.Ppid)
	ne.PutUint32(h[offUID:], ev.UID)
	ne.PutUint32(h[offExitCode:], ev.ExitCode)
	ne.PutUint64(h[offCgroupID:], ev.CgroupID)
	ne.PutUint64(h[offStart:], ev.StartNs)
	copy(h[offComm:offComm+commLen-1], ev.Command)
	ne.PutUint32(h[offCPU:], 0xffffffff) // no CPU: written by user space
	dst = append(dst, h[:]...)
	var args []byte
	for _, a := range ev.Args {
		args = append(args, a...)
		args = append(args, 0)
	}
	flags := uint32(0)
	if ev.ArgsTruncated || len(args) > MaxUserString {
		flags |= 1
	}
	for _, s := range [][]byte{[]byte(ev.Exe), args, []byte(ev.CgroupPath)} {
		s = s[:min(len(s), MaxUserString)]
		dst = ne.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	return ne.AppendUint32(dst, flags)
}
