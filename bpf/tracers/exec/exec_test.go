package exec_test

import (
	"context"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// runs each argument as a command, in order
		"run": func(args []string) int {
			for _, a := range args {
				if err := osexec.Command(a).Run(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			return 0
		},
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExecKnownWorkload follows a child process (as `record -- COMMAND`
// does) that runs N distinctly named copies of /bin/true, and expects
// exactly those N executions.
func TestExecKnownWorkload(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f, WakeupEvery: 4})
	rd := tracertest.NewReader(t, tr, exec.StreamExec)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}

	const n = 10
	dir := t.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "xtrue-"+strconv.Itoa(i))
		copyFile(t, "/bin/true", p)
		paths = append(paths, p)
	}
	child := tracertest.Start(t, "run", paths...)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}

	evs := rd.Drain(t)
	if len(evs) != n {
		for _, e := range evs {
			t.Log(string(tracers.AppendLine(nil, e)))
		}
		t.Fatalf("got %d exec events, want %d", len(evs), n)
	}
	seen := map[uint32]bool{}
	for i, ev := range evs {
		e := ev.(*exec.Event)
		t.Log(string(tracers.AppendLine(nil, e)))
		if e.Filename != paths[i] || e.Command != "xtrue-"+strconv.Itoa(i) {
			t.Errorf("event %d: filename %q comm %q, want %q %q", i, e.Filename, e.Command, paths[i], "xtrue-"+strconv.Itoa(i))
		}
		if e.Ppid != child.PID {
			t.Errorf("event %d: ppid %d, want %d", i, e.Ppid, child.PID)
		}
		if e.Pid == child.PID || e.Pid == 0 || seen[e.Pid] {
			t.Errorf("event %d: pid %d (child %d)", i, e.Pid, child.PID)
		}
		seen[e.Pid] = true
		if len(e.Args) != 1 || e.Args[0] != paths[i] || e.ArgsTruncated {
			t.Errorf("event %d: args %q", i, e.Args)
		}
		if e.UID != uint32(os.Getuid()) || e.OldPid != e.Pid || e.FilenameTruncated || e.KtimeNs == 0 {
			t.Errorf("event %d: %+v", i, e)
		}
		if i > 0 && e.KtimeNs < evs[i-1].KernelTime() {
			t.Errorf("event %d: time goes back", i)
		}
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
	if nf, err := f.Followed(); err != nil || nf < n {
		t.Errorf("follow program allowed %d processes (%v), want >= %d", nf, err, n)
	}
}

func TestLayout(t *testing.T) {
	if got := exec.LayoutSize(); got != exec.EventSize {
		t.Fatalf("struct exec_event is %d bytes, decoder expects %d", got, exec.EventSize)
	}
	_ = unsafe.Sizeof(0)
}

func TestDecode(t *testing.T) {
	raw := make([]byte, exec.EventSize)
	ne := func(off int, v uint64, size int) {
		for i := 0; i < size; i++ {
			raw[off+i] = byte(v >> (8 * i))
		}
	}
	ne(0, 123456789, 8)
	ne(8, 42, 4)
	ne(12, 1, 4)
	ne(16, 1000, 4)
	ne(20, 42, 4)
	copy(raw[24:], "ls\x00")
	copy(raw[40:], "/bin/ls\x00")
	ne(300, 10, 4)
	copy(raw[304:], "ls\x00-l\x00/tmp\x00")
	ne(560, 1, 4)
	var e exec.Event
	if err := exec.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	want := exec.Event{KtimeNs: 123456789, Pid: 42, Ppid: 1, UID: 1000, OldPid: 42, Command: "ls", Filename: "/bin/ls",
		Args: []string{"ls", "-l", "/tmp"}, CPU: 1}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %+v want %+v", e, want)
	}
	// Earlier layouts: before cpu (560 bytes), the same with the CPU
	// unknown; v1 (304 bytes, before the arguments, with 4 bytes of padding
	// where args_len is now), without arguments too.
	var old exec.Event
	want.CPU = tracers.UnknownCPU
	if err := exec.Decode(raw[:560], &old); err != nil || !reflect.DeepEqual(old, want) {
		t.Fatalf("560-byte layout: got %+v, %v; want %+v", old, err, want)
	}
	want.Args = nil
	if err := exec.Decode(raw[:304], &old); err != nil || !reflect.DeepEqual(old, want) {
		t.Fatalf("304-byte layout: got %+v, %v; want %+v", old, err, want)
	}
	for n := range exec.EventSize {
		if slices.Contains(exec.LayoutSizes, n) {
			continue
		}
		if err := exec.Decode(raw[:n], &old); err == nil {
			t.Fatalf("decoded %d bytes", n)
		}
	}
	if got := string(e.AppendText(nil)); got != `filename=/bin/ls args=[ls -l /tmp] ppid=1 uid=1000` {
		t.Fatalf("text %q", got)
	}
	// Arguments longer than the buffer: the last one is cut.
	ne(300, 1000, 4)
	for i := 304; i < exec.EventSize; i++ {
		raw[i] = 'a'
	}
	raw[305] = 0
	if err := exec.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Args) != 2 || e.Args[0] != "a" || len(e.Args[1]) != 254 || !e.ArgsTruncated {
		t.Fatalf("truncated args %q %v", e.Args, e.ArgsTruncated)
	}
	if err := exec.Decode(raw[:exec.EventSize-1], &e); err == nil {
		t.Fatal("short event decoded")
	}
	copy(raw[24:40], "0123456789abcdef")
	if err := exec.Decode(raw, &e); err == nil {
		t.Fatal("unterminated comm decoded")
	}
	// perf padding after the event is accepted
	raw = append(raw[:exec.EventSize:exec.EventSize], 0, 0, 0, 0)
	raw[39] = 0
	if err := exec.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeExec(f *testing.F) {
	f.Add(make([]byte, exec.EventSize))
	f.Add([]byte{1, 2, 3})
	for _, n := range exec.LayoutSizes[1:] { // earlier layouts
		f.Add(make([]byte, n))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e exec.Event
		if err := exec.Decode(raw, &e); err == nil {
			_ = e.AppendText(nil)
		}
		tr := exec.New(tracers.Options{})
		_, _ = tr.Decode(exec.StreamExec, raw)
	})
}

// TestRun: the bpf.Tracer Run method decodes events into spans.
func TestRun(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f, WakeupEvery: 1})
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	q := bpf.NewQueue[[]bpf.Span](16)
	spans := q.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		tr.Run(ctx, &bpf.EventContext{Ringbuf: bpf.DefaultRingbufConfig()}, q)
		close(done)
	}()
	child := tracertest.Start(t, "run", "/bin/true")
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	child.Run(t)
	batch := <-spans
	cancel()
	<-done
	if len(batch) != 1 {
		t.Fatalf("%d spans", len(batch))
	}
	s := batch[0]
	if s.Tracer != "exec" || s.Stream != "exec" || s.Comm != "true" || s.Fields["filename"] != "/bin/true" || s.Fields["ppid"] != child.PID {
		t.Fatalf("%+v", s)
	}
}
