package analyze

import "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"

// execV1Size is the size of struct exec_event before the exec tracer
// recorded arguments: the current layout without args_len and args, which
// follow it. Recordings made then (such as the demo fixture) still decode:
// the event is padded with zeros (args_len 0: no arguments).
const execV1Size = 304

// execDecoder decodes exec events of the current and the previous layout.
type execDecoder struct {
	pad []byte
	// old counts events of the previous layout.
	old uint64
}

func (d *execDecoder) decode(raw []byte, ev *exec.Event) error {
	if len(raw) == execV1Size && execV1Size < exec.EventSize {
		if d.pad == nil {
			d.pad = make([]byte, exec.EventSize)
		}
		copy(d.pad, raw)
		clear(d.pad[execV1Size:])
		d.old++
		return exec.Decode(d.pad, ev)
	}
	return exec.Decode(raw, ev)
}
