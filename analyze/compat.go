package analyze

import (
	"bytes"
	"encoding/binary"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
)

// execV1Size is the size of struct exec_event before the exec tracer
// recorded arguments: the current layout up to filename_trunc, then 4 bytes
// of padding where args_len now is, then nothing. Recordings made then
// still decode: the event is padded with zeros (args_len 0: no arguments).
const execV1Size = 304

// execV1Data is the end of v1's fields (the padding after it is ignored).
const execV1Data = 300

// The layout of struct exec_event (bpf/tracers/exec/event.go) that the fast
// path below knows; any other EventSize uses exec.Decode alone.
const (
	execSize        = 560
	execOffPID      = 8
	execOffPPID     = 12
	execOffUID      = 16
	execOffOldPID   = 20
	execOffComm     = 24
	execOffFilename = 40
	execOffTrunc    = 296
	execOffArgsLen  = 300
	execOffArgs     = 304
	execArgsMax     = 256
)

// maxInterned bounds the strings and argument lists an execDecoder keeps.
const maxInterned = 1 << 16

// execDecoder decodes exec events exactly as exec.Decode does (the round
// trip tests check it against the tracer's Decode), but interns comm,
// filename and argv: an exec table is very repetitive, and without the
// three to five allocations per event the export runs at about twice the
// rate. It also decodes the previous (v1) layout.
type execDecoder struct {
	pad   []byte
	old   uint64 // events of the previous layout
	strs  map[string]string
	argvs map[string][]string
}

func (d *execDecoder) decode(raw []byte, ev *exec.Event) error {
	if len(raw) == execV1Size && execV1Size < exec.EventSize {
		if d.pad == nil {
			d.pad = make([]byte, exec.EventSize)
		}
		copy(d.pad, raw[:execV1Data])
		clear(d.pad[execV1Data:])
		d.old++
		raw = d.pad
	}
	if exec.EventSize != execSize || len(raw) < execSize {
		return exec.Decode(raw, ev)
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
	return nil
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
