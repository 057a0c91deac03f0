package syscalls_test

import (
	"github.com/cilium/ebpf"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// runs its argument
		"run": func(args []string) int {
			if err := osexec.Command(args[0]).Run(); err != nil {
				return 1
			}
			return 0
		},
		// getpid(2) N times, then exit 0
		"getpid": func(args []string) int {
			n, _ := strconv.Atoi(args[0])
			for range n {
				syscall.Getpid()
			}
			return 0
		},
	})
}

func run(t *testing.T, opts tracers.Options, n int) (tracers.Builtin, *tracertest.Reader, *tracertest.Proc, []tracers.Event) {
	f := tracertest.NewFilter(t)
	opts.Filter = f
	tr := tracertest.Load(t, syscalls.Name, opts)
	rd := tracertest.NewReader(t, tr, syscalls.StreamSyscalls)
	child := tracertest.Start(t, "getpid", strconv.Itoa(n))
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	return tr, rd, child, rd.Drain(t)
}

// TestSyscallsKnownWorkload: a child calls getpid N times and exits; exactly
// N getpid events (returning its pid) and one exit_group are reported, and
// every event is the child's.
func TestSyscallsKnownWorkload(t *testing.T) {
	tracertest.EachVariant(t, syscalls.Name, testSyscallsKnownWorkload)
}

func testSyscallsKnownWorkload(t *testing.T, variant string) {
	const n = 5000
	tr, rd, child, evs := run(t, tracers.Options{Variant: variant}, n)
	getpids, exits := 0, 0
	for _, ev := range evs {
		e := ev.(*syscalls.Event)
		if e.Pid != child.PID {
			t.Fatalf("event of pid %d, want only %d: %+v", e.Pid, child.PID, e)
		}
		switch e.Nr {
		case uint32(syscall.SYS_GETPID):
			getpids++
			if e.Ret != int64(child.PID) || e.LatencyNs == 0 || e.Syscall != "getpid" {
				t.Fatalf("getpid event %+v", e)
			}
		case syscalls.NRExitGroup:
			exits++
			if e.Syscall != "exit_group" || e.LatencyNs != 0 {
				t.Fatalf("exit_group event %+v", e)
			}
		}
	}
	if getpids != n || exits != 1 {
		for i, ev := range evs {
			if i < 40 || i > len(evs)-40 {
				t.Log(string(tracers.AppendLine(nil, ev)))
			}
		}
		t.Errorf("got %d getpid and %d exit_group events, want %d and 1 (of %d events)", getpids, exits, n, len(evs))
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
	if misses, err := tracers.RecursionMisses(tr); err != nil || misses != 0 {
		t.Errorf("recursion misses %d (%v)", misses, err)
	}
	if _, drops := tracertest.Counters(t, tr, syscalls.StreamSyscalls); drops != 0 {
		t.Errorf("%d drops", drops)
	}
}

// TestSyscallsOverload: a one-page ring buffer that nobody reads during a
// getpid storm overflows; the drop counter accounts for every lost event.
func TestSyscallsOverload(t *testing.T) {
	tracertest.EachVariant(t, syscalls.Name, testSyscallsOverload)
}

func testSyscallsOverload(t *testing.T, variant string) {
	const n = 20000
	tr, rd, _, evs := run(t, tracers.Options{RingbufSize: 4096, WakeupEvery: 1 << 20, Variant: variant}, n)
	emitted, drops := tracertest.Counters(t, tr, syscalls.StreamSyscalls)
	t.Logf("emitted %d received %d drops %d", emitted, len(evs), drops)
	if drops == 0 || emitted < n {
		t.Errorf("emitted %d drops %d: want an overflow", emitted, drops)
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}

// TestUseCollection: the tracer works on a collection someone else loaded
// (as bpf.Manager does), which keeps ownership of it.
func TestUseCollection(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := syscalls.New(tracers.Options{Filter: f})
	spec, err := tr.Load()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: tr.MapReplacements()})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	if err := tr.UseCollection(coll); err != nil {
		t.Fatal(err)
	}
	if tr.Map(syscalls.MapEvents) != coll.Maps[syscalls.MapEvents] || tr.Map(syscalls.MapEvents) == nil {
		t.Fatal("Map does not return the collection's map")
	}
	links, err := tracers.Attach(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	rd := tracertest.NewReader(t, tr, syscalls.StreamSyscalls)
	c := tracertest.Start(t, "getpid", "10")
	tr.AllowPID(c.PID, 0, nil) // the shared filter
	c.Run(t)
	got := 0
	for _, ev := range rd.Drain(t) {
		if ev.(*syscalls.Event).Nr == uint32(syscall.SYS_GETPID) {
			got++
		}
	}
	if got != 10 {
		t.Fatalf("%d getpid events, want 10", got)
	}
	tr.Close()
	if _, err := tracers.ReadCounter(coll.Maps[syscalls.MapEmitted]); err != nil {
		t.Fatalf("the collection's map was closed by the tracer: %v", err)
	}
}

// TestCommAfterExec: with a comm filter, a process is selected from the
// exec that gives it the allowed comm on, not before (the cached selection
// of the thread is recomputed after exec).
func TestCommAfterExec(t *testing.T) {
	tracertest.EachVariant(t, syscalls.Name, testCommAfterExec)
}

func testCommAfterExec(t *testing.T, variant string) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, syscalls.Name, tracers.Options{Filter: f, Variant: variant})
	rd := tracertest.NewReader(t, tr, syscalls.StreamSyscalls)
	bin := filepath.Join(t.TempDir(), "sc-true")
	in, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, in, 0o755); err != nil {
		t.Fatal(err)
	}
	c := tracertest.Start(t, "run", bin)
	if err := f.AllowComm("sc-true"); err != nil {
		t.Fatal(err)
	}
	c.Run(t)
	pids := map[uint32]int{}
	exits := 0
	for _, ev := range rd.Drain(t) {
		e := ev.(*syscalls.Event)
		pids[e.Pid]++
		if e.Nr == syscalls.NRExitGroup {
			exits++
		}
		if e.Nr == uint32(syscall.SYS_EXECVE) {
			t.Errorf("the execve was made under the old comm: %+v", e)
		}
	}
	if len(pids) != 1 || pids[c.PID] != 0 || exits != 1 {
		t.Fatalf("events by pid %v (child %d), %d exit_group: want one process, sc-true", pids, c.PID, exits)
	}
}

func TestDecode(t *testing.T) {
	raw := make([]byte, syscalls.EventSize)
	put := func(off int, v uint64, size int) {
		for i := 0; i < size; i++ {
			raw[off+i] = byte(v >> (8 * i))
		}
	}
	put(0, 7, 8)
	put(8, 300, 8)
	put(16, 0xfffffffffffffff2, 8) // -EFAULT
	put(24, 99, 4)
	put(28, 0, 4)
	put(32, 1, 4)
	var e syscalls.Event
	if err := syscalls.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	want := syscalls.Event{KtimeNs: 7, LatencyNs: 300, Ret: -14, Pid: 99, Nr: 0, Syscall: "read", CPU: 1}
	if e != want {
		t.Fatalf("got %+v want %+v", e, want)
	}
	// An event of the earlier layout (before cpu): the same, its CPU unknown.
	if err := syscalls.Decode(raw[:32], &e); err != nil {
		t.Fatalf("earlier layout: %v", err)
	}
	if want.CPU = tracers.UnknownCPU; e != want {
		t.Fatalf("earlier layout: got %+v want %+v", e, want)
	}
	if got := string(e.AppendText(nil)); got != "syscall=read ret=-14 (EFAULT) latency=300ns" {
		t.Fatalf("text %q", got)
	}
	put(28, 9999, 4)
	if err := syscalls.Decode(raw, &e); err != nil || e.Syscall != "sys_9999" {
		t.Fatalf("%v %+v", err, e)
	}
	for n := range syscalls.EventSize {
		if slices.Contains(syscalls.LayoutSizes, n) {
			continue
		}
		if err := syscalls.Decode(raw[:n], &e); err == nil {
			t.Fatalf("decoded %d bytes", n)
		}
	}
	put(28, 39, 4)
	if a := testing.AllocsPerRun(100, func() { _ = syscalls.Decode(raw, &e) }); a > 1 {
		t.Errorf("Decode allocates %v times", a)
	}
}

func BenchmarkDecode(b *testing.B) {
	raw := make([]byte, syscalls.EventSize)
	raw[28] = 39
	var e syscalls.Event
	b.ReportAllocs()
	for b.Loop() {
		_ = syscalls.Decode(raw, &e)
	}
}

func FuzzDecodeSyscalls(f *testing.F) {
	f.Add(make([]byte, syscalls.EventSize))
	f.Add([]byte{0xff})
	for _, n := range syscalls.LayoutSizes[1:] { // earlier layouts
		f.Add(make([]byte, n))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e syscalls.Event
		if err := syscalls.Decode(raw, &e); err == nil {
			_ = e.AppendText(nil)
		}
	})
}
