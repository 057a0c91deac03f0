package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc/gofunctest"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// TestRecordGofuncCommand: `ebpfrec record --tracer gofunc --func GLOB --
// SERVER selftest N` instruments the server before it runs; it answers
// its own N requests, and replay shows exactly N entries and N exits of
// its handler, with their goroutines and latencies.
func TestRecordGofuncCommand(t *testing.T) {
	kerneltest.Require(t)
	srv := gofunctest.Server(t, "../../bpf/tracers/gofunc/testdata")
	out := filepath.Join(t.TempDir(), "rec")
	const n = 6
	stdout, stderr, code := runCmd(t, "record", "--tracer", "gofunc", "--func", "main.handle*", "--wakeup-every", "1", "-o", out, "--", srv, "selftest", "6")
	if code != 0 || !strings.Contains(stdout, "instrumented: gofunc: pid ") || strings.Contains(stdout, "not instrumented") {
		t.Fatalf("record: exit %d\n%s%s", code, stdout, stderr)
	}
	text, stderr, code := runReplay(t, "--stream", "gofunc", out)
	if code != 0 || stderr != "" {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	kinds := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.Contains(l, "func=main.handleHello goid=") {
			t.Errorf("line %q", l)
		}
		switch {
		case strings.Contains(l, "kind=entry"):
			kinds["entry"]++
		case strings.Contains(l, "kind=exit") && strings.Contains(l, " latency=") && !strings.Contains(l, "latency=?"):
			kinds["exit"]++
		}
	}
	if kinds["entry"] != n || kinds["exit"] != n {
		t.Errorf("replay shows %v, want %d entries and %d exits with latencies:\n%s", kinds, n, n, text)
	}
}

// TestRecordGofuncUsage: --func and --exec need a user-space tracer, and
// gofunc needs --func.
func TestRecordGofuncUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rec")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tracer", "exec", "--func", "main.x"}, "--func goes with --tracer gofunc"},
		{[]string{"--tracer", "exec", "--exec", "/bin/true"}, "--exec goes with a user-space tracer"},
		{[]string{"--tracer", "gofunc", "--exec", "/bin/true"}, "--func"},
	} {
		_, stderr, code := runCmd(t, append(append([]string{"record", "-o", out}, c.args...), "-d", "1s")...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("record %v: exit %d, %q; want a usage error saying %q", c.args, code, stderr, c.want)
		}
	}
}
