package common_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestKernelDev: stat's st_dev (the kernel's new_encode_dev) becomes the
// kernel's MKDEV(major, minor), minors past 8 bits and majors past 8 bits
// included.
func TestKernelDev(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{8, 1}, {254, 0}, {0, 37}, {0x123, 0x45678}, {0xfff, 0xfffff}} {
		st := unix.Mkdev(c.major, c.minor)
		if got, want := common.KernelDev(st), c.major<<20|c.minor; got != want {
			t.Errorf("KernelDev(%#x) (major %#x, minor %#x) = %#x, want %#x", st, c.major, c.minor, got, want)
		}
	}
	if got := common.KernelDev(0x45612378); got != 0x12345678 {
		t.Errorf("KernelDev(0x45612378) = %#x, want 0x12345678", got)
	}
}

// TestAllowExec: with an executable allowed, exactly the processes that
// exec that file are selected, from their exec on (the exec tracer, which
// runs on the same tracepoint, reports their exec); a process that then
// execs another file is not selected any more (its second exec is not
// reported), and each leaves the allow list once freed. A copy of the
// same program at another path is another file, not selected.
func TestAllowExec(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, exec.StreamExec)
	dir := t.TempDir()
	cp := func(src, name string) string { return copyFile(t, src, filepath.Join(dir, name)) }
	bash, err := osexec.LookPath("bash") // not a busybox sh, which a copy's name would not name an applet
	if err != nil {
		t.Fatal(err)
	}
	allowed, other, sh := cp("/bin/true", "allowed"), cp("/bin/true", "other"), cp(bash, "allowedsh")
	if err := f.AllowExec(allowed); err != nil {
		t.Fatal(err)
	}
	if err := f.AllowExec(sh); err != nil {
		t.Fatal(err)
	}
	if err := f.AllowExec(filepath.Join(dir, "missing")); err == nil {
		t.Error("AllowExec of a missing file: no error")
	}
	if f.Flags()&(common.FlagExec|common.FlagPIDAllow) != common.FlagExec|common.FlagPIDAllow {
		t.Fatalf("flags %b", f.Flags())
	}
	c := tracertest.Start(t, "run", allowed, other, allowed)
	c.Run(t)
	// allowedsh (bash) execs other in place: its pid execs another file.
	shc := osexec.Command(sh, "-c", "exec "+other)
	if err := shc.Run(); err != nil {
		t.Fatal(err)
	}
	evs := rd.Drain(t)
	var got []string
	pids := map[uint32]bool{}
	for _, ev := range evs {
		e := ev.(*exec.Event)
		got = append(got, e.Filename)
		pids[e.Pid] = true
		if e.Pid == c.PID {
			t.Errorf("exec of the unselected parent reported: %+v", e)
		}
	}
	want := []string{allowed, allowed, sh}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("exec events %q, want %q", got, want)
	}
	if len(pids) != 3 || !pids[uint32(shc.Process.Pid)] {
		t.Fatalf("exec events of pids %v, want 3 distinct, with the shell %d", pids, shc.Process.Pid)
	}
	// sched_process_free runs after an RCU grace period: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for pid := range pids {
		for f.Allowed(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still allowed after it was freed", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestAllowPIDKeepsKernelAllowance: a process the kernel allowed from its
// exec of an allowed executable keeps that allowance, and its lifetime,
// when user space allows it too (as ProcessTracer.Instrument does) and
// when user space forgets it (as Release does): its exec of another file
// still ends it, so that file's exec is not reported and the pid is free
// for reuse. AllowPID overwrote the kernel's value, and the process
// stayed selected after it exec'd another file (found by a review).
func TestAllowPIDKeepsKernelAllowance(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, exec.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, exec.StreamExec)
	dir := t.TempDir()
	bash, err := osexec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	cp := func(src, name string) string { return copyFile(t, src, filepath.Join(dir, name)) }
	sh, other := cp(bash, "allowedsh"), cp("/bin/true", "other")
	if err := f.AllowExec(sh); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(sh, "-c", "read x; exec "+other)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := uint32(cmd.Process.Pid)
	for i := 0; !f.Allowed(pid); i++ {
		if i == 1000 {
			t.Fatal("the shell is not allowed from its exec")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.ForgetPID(pid); err != nil {
		t.Fatal(err)
	}
	if !f.Allowed(pid) {
		t.Fatal("ForgetPID withdrew the kernel's allowance")
	}
	if err := f.AllowPID(pid); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range rd.Drain(t) {
		if e := ev.(*exec.Event); e.Filename == other {
			t.Errorf("the exec of another file by a process allowed from its exec was reported: %+v", e)
		}
	}
	// And a pid allowed by AllowPID alone is forgotten by ForgetPID,
	// without being blocked.
	const made = 4000001
	if err := f.AllowPID(made); err != nil {
		t.Fatal(err)
	}
	if err := f.ForgetPID(made); err != nil {
		t.Fatal(err)
	}
	if f.Allowed(made) {
		t.Error("ForgetPID left AllowPID's allowance")
	}
	if err := f.AllowComm("reused"); err != nil {
		t.Fatal(err)
	}
	if !f.Selected(made, "reused") {
		t.Error("a forgotten pid is not selected by its comm: it was blocked")
	}
}

// copyFile copies the file src to an executable file dst: another file,
// with the same contents.
func copyFile(t *testing.T, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
