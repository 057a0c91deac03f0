package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
)

// TestRecursionMissesCounted: which kernels count the skipped runs of
// which programs, by release as uname -r writes it.
func TestRecursionMissesCounted(t *testing.T) {
	for _, c := range []struct {
		typ     ebpf.ProgramType
		attach  ebpf.AttachType
		release string
		want    bool
	}{
		{ebpf.TracePoint, ebpf.AttachNone, "5.10.0-32-amd64", false},
		{ebpf.TracePoint, ebpf.AttachNone, "6.1.0-50-amd64", false},
		{ebpf.TracePoint, ebpf.AttachNone, "6.6.9", false},
		{ebpf.TracePoint, ebpf.AttachNone, "6.7.0", true},
		{ebpf.Kprobe, ebpf.AttachNone, "6.12.117+deb13-amd64", true},
		{ebpf.TracePoint, ebpf.AttachNone, "6.18.44-fc-v1272", true},
		{ebpf.TracePoint, ebpf.AttachNone, "10.0", true},
		{ebpf.PerfEvent, ebpf.AttachNone, "6.18.44", false},
		{ebpf.RawTracepoint, ebpf.AttachNone, "6.1.0-50-amd64", false},
		{ebpf.RawTracepoint, ebpf.AttachNone, "6.2.0", true},
		{ebpf.Tracing, ebpf.AttachTraceRawTp, "6.1.0", false},
		{ebpf.Tracing, ebpf.AttachTraceRawTp, "6.2rc1", true},
		{ebpf.Tracing, ebpf.AttachTraceFEntry, "5.11.0", false},
		{ebpf.Tracing, ebpf.AttachTraceFEntry, "5.12.0", true},
		{ebpf.XDP, ebpf.AttachNone, "5.10.0", true}, // never skipped: 0 is exact
		{ebpf.TracePoint, ebpf.AttachNone, "", false},
		{ebpf.TracePoint, ebpf.AttachNone, "linux", false},
	} {
		if got := RecursionMissesCounted(c.typ, c.attach, c.release); got != c.want {
			t.Errorf("%s (attach %s) on %q: counted %v, want %v", c.typ, c.attach, c.release, got, c.want)
		}
	}
}
