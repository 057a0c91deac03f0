package all_test

import (
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// TestStreamsNameTheirStruct: every built-in stream names a struct that is
// in its tracer's object, whose layout builds; the recorder stores it.
func TestStreamsNameTheirStruct(t *testing.T) {
	all, err := tracers.All(tracers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range all {
		spec, err := tr.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tr.Streams() {
			var st *btf.Struct
			if s.Struct == "" {
				t.Errorf("%s: stream %s names no struct", tr.Name(), s.Name)
				continue
			}
			if err := spec.Types.TypeByName(s.Struct, &st); err != nil {
				t.Errorf("%s: stream %s: struct %s: %v", tr.Name(), s.Name, s.Struct, err)
				continue
			}
			l, err := btflayout.New(st, spec.ByteOrder)
			if err != nil {
				t.Errorf("%s: stream %s: %v", tr.Name(), s.Name, err)
				continue
			}
			if _, err := l.Marshal(); err != nil {
				t.Errorf("%s: stream %s: %v", tr.Name(), s.Name, err)
			}
		}
	}
}
