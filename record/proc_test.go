package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all" // the tracers recorded
	exitev "github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/internal/proctable"
	"github.com/ebpfrec/ebpfrec/store"
)

// The children of TestProcTableResolvesEveryEvent (TestMain calls
// procChildren).
const (
	// envProcLong: call getppid every 2 ms until stdin ends.
	envProcLong = "EBPFREC_TEST_PROC_LONG"
	// envProcSpawn=CGROUP_DIR: move into the cgroup, exec ourselves again
	// (envProcReexec), then run each argument as a command.
	envProcSpawn  = "EBPFREC_TEST_PROC_SPAWN"
	envProcReexec = "EBPFREC_TEST_PROC_REEXEC"
	// envProcInto=CGROUP_DIR: the launcher's last command is started
	// straight into that cgroup (clone3's CLONE_INTO_CGROUP).
	envProcInto = "EBPFREC_TEST_PROC_INTO"
)

func procChildren() {
	if os.Getenv(envProcLong) != "" {
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(done)
		}()
		for {
			select {
			case <-done:
				os.Exit(0)
			case <-time.After(2 * time.Millisecond):
				syscall.Getppid()
			}
		}
	}
	cg := os.Getenv(envProcSpawn)
	if cg == "" {
		return
	}
	if os.Getenv(envProcReexec) == "" {
		// A cgroup made during the recording: the recorder finds its path.
		if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
			fmt.Fprintln(os.Stderr, "create the cgroup:", err)
			os.Exit(2)
		}
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			fmt.Fprintln(os.Stderr, "move into the cgroup:", err)
			os.Exit(2)
		}
		err := syscall.Exec(os.Args[0], os.Args, append(os.Environ(), envProcReexec+"=1"))
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(3)
	}
	args := os.Args[1:]
	for i, c := range args {
		cmd := exec.Command(c)
		if into := os.Getenv(envProcInto); into != "" && i == len(args)-1 {
			fd, err := syscall.Open(into, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "open the cgroup:", err)
				os.Exit(5)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		}
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, c, err)
			os.Exit(4)
		}
	}
	os.Exit(0)
}

// makeContainerCgroup creates a cgroup v2 named like a Docker container's
// scope, removed at the end of the test.
func makeContainerCgroup(t *testing.T) (dir, id string, ino uint64) {
	t.Helper()
	dir, id = containerCgroupName(t)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create a cgroup: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id, st.Sys().(*syscall.Stat_t).Ino
}

// containerCgroupName names a cgroup v2 like a Docker container's scope,
// and removes it (if made) at the end of the test.
func containerCgroupName(t *testing.T) (dir, id string) {
	t.Helper()
	root := proc.CgroupRoot()
	if root == "" {
		t.Fatal("cgroup v2 is not mounted (the kernel matrix's guests mount it at /sys/fs/cgroup)")
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	id = hex.EncodeToString(b[:])
	dir = filepath.Join(root, "docker-"+id+".scope")
	t.Cleanup(func() {
		// Its processes have exited (and been reaped) by now; the kernel
		// may take a moment to empty it.
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s not removed", dir)
	})
	return dir, id
}

// TestProcTableResolvesEveryEvent records a process started before the
// recording (so the snapshot alone knows it) and a command that moves into
// a cgroup named like a Docker container's, execs itself again and runs
// short-lived children; then every recorded event of the syscalls, exec and
// exit tracers resolves, from the recording alone, to the process it came
// from: comm, ppid, cgroup id and the container id parsed from the path.
func TestProcTableResolvesEveryEvent(t *testing.T) {
	kerneltest.Require(t)
	cgDir, containerID, cgID := makeContainerCgroup(t)
	bin := t.TempDir()
	self, err := os.Executable() // os.Args[0] may be relative
	if err != nil {
		t.Fatal(err)
	}
	link := func(name string) string {
		p := filepath.Join(bin, name)
		if err := os.Symlink(self, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The long-lived process: in the cgroup before the recording starts.
	long := exec.Command(link("ptlonglived"))
	long.Env = append(os.Environ(), envProcLong+"=1")
	longIn, err := long.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { longIn.Close(); _ = long.Wait() }()
	longPID := uint32(long.Process.Pid)
	if err := os.WriteFile(filepath.Join(cgDir, "cgroup.procs"), []byte(strconv.Itoa(int(longPID))), 0); err != nil {
		t.Fatal(err)
	}
	// Three children in the command's cgroup; the last, ptinto, started
	// straight into the long-lived process's.
	const nShort = 4
	cmd := []string{link("ptlauncher")}
	for i := 0; i < nShort; i++ {
		name := "ptshort-" + strconv.Itoa(i)
		if i == nShort-1 {
			name = "ptinto"
		}
		p := filepath.Join(bin, name)
		b, err := os.ReadFile("/bin/true")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd = append(cmd, p)
	}
	// The command's cgroup is made by the command, during the recording.
	cmdCgDir, cmdContainer := containerCgroupName(t)
	t.Setenv(envProcSpawn, cmdCgDir)
	t.Setenv(envProcInto, cgDir)
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, PIDs: []uint32{longPID}, Command: cmd, CommandStderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"syscalls", "exec", "exit"} {
		if err := rec.AddBuiltin(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CommandExit != 0 {
		t.Fatalf("command exited %d", sum.CommandExit)
	}
	for _, st := range sum.Streams {
		if st.Lost() != 0 {
			t.Fatalf("stream %s lost %d events: the test needs all", st.Name, st.Lost())
		}
	}

	table, bad, err := proctable.Load(dir)
	if err != nil || bad != 0 {
		t.Fatalf("load the process table: %v (%d bad events)", err, bad)
	}

	// Every event, decoded with its tracer.
	type event struct {
		stream string
		ev     tracers.Event
	}
	var evs []event
	r, err := store.Open(dir, store.ReaderOptions{Streams: []string{"syscalls", "exec", "exit"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	trs := map[string]tracers.Builtin{}
	for b, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		tr := trs[b.Stream]
		if tr == nil {
			if tr, err = tracers.New(b.Stream, tracers.Options{}); err != nil {
				t.Fatal(err)
			}
			trs[b.Stream] = tr
		}
		for _, e := range b.Events {
			ev, err := tr.Decode(b.Stream, e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, event{b.Stream, ev})
		}
	}
	// The launcher's and the children's execs, from the exec tracer: the
	// ktime from which each pid is its new image. (The recorder's gate, sh,
	// may exec before or after the filter selects it: its exec is not
	// always recorded.)
	type image struct {
		comm  string
		ktime uint64
	}
	execs := map[uint32][]image{}
	var launcher uint32
	var launcherExecs []image
	for _, e := range evs {
		if e.stream == "exec" {
			im := image{e.ev.Comm(), e.ev.KernelTime()}
			execs[e.ev.PID()] = append(execs[e.ev.PID()], im)
			if e.ev.Comm() == "ptlauncher" {
				launcher = e.ev.PID()
				launcherExecs = append(launcherExecs, im)
			}
		}
	}
	// Processes that never exec'd (Go's probe of clone(CLONE_PIDFD) forks
	// one): what the exit tracer says of them.
	exits := map[uint32]*exitev.Event{}
	for _, e := range evs {
		if e.stream == "exit" {
			exits[e.ev.PID()] = e.ev.(*exitev.Event)
		}
	}
	if launcher == 0 || len(launcherExecs) != 2 || len(execs) != 1+nShort {
		t.Fatalf("execs %v: want the launcher's two and one of each of %d children", execs, nShort)
	}
	// imageAt is the comm of pid's last exec at or before at ("" if none).
	imageAt := func(pid uint32, at uint64) string {
		comm := ""
		for _, im := range execs[pid] {
			if im.ktime <= at {
				comm = im.comm
			}
		}
		return comm
	}
	selfComm, _ := os.ReadFile("/proc/self/comm")
	testComm := strings.TrimSpace(string(selfComm))
	st, err := os.Stat(cmdCgDir)
	if err != nil {
		t.Fatal(err)
	}
	cmdCgID := st.Sys().(*syscall.Stat_t).Ino
	counts := map[string]int{}
	for _, e := range evs {
		pid, at := e.ev.PID(), e.ev.KernelTime()
		p := table.Resolve(pid, at)
		line := string(tracers.AppendLine(nil, e.ev))
		if p == nil {
			t.Errorf("not resolved: %s", line)
			continue
		}
		wantComm := imageAt(pid, at)
		var wantPpid uint32
		inCgroup := true
		wantCg, wantContainer := cmdCgID, cmdContainer
		switch {
		case pid == longPID:
			wantComm, wantPpid = "ptlonglived", uint32(os.Getpid())
			wantCg, wantContainer = cgID, containerID
			counts["long "+e.stream]++
		case pid == launcher:
			wantPpid = uint32(os.Getpid())
			if wantComm == "" && (p.Comm == "sh" || p.Comm == testComm) {
				// Before any exec recorded: the gate, as the snapshot saw it
				// (the recorder's fork, or the shell).
				wantComm = p.Comm
			}
			inCgroup = at >= launcherExecs[1].ktime // it moved in, then exec'd
			counts["launcher "+e.stream]++
		case len(execs[pid]) == 1:
			wantPpid = launcher
			if wantComm == "" {
				wantComm = "ptlauncher" // forked, not exec'd yet
			}
			counts["short "+e.stream]++
			if execs[pid][0].comm == "ptinto" { // from its fork on
				wantCg, wantContainer = cgID, containerID
				counts["into "+e.stream]++
			}
		case exits[pid] != nil && exits[pid].Ppid == launcher:
			wantComm, wantPpid = "ptlauncher", launcher // forked, never exec'd
			counts["fork "+e.stream]++
		default:
			t.Errorf("an event of a process not recorded: %s", line)
			continue
		}
		if p.Comm != wantComm || p.Ppid != wantPpid || p.Pid != pid {
			t.Errorf("%s: resolved to %s (pid %d, ppid %d), want %s (ppid %d)", line, p.Comm, p.Pid, p.Ppid, wantComm, wantPpid)
		}
		if inCgroup && (p.CgroupID != wantCg || p.ContainerID != wantContainer || p.CgroupPath != "/docker-"+wantContainer+".scope") {
			t.Errorf("%s: cgroup %d %q container %q, want %d and %s", line, p.CgroupID, p.CgroupPath, p.ContainerID, wantCg, wantContainer)
		}
	}
	t.Logf("events resolved: %v", counts)
	for _, k := range []string{"long syscalls", "launcher syscalls", "launcher exec", "short syscalls", "short exec", "short exit", "launcher exit", "into syscalls", "into exec"} {
		if counts[k] == 0 {
			t.Errorf("no %s event: %v", k, counts)
		}
	}
	// The proc stream accounts for its snapshot and cgroup records like
	// for the kernel's events (Run would have failed with ErrUnbalanced).
	for _, st := range sum.Streams {
		if st.Name == proc.StreamProc && (!st.HasEmitted || st.Emitted != st.Recorded || st.Recorded == 0) {
			t.Errorf("proc stream: %+v", st)
		}
	}
	// The long-lived process is known from the snapshot, with its exe and
	// command line; the snapshot holds no process the filter did not select.
	found := false
	for _, p := range table.Processes() {
		if p.Pid != longPID && p.Pid != launcher && len(execs[p.Pid]) != 1 && (exits[p.Pid] == nil || exits[p.Pid].Ppid != launcher) {
			t.Errorf("a process not selected is in the table: %+v", p)
		}
		if p.Pid == longPID {
			found = true
			if p.Origin != "snapshot" || p.Exe == "" || len(p.Args) == 0 || !strings.HasSuffix(p.Args[0], "/ptlonglived") || p.StartNs == 0 {
				t.Errorf("the long-lived process: %+v", p)
			}
		}
	}
	if !found {
		t.Error("the long-lived process is not in the table")
	}
}

// TestProcNamed: --tracer proc alone records the process table of the
// command (the same one stream as by default).
func TestProcNamed(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"/bin/true"}, NoProc: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(proc.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Streams) != 1 || sum.Streams[0].Name != proc.StreamProc {
		t.Fatalf("streams %+v, want proc alone", sum.Streams)
	}
	table, _, err := proctable.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var comms []string
	for _, p := range table.Processes() {
		comms = append(comms, p.Comm)
		if p.Comm == "true" && (!p.Exited || p.Origin != "exec" || p.Exe != "/bin/true") {
			t.Errorf("true: %+v", p)
		}
	}
	// The gate (sh, in the snapshot or exec'd), then true.
	if len(comms) == 0 || comms[len(comms)-1] != "true" {
		t.Errorf("process lives %q, want the command's last", comms)
	}
}
