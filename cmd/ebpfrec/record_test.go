package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

const testObject = "../../bpf/testdata/testprog_x86_bpfel.o"

// Bad usage exits 2 and leaves no recording behind.
func TestRecordUsageErrors(t *testing.T) {
	notBPF := filepath.Join(t.TempDir(), "not-bpf.o")
	if err := os.WriteFile(notBPF, []byte("this is not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown tracer", []string{"--tracer", "nosuch"}},
		{"bad flag", []string{"--no-such-flag"}},
		{"bad duration", []string{"--duration", "soon"}},
		{"bad sync", []string{"--sync", "sometimes"}},
		{"not a BPF object", []string{"--object", notBPF}},
		{"missing object", []string{"--object", "/no/such/file.o"}},
		{"missing map", []string{"--object", testObject, "--ringbuf", "no_such_map"}},
		{"map of wrong kind", []string{"--object", testObject, "--perfbuf", "events_rb"}},
		{"bad attachment", []string{"--object", testObject, "--attach", "tracepoint:nogroup=rb_getppid"}},
		{"unknown program", []string{"--object", testObject, "--attach", "tracepoint:syscalls/sys_enter_getppid=no_prog"}},
		{"unknown variable", []string{"--object", testObject, "--set", "no_var=1"}},
		{"attach without object", []string{"--attach", "tracepoint:a/b=c"}},
		{"ringbuf size", []string{"--ringbuf-size", "1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "rec")
			args := append([]string{"ebpfrec", "record", "-q", "--duration", "1s", "-o", out}, tc.args...)
			if tc.name == "bad duration" {
				args = append([]string{"ebpfrec", "record", "-q", "-o", out}, tc.args...)
			}
			if code := run(args); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s left behind (stat: %v)", out, err)
			}
		})
	}
	if code := run([]string{"ebpfrec", "record", "-q", "-o", nonEmpty}); code != exitUsage {
		t.Errorf("non-empty output dir: exit code %d, want %d", code, exitUsage)
	}
}

// A runtime failure after the recording was created (a tracepoint that does
// not exist) exits 1 and leaves no half-made recording.
func TestRecordAttachFailureLeavesNothing(t *testing.T) {
	kerneltest.Require(t)
	out := filepath.Join(t.TempDir(), "rec")
	code := run([]string{"ebpfrec", "record", "-q", "--duration", "1s", "-o", out, "--object", testObject,
		"--attach", "tracepoint:syscalls/no_such_tracepoint=rb_getppid", "--ringbuf", "events_rb"})
	if code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s left behind (stat: %v)", out, err)
	}
}

// A user object recorded through the command line, with a constant set.
func TestRecordUserObject(t *testing.T) {
	kerneltest.Require(t)
	out := filepath.Join(t.TempDir(), "rec")
	code := run([]string{"ebpfrec", "record", "-q", "--duration", "300ms", "-o", out, "--object", testObject,
		"--set", "target_tgid=1", "--attach", "tracepoint:syscalls/sys_enter_getppid=rb_getppid",
		"--attach", "tracepoint:syscalls/sys_enter_getpgid=perf_getpgid",
		"--ringbuf", "events_rb", "--perfbuf", "events_perf"})
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	sum, err := store.Info(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sum.Meta.Streams {
		names = append(names, s.Name+":"+s.Kind.String())
		if s.Object == nil || s.Object.SHA256 == "" {
			t.Errorf("stream %s: no object identity", s.Name)
		}
	}
	if got := strings.Join(names, ","); got != "events_rb:ringbuf,events_perf:perfbuf" {
		t.Errorf("streams %s", got)
	}
}

// --metrics-addr serves the readers' Prometheus metrics on loopback while
// recording.
func TestRecordMetricsEndpoint(t *testing.T) {
	kerneltest.Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	out := filepath.Join(t.TempDir(), "rec")
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"ebpfrec", "record", "-q", "--duration", "3s", "--tracer", "open", "-o", out,
			"--metrics-addr", fmt.Sprintf(":%d", port)})
	}()
	var body string
	for i := 0; i < 50 && body == ""; i++ {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "ebpfrec_events_received_total") {
			body = string(b)
		}
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(body, `ebpfrec_events_received_total{kind="ringbuf",map="open"}`) {
		t.Fatalf("metrics do not show the open stream:\n%s", body)
	}
}

// TestRecordReturnsCommandStatus: record -- CMD exits with CMD's status, as
// time and strace do (128+N for a signal), so a wrapped CI job still fails.
func TestRecordReturnsCommandStatus(t *testing.T) {
	kerneltest.Require(t)
	for _, c := range []struct {
		script string
		want   int
	}{{"exit 0", 0}, {"exit 3", 3}, {"kill -TERM $$", 128 + 15}} {
		dir := filepath.Join(t.TempDir(), "rec")
		_, errOut, code := runCmd(t, "record", "--quiet", "--tracer", "exec", "-o", dir, "--", "/bin/sh", "-c", c.script)
		if code != c.want {
			t.Errorf("record -- sh -c %q: exit status %d, want %d (stderr %q)", c.script, code, c.want, errOut)
		}
	}
}
