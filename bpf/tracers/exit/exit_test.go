package exit_test

import (
	"fmt"
	"os"
	osexec "os/exec"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
)

// envSpin makes the test binary a process of that many spinning threads
// that exits at once (all its threads die together).
const envSpin = "EXIT_TEST_SPIN_THREADS"

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(envSpin)); err == nil {
		spinAndExit(n)
	}
	tracertest.Main(m, map[string]tracertest.Workload{
		// starts N processes of many threads, in sequence
		"threads": func(args []string) int {
			n, _ := strconv.Atoi(args[0])
			for range n {
				c := osexec.Command(os.Args[0])
				c.Env = append(os.Environ(), envSpin+"=16")
				if err := c.Run(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			return 0
		},
		// starts /bin/true N times, in sequence
		"true": func(args []string) int {
			n, _ := strconv.Atoi(args[0])
			for range n {
				if err := osexec.Command("/bin/true").Run(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			return 0
		},
		// runs `sh -c SCRIPT` for each argument, then exits with 7
		"sh": func(args []string) int {
			for _, a := range args {
				err := osexec.Command("/bin/sh", "-c", a).Run()
				if _, ok := err.(*osexec.ExitError); err != nil && !ok {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			return 7
		},
	})
}

// TestExitKnownWorkload follows a child that runs shells exiting with known
// codes and one killed by a signal, then exits with 7 itself: exactly those
// exits are reported, through the perf buffer, once each (the child is a
// multi-threaded Go program: one event, not one per thread), with every
// variant this kernel runs.
func TestExitKnownWorkload(t *testing.T) {
	tracertest.EachVariant(t, exit.Name, testExitKnownWorkload)
}

func testExitKnownWorkload(t *testing.T, variant string) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exit.Name, tracers.Options{Filter: f, Variant: variant})
	rd := tracertest.NewReader(t, tr, exit.StreamExit)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	codes := []int{0, 1, 3, 42, 255}
	var scripts []string
	for _, c := range codes {
		scripts = append(scripts, "exit "+strconv.Itoa(c))
	}
	scripts = append(scripts, "kill -USR1 $$") // signal 10
	child := tracertest.Start(t, "sh", scripts...)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 7 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.Drain(t)
	// Perf buffers are per CPU: order by kernel time.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].KernelTime() < evs[j].KernelTime() })
	for _, e := range evs {
		t.Log(string(tracers.AppendLine(nil, e)))
	}
	if len(evs) != len(scripts)+1 {
		t.Fatalf("got %d exit events, want %d", len(evs), len(scripts)+1)
	}
	// The shells' exits come first, in order; the child's own is last.
	seen := map[uint32]bool{}
	for i, ev := range evs {
		e := ev.(*exit.Event)
		if seen[e.Pid] || e.LifetimeNs == 0 || e.KtimeNs == 0 || e.Tid == 0 {
			t.Errorf("event %d: %+v", i, e)
		}
		seen[e.Pid] = true
		if i == len(scripts) {
			if e.Pid != child.PID || e.ExitCode != 7 || e.Signal != 0 || e.Ppid != uint32(os.Getpid()) || e.Command != "exit.test" {
				t.Errorf("child exit: %+v", e)
			}
			continue
		}
		if e.Ppid != child.PID || e.Command != "sh" || e.CoreDumped {
			t.Errorf("event %d: %+v", i, e)
		}
		if i < len(codes) {
			if int(e.ExitCode) != codes[i] || e.Signal != 0 || e.Status != uint32(codes[i])<<8 {
				t.Errorf("event %d: exit code %d signal %d, want %d", i, e.ExitCode, e.Signal, codes[i])
			}
		} else if e.Signal != 10 || e.ExitCode != 0 {
			t.Errorf("event %d: signal %d exit code %d, want signal 10", i, e.Signal, e.ExitCode)
		}
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
	if rd.Lost != 0 {
		t.Errorf("perf lost %d samples", rd.Lost)
	}
	// Followed processes are forgotten once freed: not the explicitly
	// allowed child, which stays.
	if !f.Allowed(child.PID) {
		t.Error("the explicitly allowed child was removed from the filter")
	}
}

// spinAndExit starts n threads, each parked in the kernel (a goroutine
// locked to its thread, waiting forever), and exits: exit_group wakes them
// all to die together.
func spinAndExit(n int) {
	var ready sync.WaitGroup
	for range n {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			select {}
		}()
	}
	ready.Wait()
	os.Exit(0)
}

// TestExitOnceForManyThreads: processes whose 17 threads all die at once
// are reported once each.
func TestExitOnceForManyThreads(t *testing.T) {
	tracertest.EachVariant(t, exit.Name, func(t *testing.T, variant string) {
		f := tracertest.NewFilter(t)
		tr := tracertest.Load(t, exit.Name, tracers.Options{Filter: f, Variant: variant})
		rd := tracertest.NewReader(t, tr, exit.StreamExit)
		if err := f.Follow(); err != nil {
			t.Fatal(err)
		}
		const n = 20
		child := tracertest.Start(t, "threads", strconv.Itoa(n))
		if err := f.AllowPID(child.PID); err != nil {
			t.Fatal(err)
		}
		if code := child.Run(t); code != 0 {
			t.Fatalf("workload exited %d", code)
		}
		evs := rd.Drain(t)
		per := map[uint32]int{}
		for _, ev := range evs {
			per[ev.PID()]++
		}
		if len(evs) != n+1 || len(per) != n+1 {
			t.Errorf("%d exit events for %d processes, want %d for %d", len(evs), len(per), n+1, n+1)
		}
		tracertest.CheckAccounting(t, tr, rd, len(evs))
	})
}

// TestExitOverload: a one-page perf buffer, not read while a child starts
// many processes, overflows; the drop counter counts every failed output,
// and perf's lost samples are among them.
func TestExitOverload(t *testing.T) {
	tracertest.EachVariant(t, exit.Name, testExitOverload)
}

func testExitOverload(t *testing.T, variant string) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exit.Name, tracers.Options{Filter: f, Variant: variant})
	rd := tracertest.NewReaderSize(t, tr, exit.StreamExit, 4096)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	const n = 300
	child := tracertest.Start(t, "true", strconv.Itoa(n))
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.Drain(t)
	emitted, drops := tracertest.Counters(t, tr, exit.StreamExit)
	t.Logf("emitted %d received %d drops %d perf lost %d", emitted, len(evs), drops, rd.Lost)
	if emitted != n+1 || drops == 0 {
		t.Errorf("emitted %d drops %d, want %d emitted and an overflow", emitted, drops, n+1)
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}

func TestDecode(t *testing.T) {
	raw := make([]byte, exit.EventSize+4) // perf padding
	put := func(off int, v uint64, size int) {
		for i := 0; i < size; i++ {
			raw[off+i] = byte(v >> (8 * i))
		}
	}
	put(0, 5e9, 8)
	put(8, 1500, 8)
	put(16, 10, 4)
	put(20, 1, 4)
	put(24, 11, 4)
	put(28, 0x8b, 4) // SIGSEGV with core
	copy(raw[32:], "crash\x00")
	var e exit.Event
	if err := exit.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	want := exit.Event{KtimeNs: 5e9, LifetimeNs: 1500, Pid: 10, Ppid: 1, Tid: 11, Status: 0x8b, Signal: 11, CoreDumped: true, Command: "crash"}
	if e != want {
		t.Fatalf("got %+v want %+v", e, want)
	}
	if got := string(e.AppendText(nil)); got != "signal=11 core=dumped ppid=1 lifetime=1.5µs" {
		t.Fatalf("text %q", got)
	}
	for n := range exit.EventSize {
		if err := exit.Decode(raw[:n], &e); err == nil {
			t.Fatalf("decoded %d bytes", n)
		}
	}
	if _, err := exit.New(tracers.Options{}).Decode("nope", raw); err == nil {
		t.Fatal("unknown stream decoded")
	}
}

func FuzzDecodeExit(f *testing.F) {
	f.Add(make([]byte, exit.EventSize))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e exit.Event
		if err := exit.Decode(raw, &e); err == nil {
			_ = e.AppendText(nil)
		}
	})
}
