package record

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// TestSmallPerfBuffer: a perf buffer of one page records, the default
// wakeup watermark fitted to it. ebpfrec record -t exit
// --perf-buffer-size 4096 failed before: "perf buffer "exit": failed to
// create perf ring for CPU 0: watermark must be smaller than
// perCPUBuffer" (the default watermark is 4096 bytes).
func TestSmallPerfBuffer(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"/bin/true"}, Perfbuf: bpf.PerfbufConfig{PerCPUBufferSize: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(exit.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(decodeAll(t, dir)[exit.StreamExit]); n != 1 {
		t.Errorf("%d exit events, want 1 (/bin/true's)", n)
	}
}
