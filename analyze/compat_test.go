package analyze

import (
	"reflect"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
)

// FuzzExecDecoder: the export's interning exec decoder and the tracer's
// exec.Decode agree on every input, of every layout: both refuse it, or
// both give the same event.
func FuzzExecDecoder(f *testing.F) {
	full := synth.Exec(&exec.Event{KtimeNs: 1, Pid: 2, Command: "c", Filename: "/f", Args: []string{"a", "b"}, CPU: 1})
	for _, n := range exec.LayoutSizes {
		f.Add(full[:n])
	}
	f.Add(full[:100])
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d execDecoder
		var got, want exec.Event
		gerr, werr := d.decode(raw, &got), exec.Decode(raw, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%d bytes: decoder error %v, exec.Decode error %v", len(raw), gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%d bytes: decoder %+v, exec.Decode %+v", len(raw), got, want)
		}
	})
}
