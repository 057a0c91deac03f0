package analyze

import "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"

// execV1Size is the size of struct exec_event before the exec tracer
// recorded arguments: the current layout up to filename_trunc, then 4 bytes
// of padding where args_len now is, then nothing. Recordings made then (such as the demo fixture) still decode:
// the event is padded with zeros (args_len 0: no arguments).
const execV1Size = 304

// execV1Data is the end of v1's fields (the padding after it is ignored).
const execV1Data = 300

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
		copy(d.pad, raw[:execV1Data])
		clear(d.pad[execV1Data:])
		d.old++
		return exec.Decode(d.pad, ev)
	}
	return exec.Decode(raw, ev)
}
