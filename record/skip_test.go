package record

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	execrec "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// unsupportedTracer is a built-in tracer that no kernel can run, as a
// tracer whose tracepoint or kernel feature is missing looks to the
// recorder.
type unsupportedTracer struct{ tracers.Builtin }

const unsupportedName = "test-unsupported"

var errNoSuchFeature = errors.New("this kernel lacks the test's feature")

func (unsupportedTracer) Name() string     { return unsupportedName }
func (unsupportedTracer) Supported() error { return errNoSuchFeature }

func init() {
	tracers.Register(unsupportedName, func(o tracers.Options) (tracers.Builtin, error) {
		return unsupportedTracer{execrec.New(o)}, nil
	})
}

// TestUnsupportedTracerSkipped: a tracer this kernel cannot run is skipped,
// and named with its reason in the summary, while the others record; asked
// for alone, it fails the recording.
func TestUnsupportedTracerSkipped(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, NoProc: true, Command: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"exec", unsupportedName} {
		if err := rec.AddBuiltin(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatalf("a recording with one unsupported tracer failed: %v", err)
	}
	if len(sum.Skipped) != 1 || !strings.HasPrefix(sum.Skipped[0], unsupportedName+": ") || !strings.Contains(sum.Skipped[0], errNoSuchFeature.Error()) {
		t.Errorf("Skipped = %q, want %s with its reason", sum.Skipped, unsupportedName)
	}
	if len(sum.Streams) != 1 || sum.Streams[0].Name != "exec" || sum.Streams[0].Recorded == 0 {
		t.Errorf("streams %+v, want exec with the command's exec", sum.Streams)
	}

	alone, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec"), Command: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alone.AddBuiltin(unsupportedName); err != nil {
		t.Fatal(err)
	}
	if _, err := alone.Run(ctx); !errors.Is(err, errNoSuchFeature) {
		t.Errorf("recording the unsupported tracer alone: %v, want its reason", err)
	}
}
