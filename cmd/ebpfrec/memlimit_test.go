package main

import (
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// TestRecordMemoryLimit: a recording bounds the Go heap of its process to
// its store writer's buffers plus recordMemoryBase (scripts/bench-footprint.sh
// measures what that does to its resident memory), scaled with
// --flush-bytes, and leaves a GOMEMLIMIT of the environment alone.
func TestRecordMemoryLimit(t *testing.T) {
	kerneltest.Require(t)
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	const sentinel = 1 << 40
	for _, c := range []struct {
		name       string
		env        string // GOMEMLIMIT
		flushBytes string
		want       int64
	}{
		{"default", "", "", recordMemoryBase + 4*(4<<20)},
		{"flush-bytes", "", "1048576", recordMemoryBase + 4*(1<<20)},
		{"GOMEMLIMIT", "3GiB", "", sentinel},
	} {
		t.Setenv("GOMEMLIMIT", c.env)
		debug.SetMemoryLimit(sentinel)
		args := []string{"record", "-q", "--tracer", "exit", "--duration", "200ms", "-o", filepath.Join(t.TempDir(), "rec")}
		if c.flushBytes != "" {
			args = append(args, "--flush-bytes", c.flushBytes)
		}
		if _, stderr, code := runCmd(t, args...); code != 0 {
			t.Fatalf("%s: record: exit %d: %s", c.name, code, stderr)
		}
		if got := debug.SetMemoryLimit(-1); got != c.want {
			t.Errorf("%s: memory limit %d, want %d", c.name, got, c.want)
		}
	}
}
