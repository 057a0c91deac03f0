package analyze

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
)

// The layout of struct exec_event (bpf/tracers/exec/event.go) that the fast
// path below knows; events of any other size, earlier layouts included,
// and any other exec.EventSize use exec.Decode, which knows every layout.
const (
	execSize        = 568
	execOffPID      = 8
	execOffPPID     = 12
	execOffUID      = 16
	execOffOldPID   = 20
	execOffComm     = 24
	execOffFilename = 40
	execOffTrunc    = 296
	execOffArgsLen  = 300
	execOffArgs     = 304
	execOffCPU      = 560
	execArgsMax     = 256
)

// maxInterned bounds the strings and argument lists an execDecoder keeps.
const maxInterned = 1 << 16

// execDecoder decodes exec events exactly as exec.Decode does (the round
// trip tests check it against the tracer's Decode), but interns comm,
// filename and argv: an exec table is very repetitive, and without the
// three to five allocations per event the export runs at about twice the
// rate. Events of earlier layouts go to exec.Decode.
type execDecoder struct {
	old   uint64 // events of an earlier layout (for a warning)
	strs  map[string]string
	argvs map[string][]string
}

func (d *execDecoder) decode(raw []byte, ev *exec.Event) error {
	if exec.EventSize != execSize || len(raw) < execSize {
		err := exec.Decode(raw, ev)
		if err == nil && len(raw) < exec.EventSize {
			d.old++
		}
		return err
	}
	comm, ok1 := cstring(raw[execOffComm:execOffFilename])
	filename, ok2 := cstring(raw[execOffFilename:execOffTrunc])
	if !ok1 || !ok2 {
		return exec.Decode(raw, ev) // its error
	}
	ne := binary.NativeEndian
	ev.KtimeNs = ne.Uint64(raw)
	ev.Pid = ne.Uint32(raw[execOffPID:])
	ev.Ppid = ne.Uint32(raw[execOffPPID:])
	ev.UID = ne.Uint32(raw[execOffUID:])
	ev.OldPid = ne.Uint32(raw[execOffOldPID:])
	ev.FilenameTruncated = ne.Uint32(raw[execOffTrunc:]) != 0
	n := ne.Uint32(raw[execOffArgsLen:])
	ev.ArgsTruncated = n > execArgsMax
	ev.Command = d.intern(comm)
	ev.Filename = d.intern(filename)
	ev.Args = d.argv(raw[execOffArgs : execOffArgs+int(min(n, execArgsMax))])
	ev.CPU = tracers.CPU(ne.Uint32(raw[execOffCPU:]))
	return nil
}

// exportWarning says how many events had an earlier layout.
func (d *execDecoder) exportWarning() string {
	if d.old == 0 {
		return ""
	}
	return fmt.Sprintf("%d exec events have an earlier layout, of an older exec tracer: what it did not record (arguments, cpu) is exported empty", d.old)
}

// cstring returns the bytes of b up to its first NUL; false if none.
func cstring(b []byte) ([]byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, false
	}
	return b[:i], true
}

func (d *execDecoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if d.strs == nil {
		d.strs = map[string]string{}
	}
	if len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s
}

// argv splits NUL-separated arguments as exec.Decode does (a last argument
// without NUL was cut); the lists are shared between events and must not be
// modified.
func (d *execDecoder) argv(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	if a, ok := d.argvs[string(b)]; ok {
		return a
	}
	var a []string
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			i = len(rest)
		}
		a = append(a, d.intern(rest[:i]))
		rest = rest[min(i+1, len(rest)):]
	}
	if d.argvs == nil {
		d.argvs = map[string][]string{}
	}
	if len(d.argvs) < maxInterned {
		d.argvs[string(b)] = a
	}
	return a
}
