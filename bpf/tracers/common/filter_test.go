package common_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		"getpid": func(args []string) int {
			n, _ := strconv.Atoi(args[0])
			for range n {
				syscall.Getpid()
			}
			return 0
		},
		"run": func(args []string) int {
			for _, a := range args {
				if err := osexec.Command(a).Run(); err != nil {
					return 1
				}
			}
			return 0
		},
	})
}

func TestCommKey(t *testing.T) {
	k := common.CommKey("a-very-long-command-name")
	if string(k[:15]) != "a-very-long-com" || k[15] != 0 {
		t.Fatalf("%q", k)
	}
}

func countGetpid(evs []tracers.Event) map[uint32]int {
	n := map[uint32]int{}
	for _, ev := range evs {
		if e := ev.(*syscalls.Event); e.Nr == uint32(syscall.SYS_GETPID) {
			n[e.Pid]++
		}
	}
	return n
}

// TestBlockAndComm: both children match the allowed comm, one is blocked:
// only the other one's syscalls are reported. Two tracers share the filter.
func TestBlockAndComm(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, syscalls.Name, tracers.Options{Filter: f})
	tr2 := tracertest.Load(t, syscalls.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, syscalls.StreamSyscalls)
	rd2 := tracertest.NewReader(t, tr2, syscalls.StreamSyscalls)
	a := tracertest.Start(t, "getpid", "100")
	b := tracertest.Start(t, "getpid", "200")
	tr.BlockPID(a.PID, 0) // through the tracer's PIDsAccounter
	// This test process has the same comm: block it too.
	if err := f.BlockPID(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := f.AllowComm("common.test"); err != nil {
		t.Fatal(err)
	}
	if f.Flags() != common.FlagCommAllow|common.FlagPIDAllow|common.FlagPIDBlock {
		t.Fatalf("flags %b", f.Flags())
	}
	a.Run(t)
	b.Run(t)
	for i, r := range []*tracertest.Reader{rd, rd2} {
		got := countGetpid(r.Drain(t))
		if got[a.PID] != 0 || got[b.PID] != 200 || len(got) != 1 {
			t.Errorf("tracer %d: getpid counts %v, want only %d: 200", i, got, b.PID)
		}
	}
	if err := tr.(interface{ FilterErr() error }).FilterErr(); err != nil {
		t.Fatal(err)
	}
}

// TestOwnFilterMaps: without a shared filter, AllowPID before load acts on
// the tracer's own maps once it is loaded.
func TestOwnFilterMaps(t *testing.T) {
	kerneltest.Require(t)
	c := tracertest.Start(t, "getpid", "50")
	tr, err := tracers.New(syscalls.Name, tracers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.AllowPID(c.PID, 0, nil) // queued until load
	tracertest.LoadTracer(t, tr)
	rd := tracertest.NewReader(t, tr, syscalls.StreamSyscalls)
	c.Run(t)
	evs := rd.Drain(t)
	got := countGetpid(evs)
	if got[c.PID] != 50 || len(got) != 1 {
		t.Errorf("getpid counts %v, want %d: 50", got, c.PID)
	}
	for _, ev := range evs {
		if ev.PID() != c.PID {
			t.Fatalf("event of pid %d", ev.PID())
		}
	}
}

// TestFollowForgetsFreedProcesses: children allowed by the follow program
// leave the allow list once freed.
func TestFollowForgetsFreedProcesses(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, exec.StreamExec)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "followed")
	in, _ := os.ReadFile("/bin/true")
	if err := os.WriteFile(bin, in, 0o755); err != nil {
		t.Fatal(err)
	}
	c := tracertest.Start(t, "run", bin, bin)
	if err := f.AllowPID(c.PID); err != nil {
		t.Fatal(err)
	}
	c.Run(t)
	evs := rd.Drain(t)
	if len(evs) != 2 {
		t.Fatalf("%d exec events, want 2", len(evs))
	}
	// sched_process_free runs after an RCU grace period: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for _, ev := range evs {
		for f.Allowed(ev.PID()) {
			if time.Now().After(deadline) {
				t.Fatalf("followed pid %d still allowed after it was freed", ev.PID())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !f.Allowed(c.PID) {
		t.Error("explicitly allowed pid removed")
	}
}

// TestFollowChildrenOf: as `record -- COMMAND` starts the command, the test
// process has its children followed without being selected itself: the
// child is recorded from its own exec on, with its descendants.
func TestFollowChildrenOf(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, exec.StreamExec)
	self := uint32(os.Getpid())
	if err := f.FollowChildrenOf(self); err != nil {
		t.Fatal(err)
	}
	c := tracertest.Start(t, "run", "/bin/true")
	if err := f.StopFollowingChildrenOf(self); err != nil {
		t.Fatal(err)
	}
	other := tracertest.Start(t, "run", "/bin/true") // not followed
	c.Run(t)
	other.Run(t)
	evs := rd.Drain(t)
	var got []string
	for _, ev := range evs {
		e := ev.(*exec.Event)
		got = append(got, e.Filename)
		if e.Pid == other.PID || e.Ppid == other.PID {
			t.Errorf("event of the unfollowed child: %+v", e)
		}
	}
	// the child's exec, its warm-up /bin/true, its workload's /bin/true
	want := []string{os.Args[0], "/bin/true", "/bin/true"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("exec events %q, want %q", got, want)
	}
	if evs[0].PID() != c.PID || f.Allowed(self) {
		t.Fatalf("first exec by %d (child %d); test process allowed: %v", evs[0].PID(), c.PID, f.Allowed(self))
	}
}
