package proc_test

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// runs each argument as a command, in order
		"run": func(args []string) int {
			for _, a := range args {
				if err := osexec.Command(a, "arg-"+filepath.Base(a)).Run(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
			return 0
		},
		// renames a thread that is not the main one (prctl PR_SET_NAME:
		// the thread's name, not the process's), then the process (its
		// main thread, by /proc/self/comm)
		"rename": func(args []string) int {
			done := make(chan error)
			go renameThread(done)
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "prctl:", err)
				return 1
			}
			if err := os.WriteFile("/proc/self/comm", []byte(args[0]), 0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		},
	})
}

// renameThread names a thread other than the main one: on the main thread,
// it stays there (locked, so that the next goroutine runs on another) and
// tries again in a new goroutine.
func renameThread(done chan<- error) {
	runtime.LockOSThread() // the thread ends with the goroutine
	if syscall.Gettid() == syscall.Getpid() {
		inner := make(chan error)
		go renameThread(inner)
		done <- <-inner
		return
	}
	name := []byte("a-thread\x00")
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0)
	if errno != 0 {
		done <- errno
		return
	}
	done <- nil
}

// TestProcRename: a process that renames itself is reported once, with
// its new comm and its CPU, and exits under that name; a thread naming
// itself is not the process and is not reported.
func TestProcRename(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, proc.Name, tracers.Options{Filter: f, WakeupEvery: 1})
	rd := tracertest.NewReader(t, tr, proc.StreamProc)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	const name = "renamed-proc"
	child := tracertest.Start(t, "rename", name)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.DrainAtLeast(t, 2, 0)
	var kinds []string
	for _, ev := range evs {
		e := ev.(*proc.Event)
		t.Log(string(tracers.AppendLine(nil, e)))
		kinds = append(kinds, e.Kind)
		if e.Pid != child.PID || e.Command != name || e.CPU < 0 || e.StartNs == 0 {
			t.Errorf("%s: pid %d (child %d) comm %q cpu %d start %d, want the child renamed %q", e.Kind, e.Pid, child.PID, e.Command, e.CPU, e.StartNs, name)
		}
	}
	if strings.Join(kinds, " ") != "rename exit" {
		t.Errorf("events %v, want rename and exit", kinds)
	}
	// The table: the child's comm before the rename is unknown here (it
	// started before it was selected); from the rename on, the new one.
	tb := proc.NewTable()
	for _, ev := range evs {
		tb.Add(ev.(*proc.Event))
	}
	if p := tb.Resolve(child.PID, evs[0].(*proc.Event).KtimeNs); p == nil || p.Comm != name || p.Origin != "rename" || !p.Exited {
		t.Errorf("resolved at the rename: %+v", p)
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}

// ownCgroupID is the cgroup v2 id of the test process (its children's too).
func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	root := proc.CgroupRoot()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || root == "" {
		t.Fatalf("no cgroup v2 (%v): mount cgroup2 to run this test", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			st, err := os.Stat(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			return st.Sys().(*syscall.Stat_t).Ino
		}
	}
	t.Fatal("no cgroup v2 line in /proc/self/cgroup")
	return 0
}

// TestProcKnownWorkload follows a child that runs n distinctly named
// copies of /bin/true: each is one fork, one exec and one exit, with the
// right pid, ppid, comm, cgroup and start time; the child's own exit ends
// the list.
func TestProcKnownWorkload(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, proc.Name, tracers.Options{Filter: f, WakeupEvery: 4})
	rd := tracertest.NewReader(t, tr, proc.StreamProc)
	if err := f.Follow(); err != nil {
		t.Fatal(err)
	}
	cg := ownCgroupID(t)

	const n = 5
	dir := t.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "ptrue-"+strconv.Itoa(i))
		b, err := os.ReadFile("/bin/true")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	child := tracertest.Start(t, "run", paths...)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.DrainAtLeast(t, 3*n+1, 0)
	byKind := map[string][]*proc.Event{}
	for _, ev := range evs {
		e := ev.(*proc.Event)
		t.Log(string(tracers.AppendLine(nil, e)))
		byKind[e.Kind] = append(byKind[e.Kind], e)
		if e.CgroupID != cg {
			t.Errorf("%s of %d: cgroup id %d, want %d", e.Kind, e.Pid, e.CgroupID, cg)
		}
		if e.UID != uint32(os.Getuid()) || e.KtimeNs == 0 || e.StartNs == 0 || e.StartNs > e.KtimeNs {
			t.Errorf("%s of %d: uid %d ktime %d start %d", e.Kind, e.Pid, e.UID, e.KtimeNs, e.StartNs)
		}
	}
	if len(byKind["fork"]) != n || len(byKind["exec"]) != n || len(byKind["exit"]) != n+1 || len(evs) != 3*n+1 {
		t.Fatalf("got %d forks, %d execs, %d exits (%d events); want %d, %d, %d", len(byKind["fork"]), len(byKind["exec"]), len(byKind["exit"]), len(evs), n, n, n+1)
	}
	for i := 0; i < n; i++ {
		fk, ex, xt := byKind["fork"][i], byKind["exec"][i], byKind["exit"][i]
		name := "ptrue-" + strconv.Itoa(i)
		if fk.Ppid != child.PID || fk.Pid == child.PID || fk.Tid != fk.Pid {
			t.Errorf("fork %d: pid %d tid %d ppid %d (child %d)", i, fk.Pid, fk.Tid, fk.Ppid, child.PID)
		}
		if ex.Pid != fk.Pid || ex.Ppid != child.PID || ex.Command != name || ex.Exe != paths[i] ||
			len(ex.Args) != 2 || ex.Args[1] != "arg-"+name || ex.StartNs != fk.StartNs {
			t.Errorf("exec %d: %+v, fork %+v", i, ex, fk)
		}
		if xt.Pid != fk.Pid || xt.Command != name || xt.ExitCode != 0 || xt.StartNs != fk.StartNs || xt.KtimeNs < ex.KtimeNs || ex.KtimeNs < fk.KtimeNs {
			t.Errorf("exit %d: %+v, fork %+v", i, xt, fk)
		}
	}
	if last := byKind["exit"][n]; last.Pid != child.PID {
		t.Errorf("last exit is of %d, want the child %d", last.Pid, child.PID)
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}
