package all_test

import (
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// DIR N ADDR: runs DIR/bin-0..N-1, opens DIR/file-0..N-1 and
		// DIR/missing, connects N times to ADDR, calls getppid N times,
		// exits with 3.
		"mixed": func(args []string) int {
			dir, addr := args[0], args[2]
			n, _ := strconv.Atoi(args[1])
			for i := range n {
				if err := osexec.Command(filepath.Join(dir, "bin-"+strconv.Itoa(i))).Run(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			for i := range n {
				fd, err := syscall.Open(filepath.Join(dir, "file-"+strconv.Itoa(i)), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
				if err != nil {
					return 1
				}
				syscall.Close(fd)
			}
			if _, err := syscall.Open(filepath.Join(dir, "missing"), syscall.O_RDONLY, 0); err != syscall.ENOENT {
				return 1
			}
			for range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return 1
				}
				c.Close()
			}
			for range n {
				syscall.Getppid()
			}
			return 3
		},
	})
}

// TestAllTracersOneFilter runs every tracer with one shared filter, the
// way `record -- COMMAND` does: the test follows its own children without
// being selected, starts a workload, and finds in each stream exactly what
// the workload did.
func TestAllTracersOneFilter(t *testing.T) {
	f := tracertest.NewFilter(t)
	readers := map[string]*tracertest.Reader{}
	trs := map[string]tracers.Builtin{}
	for _, n := range tracers.Names() {
		if tr, _ := tracers.New(n, tracers.Options{}); tracers.InstrumentsProcesses(tr) {
			continue // attached to chosen processes, not the kernel: tested in its package
		}
		trs[n] = tracertest.Load(t, n, tracers.Options{Filter: f})
		readers[n] = tracertest.NewReader(t, trs[n], trs[n].Streams()[0].Name)
	}
	const n = 4
	dir := t.TempDir()
	truebin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "bin-"+strconv.Itoa(i)), truebin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "file-"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, s)
			s.Close()
		}
	}()

	// Go's first process start forks a probe child (clone with
	// CLONE_PIDFD) that exits at once: let it happen before following our
	// children, as a recorder would.
	if err := osexec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	self := uint32(os.Getpid())
	if err := f.FollowChildrenOf(self); err != nil {
		t.Fatal(err)
	}
	child := tracertest.Start(t, "mixed", dir, strconv.Itoa(n), ln.Addr().String())
	if err := f.StopFollowingChildrenOf(self); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 3 {
		t.Fatalf("workload exited %d", code)
	}
	wg.Wait()

	evs := map[string][]tracers.Event{}
	for name, r := range readers {
		evs[name] = r.Drain(t)
		tracertest.CheckAccounting(t, trs[name], r, len(evs[name]))
		for _, ev := range evs[name] {
			if ev.PID() == self {
				t.Errorf("%s: event of the test process: %s", name, tracers.AppendLine(nil, ev))
			}
		}
	}

	// exec: the child itself, its warm-up /bin/true, then bin-0..n-1.
	var execs []string
	for _, ev := range evs["exec"] {
		execs = append(execs, filepath.Base(ev.(*exec.Event).Filename))
	}
	want := []string{filepath.Base(os.Args[0]), "true"}
	for i := range n {
		want = append(want, "bin-"+strconv.Itoa(i))
	}
	if strings.Join(execs, " ") != strings.Join(want, " ") {
		t.Errorf("execs %v, want %v", execs, want)
	}

	// exit: one per process the child started (its Go pidfd probe, its
	// warm-up, the bins), and the child's own, with 3.
	exits := map[uint32]*exit.Event{}
	for _, ev := range evs["exit"] {
		e := ev.(*exit.Event)
		exits[e.Pid] = e
		if e.Pid != child.PID && (e.Ppid != child.PID || e.ExitCode != 0 || e.Signal != 0) {
			t.Errorf("exit %s", tracers.AppendLine(nil, e))
		}
	}
	if len(exits) != n+3 || len(evs["exit"]) != n+3 || exits[child.PID] == nil || exits[child.PID].ExitCode != 3 {
		for _, ev := range evs["exit"] {
			t.Log(string(tracers.AppendLine(nil, ev)))
		}
		t.Errorf("%d exits, want %d with the child's code 3", len(evs["exit"]), n+3)
	}

	// open: the workload's opens of DIR, exactly.
	var opens []string
	for _, ev := range evs["open"] {
		e := ev.(*open.Event)
		if strings.HasPrefix(e.Path, dir) {
			opens = append(opens, fmt.Sprintf("%s:%d", filepath.Base(e.Path), e.Ret))
			if e.Pid != child.PID {
				t.Errorf("open of %s by %d", e.Path, e.Pid)
			}
		}
	}
	if len(opens) != n+1 || opens[n] != "missing:-2" {
		t.Errorf("opens %v", opens)
	}

	// tcp: n client lives of 5 transitions, owned by the child.
	if len(evs["tcp"]) != 5*n {
		t.Errorf("%d tcp events, want %d", len(evs["tcp"]), 5*n)
	}
	for _, ev := range evs["tcp"] {
		if e := ev.(*tcp.Event); e.Pid != child.PID || e.Dport != uint16(ln.Addr().(*net.TCPAddr).Port) {
			t.Errorf("tcp event %s", tracers.AppendLine(nil, e))
		}
	}

	// syscalls: the child's getppids, exactly (Go's runtime and os/exec
	// call getpid, never getppid).
	getppids := 0
	for _, ev := range evs["syscalls"] {
		if e := ev.(*syscalls.Event); e.Nr == uint32(syscall.SYS_GETPPID) {
			getppids++
			if e.Pid != child.PID || e.Ret != int64(self) {
				t.Errorf("getppid event %+v", e)
			}
		}
	}
	if getppids != n {
		t.Errorf("%d getppid events, want %d", getppids, n)
	}
}
