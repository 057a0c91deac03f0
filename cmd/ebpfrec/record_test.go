package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
		{"keep one segment", []string{"--keep-segments", "1"}},
		{"size unit", []string{"--segment-size", "12XB"}},
		{"keep less than two segments", []string{"--segment-size", "1048576", "--keep-size", "1048577"}},
		// pid 0 is no process: a usage error (it was exit 1, "invalid
		// argument", from pidfd_open).
		{"pid 0", []string{"--pid", "0"}},
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
		"--ringbuf", "events_rb=test_event", "--perfbuf", "events_perf"})
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
		// The layout of the struct named, and of the built-in proc's.
		if want := s.Name != "events_perf"; (len(s.Layout) > 0) != want {
			t.Errorf("stream %s: layout of %d bytes", s.Name, len(s.Layout))
		}
		if s.Tracer == "proc" { // every recording's process table, not the object's
			continue
		}
		if s.Object == nil || s.Object.SHA256 == "" {
			t.Errorf("stream %s: no object identity", s.Name)
		}
	}
	if got := strings.Join(names, ","); got != "events_rb:ringbuf,events_perf:perfbuf,proc:ringbuf" {
		t.Errorf("streams %s", got)
	}
}

// --drops names a user object's drop counter: the ring buffer's loss in
// the kernel is then counted (stored as such, and shown by info), where
// without it it is unknown. Bad --drops values are usage errors.
func TestRecordUserObjectDrops(t *testing.T) {
	kerneltest.Require(t)
	for _, tc := range []struct {
		name    string
		args    []string
		counted bool
	}{
		{"with --drops", []string{"--drops", "events_rb=rb_drops"}, true},
		{"without", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "rec")
			args := append([]string{"ebpfrec", "record", "-q", "--duration", "200ms", "-o", out, "--object", testObject,
				"--set", "target_tgid=1", "--attach", "tracepoint:syscalls/sys_enter_getppid=rb_getppid", "--ringbuf", "events_rb"}, tc.args...)
			if code := run(args); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			sum, err := store.Info(out)
			if err != nil {
				t.Fatal(err)
			}
			st, ok := sum.Meta.Stream("events_rb")
			if !ok {
				t.Fatalf("no stream events_rb: %+v", sum.Meta.Streams)
			}
			if st.KernelLossUncounted == tc.counted {
				t.Errorf("events_rb: kernel loss uncounted %v, want %v", st.KernelLossUncounted, !tc.counted)
			}
		})
	}
	for _, bad := range [][]string{
		{"--drops", "events_rb"},               // no counter
		{"--drops", "events_perf=rb_drops"},    // a map not recorded
		{"--drops", "events_rb=no_such_map"},   // no such counter
		{"--drops", "events_rb=events_perf"},   // not a per-CPU array
		{"--emitted", "events_rb=events_perf"}, // the same for --emitted
	} {
		out := filepath.Join(t.TempDir(), "rec")
		args := append([]string{"ebpfrec", "record", "-q", "--duration", "200ms", "-o", out, "--object", testObject, "--ringbuf", "events_rb"}, bad...)
		if code := run(args); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", bad, code, exitUsage)
		}
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

// envGetsid makes the test binary call getsid(2) this many times (or, if
// negative, until killed) and exit (see TestMain).
const envGetsid = "EBPFREC_TEST_GETSID"

const filteredObject = "../../bpf/testdata/filtered_x86_bpfel.o"

// record --object with -- COMMAND records the command only, for an object
// that includes ebpfrec_filter.h, while another process makes the same
// calls all along. It panicked before (a nil process filter).
func TestRecordObjectCommandFiltered(t *testing.T) {
	kerneltest.Require(t)
	const n = 300
	other := exec.Command(os.Args[0])
	other.Env = append(os.Environ(), envGetsid+"=-1")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	}()
	t.Setenv(envGetsid, strconv.Itoa(n)) // for the command
	out := filepath.Join(t.TempDir(), "rec")
	stdout, stderr, code := runCmd(t, "record", "--no-proc", "-o", out, "--object", filteredObject, "--", os.Args[0])
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	r, err := store.Open(out, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tgids := map[uint32]int{}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			tgids[binary.LittleEndian.Uint32(e.Raw)]++
		}
	}
	if len(tgids) != 1 {
		t.Fatalf("events by process %v, want %d of the command alone (the other process is %d)", tgids, n, other.Process.Pid)
	}
	for tgid, c := range tgids {
		if c != n || int(tgid) == other.Process.Pid || int(tgid) == os.Getpid() {
			t.Errorf("%d events of process %d, want %d of the command (other %d, ebpfrec %d)", c, tgid, n, other.Process.Pid, os.Getpid())
		}
	}
	if !strings.Contains(stdout, "recorded 300 events") {
		t.Errorf("summary does not say 300 events:\n%s", stdout)
	}
}

// --pid, --comm and -- COMMAND with an object that cannot be filtered by
// process are refused as usage errors that say how to opt in, and leave
// nothing behind. They were ignored before (-- COMMAND panicked).
func TestRecordObjectSelectionRefused(t *testing.T) {
	for _, sel := range [][]string{{"--pid", "1"}, {"--comm", "nginx"}, {"--", "true"}} {
		out := filepath.Join(t.TempDir(), "rec")
		args := append([]string{"record", "-q", "--duration", "1s", "-o", out, "--object", testObject,
			"--attach", "tracepoint:syscalls/sys_enter_getppid=rb_getppid", "--ringbuf", "events_rb"}, sel...)
		_, stderr, code := runCmd(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", sel, code, exitUsage, stderr)
		}
		for _, w := range []string{"collection testprog_x86_bpfel", "cannot select processes", "ebpfrec_filter.h", "ebpfrec_selected()"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: error does not say %q: %s", sel, w, stderr)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: %s left behind (stat: %v)", sel, out, err)
		}
	}
}

// record onto a disk that fills up (a 2 MiB tmpfs) exits non-zero with an
// error naming the storage failure; its summary counts as recorded what the
// recording holds and the rest as storage_lost; info says how it ended.
func TestRecordFullDisk(t *testing.T) {
	kerneltest.Require(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	}()
	dir := filepath.Join(mnt, "rec")
	t.Setenv(envGetsid, "1000000") // the command: a getsid storm
	// Uncompressed: a slow VM's storm, compressed, fitted in the 2 MiB.
	stdout, stderr, code := runCmd(t, "record", "--no-proc", "--tracer", "syscalls", "--flush-interval", "20ms", "--flush-bytes", "65536", "--compress=false", "-o", dir, "--", os.Args[0])
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr, "storage failure") || !strings.Contains(stderr, "no space left on device") {
		t.Errorf("the error does not name the storage failure:\n%s", stderr)
	}
	if !strings.Contains(stdout, "error: a storage failure stopped the recording") || !strings.Contains(stdout, "storage_lost") {
		t.Errorf("the summary does not say it:\n%s", stdout)
	}
	// The summary's row: stream kind recorded batches bytes
	// kernel_lost_perfbuf kernel_lost_ringbuf ebpfrec_dropped storage_lost emitted
	// kernel_missed.
	var row []string
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) >= 10 && f[0] == "syscalls" { // then kernel_missed: a count or "not counted"
			row = f
		}
	}
	if row == nil {
		t.Fatalf("no syscalls row in the summary:\n%s", stdout)
	}
	n := func(i int) uint64 {
		v, err := strconv.ParseUint(row[i], 10, 64)
		if err != nil {
			t.Fatalf("summary row %q: %v", row, err)
		}
		return v
	}
	recorded, batches, storageLost, emitted := n(2), n(3), n(8), n(9)
	if storageLost == 0 || emitted != recorded+n(5)+n(6)+n(7)+storageLost {
		t.Errorf("summary row %q: want storage_lost > 0 and emitted = recorded + the losses", row)
	}
	info, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Events != recorded || info.Batches != batches {
		t.Errorf("the recording holds %d events in %d batches; the summary says %d in %d", info.Events, info.Batches, recorded, batches)
	}
	out, _, code := runCmd(t, "info", dir)
	if code != 0 || !strings.Contains(out, "note: recorder: ended by a storage failure") ||
		!strings.Contains(out, fmt.Sprintf("note: recorder: storage_lost: %d events read from the kernel were not stored", storageLost)) {
		t.Errorf("info does not say how the recording ended (exit %d):\n%s", code, out)
	}
}

// A user stream recorded with --ringbuf MAP=STRUCT replays with its
// fields by name, in text and JSON.
func TestReplayUserStreamFields(t *testing.T) {
	kerneltest.Require(t)
	out := filepath.Join(t.TempDir(), "rec")
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"ebpfrec", "record", "-q", "--duration", "2s", "-o", out, "--object", testObject,
			"--set", fmt.Sprintf("target_tgid=%d", os.Getpid()), "--attach", "tracepoint:syscalls/sys_enter_getppid=rb_getppid",
			"--ringbuf", "events_rb=test_event", "--no-proc"})
	}()
	// Events until the recorder has seen some (it attaches after a moment).
	var code int
	for loop := true; loop; {
		select {
		case code = <-done:
			loop = false
		default:
			unix.Getppid()
			time.Sleep(time.Millisecond)
		}
	}
	if code != 0 {
		t.Fatalf("record: exit code %d", code)
	}
	text, errOut, code := runCmd(t, "replay", out)
	if code != 0 {
		t.Fatalf("replay: %d: %s", code, errOut)
	}
	want := "events_rb: test_event seq=0 ktime_ns="
	tag := " tag=[0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39]"
	pid := fmt.Sprintf(" tgid=%d cpu=", os.Getpid())
	if !strings.Contains(text, want) || !strings.Contains(text, tag) || !strings.Contains(text, pid) {
		t.Fatalf("replay text lacks %q, %q or %q:\n%.2000s", want, pid, tag, text)
	}
	js, errOut, code := runCmd(t, "replay", "--format", "json", out)
	if code != 0 {
		t.Fatalf("replay --format json: %d: %s", code, errOut)
	}
	line, _, _ := strings.Cut(js, "\n")
	var ev struct {
		Stream, Struct string
		Fields         map[string]any
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	tags, _ := ev.Fields["tag"].([]any)
	if ev.Stream != "events_rb" || ev.Struct != "test_event" || ev.Fields["seq"] != float64(0) || ev.Fields["tgid"] != float64(os.Getpid()) || len(tags) != 40 || tags[39] != float64(39) {
		t.Fatalf("replay JSON: %+v", ev)
	}
}
