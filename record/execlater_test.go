package record

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/dns"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// callsProc is a gotarget process in "calls N" mode: it calls main.work N
// times once it reads a byte on stdin, prints the sum and exits.
type callsProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
}

// startCalls starts bin (gotarget, or a copy) with "calls n".
func startCalls(t *testing.T, bin string, n int) *callsProc {
	t.Helper()
	p := &callsProc{cmd: exec.Command(bin, "calls", strconv.Itoa(n))}
	p.cmd.Stdout = &p.out
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// run lets the process make its calls and waits for it.
func (p *callsProc) run(t *testing.T) {
	t.Helper()
	if _, err := p.stdin.Write([]byte{1}); err != nil {
		t.Error(err)
	}
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("gotarget %d: %v", p.cmd.Process.Pid, err)
	}
	if p.out.Len() == 0 {
		t.Errorf("gotarget %d printed nothing: its calls were not made", p.cmd.Process.Pid)
	}
}

// countWork counts the entries and exits of main.work in the recording in
// dir, by pid, and fails on an exit without its entry.
func countWork(t *testing.T, dir string) (entries, exits map[uint32]int) {
	t.Helper()
	entries, exits = map[uint32]int{}, map[uint32]int{}
	for _, e := range decodeAll(t, dir)[gofunc.StreamGofunc] {
		g := e.(*gofunc.Event)
		if g.Func != "main.work" {
			t.Errorf("unexpected event %+v", g)
			continue
		}
		switch g.Kind {
		case "entry":
			entries[g.Pid]++
		case "exit":
			exits[g.Pid]++
			if !g.EntrySeen {
				t.Errorf("exit without its entry: %+v", g)
			}
		}
	}
	return entries, exits
}

// TestRecordGofuncExecLater: --exec of a Go program that no process runs
// when the recording starts. Two processes of it started afterwards are
// recorded, each exactly with its calls: one makes them at once (the
// probes are on the file, and the kernel selects the process from its
// exec on), the other once the recorder reports it instrumented. A copy of
// the program (another file, with the same function) is not recorded.
func TestRecordGofuncExecLater(t *testing.T) {
	kerneltest.Require(t)
	path, other := goTargetAndCopy(t)
	const na, nb, no = 5, 8, 6
	dir := filepath.Join(t.TempDir(), "rec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	instrumented := make(chan InstrumentResult, 64)
	var pa, pb, po *callsProc
	rec, err := New(Options{Dir: dir, Exec: []string{path}, Funcs: []string{"main.work"}, WakeupEvery: 1,
		Instrumented: func(r InstrumentResult) { instrumented <- r },
		Started: func() {
			go func() {
				defer cancel()
				// At once: its calls may come before the recorder sees its exec.
				pb = startCalls(t, path, nb)
				po = startCalls(t, other, no)
				pb.run(t)
				po.run(t)
				pa = startCalls(t, path, na)
				deadline := time.After(2 * time.Minute)
				for {
					select {
					case r := <-instrumented:
						if int(r.PID) != pa.cmd.Process.Pid {
							continue
						}
						if r.Err != nil {
							t.Errorf("instrumenting %d: %v", r.PID, r.Err)
						}
					case <-deadline:
						t.Error("the process started after the recording was never reported instrumented")
					}
					break
				}
				pa.run(t)
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pa == nil || t.Failed() {
		t.FailNow()
	}
	entries, exits := countWork(t, dir)
	a, bp, o := uint32(pa.cmd.Process.Pid), uint32(pb.cmd.Process.Pid), uint32(po.cmd.Process.Pid)
	for _, c := range []struct {
		pid  uint32
		want int
	}{{a, na}, {bp, nb}, {o, 0}} {
		if entries[c.pid] != c.want || exits[c.pid] != c.want {
			t.Errorf("pid %d: %d entries, %d exits; want %d of each", c.pid, entries[c.pid], exits[c.pid], c.want)
		}
	}
	if len(entries) != 2 || len(exits) != 2 {
		t.Errorf("events of pids %v (entries), %v (exits); want %d and %d only", entries, exits, a, bp)
	}
	var file, procA int
	for _, r := range sum.Instrumented {
		switch {
		case r.PID == 0 && r.Exe == path && r.Err == nil:
			file++
		case uint32(r.PID) == a && r.Err == nil, uint32(r.PID) == bp && r.Err == nil:
			if uint32(r.PID) == a {
				procA++
			}
		default:
			t.Errorf("unexpected instrumentation result %+v", r)
		}
	}
	if file != 1 || procA != 1 {
		t.Errorf("instrumented %+v; want the file %s once and process %d", sum.Instrumented, path, a)
	}
}

// TestRecordGofuncOtherNamespace: a process in mount and PID namespaces of
// its own (as in a container) whose executable is at a path that does not
// exist in the recorder's: a copy of gotarget on a tmpfs mounted in its
// namespace only. Chosen by --pid (its pid as the recorder sees it) and by
// --comm, it is instrumented through paths the recorder can open, and
// exactly its calls are recorded.
func TestRecordGofuncOtherNamespace(t *testing.T) {
	kerneltest.Require(t)
	path := testdata.GoTarget(t, "../bpf/testdata", runtime.GOARCH, false)
	for _, by := range []string{"pid", "comm"} {
		t.Run(by, func(t *testing.T) {
			const n, name = 7, "ebpfrec-ctrapp"
			mnt := t.TempDir() // empty here; a tmpfs in the process's namespace
			inside := filepath.Join(mnt, "ctr", name)
			cmd := exec.Command("/bin/sh", "-c", `mount -t tmpfs tmpfs "$0" && mkdir "$0/ctr" && cp "$1" "$2" && exec "$2" calls "$3"`,
				mnt, path, inside, strconv.Itoa(n))
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Cloneflags: syscall.CLONE_NEWPID}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			pid := cmd.Process.Pid
			// Wait for the exec of the copy, in its namespace.
			for deadline := time.Now().Add(time.Minute); ; {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == inside {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the process never ran %s: %s", inside, out.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := os.Stat(inside); !os.IsNotExist(err) {
				t.Fatalf("%s exists in the recorder's mount namespace (%v): the test needs a path that does not", inside, err)
			}
			dir := filepath.Join(t.TempDir(), "rec")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := Options{Dir: dir, Funcs: []string{"main.work"}, WakeupEvery: 1,
				Started: func() {
					go func() {
						defer cancel()
						stdin.Write([]byte{1})
						stdin.Close()
						if err := cmd.Wait(); err != nil {
							t.Errorf("the process: %v: %s", err, out.String())
						}
					}()
				}}
			if by == "pid" {
				opts.PIDs = []uint32{uint32(pid)}
			} else {
				opts.Comms = []string{name}
			}
			rec, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := rec.AddBuiltin(gofunc.Name); err != nil {
				t.Fatal(err)
			}
			sum, err := rec.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Instrumented) != 1 || sum.Instrumented[0].Err != nil || sum.Instrumented[0].PID != int32(pid) || sum.Instrumented[0].Exe != inside {
				t.Errorf("instrumented %+v; want process %d (%s)", sum.Instrumented, pid, inside)
			}
			entries, exits := countWork(t, dir)
			if entries[uint32(pid)] != n || exits[uint32(pid)] != n || len(entries) != 1 || len(exits) != 1 {
				t.Errorf("entries %v, exits %v; want %d of each by %d only", entries, exits, n, pid)
			}
		})
	}
}

// TestRecordDNSOtherNamespace: libraries at paths that exist in the
// recorder's mount namespace as other files. A bash and its getent run
// chrooted into a tmpfs of their own mount and PID namespaces, with copies
// of bash, getent and their libraries at the paths they have here: the
// dns tracer must probe the copy of libc that they map (through
// /proc/PID/root), not the recorder's. bash is chosen by --pid once it
// mapped libc, getent by --comm; the recording holds exactly the lookups.
func TestRecordDNSOtherNamespace(t *testing.T) {
	kerneltest.Require(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	getent, err := exec.LookPath("getent")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{bash, getent}
	for _, bin := range files[:2] {
		interp, libs := elfDeps(t, bin)
		files = append(files, interp)
		files = append(files, libs...)
	}
	etc := t.TempDir()
	for name, text := range map[string]string{"hosts": "10.9.8.7 gamma.ebpfrec.test\n", "nsswitch.conf": "hosts: files\n"} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir() // empty here; a tmpfs in the namespace
	script := `set -e
root=$0 etc=$1 bash=$2 getent=$3
shift 3
mount -t tmpfs tmpfs "$root"
mkdir -p "$root/etc"
cp "$etc"/hosts "$etc"/nsswitch.conf "$root/etc/"
for f in "$@"; do mkdir -p "$root${f%/*}"; cp "$f" "$root$f"; done
exec chroot "$root" "$bash" -c 'read x; "$0" ahosts gamma.ebpfrec.test; "$0" ahosts delta.ebpfrec.test; "$0" ahosts gamma.ebpfrec.test; true' "$getent"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, root, etc, bash, getent}, files...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Cloneflags: syscall.CLONE_NEWPID}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	// Wait for the chrooted bash to have mapped its libc.
	for deadline := time.Now().Add(time.Minute); ; {
		r, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if r == root && strings.Contains(string(maps), "/libc.so.6") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chrooted bash never mapped libc: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, PIDs: []uint32{uint32(pid)}, Comms: []string{"getent"}, WakeupEvery: 1,
		Started: func() { stdin.Write([]byte("go\n")) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(dns.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(context.Background()) // ends when bash exits
	if err != nil {
		t.Fatal(err)
	}
	var bashOK bool
	for _, r := range sum.Instrumented {
		if r.Err != nil {
			t.Errorf("not instrumented: %+v", r)
		}
		bashOK = bashOK || int(r.PID) == pid
	}
	if !bashOK {
		t.Errorf("instrumented %+v; want bash %d", sum.Instrumented, pid)
	}
	var got []string
	for _, e := range decodeAll(t, dir)[dns.StreamDNS] {
		d := e.(*dns.Event)
		got = append(got, fmt.Sprintf("%s %s %v", d.Host, d.Result, d.Addrs))
	}
	want := []string{"gamma.ebpfrec.test ok [10.9.8.7]", "delta.ebpfrec.test EAI_NONAME []", "gamma.ebpfrec.test ok [10.9.8.7]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded lookups %q, want %q (output: %s)", got, want, out.String())
	}
}

// elfDeps returns the program interpreter of the dynamically linked
// executable bin and the paths of the libraries it needs, found in the
// directories of this system's loader.
func elfDeps(t *testing.T, bin string) (string, []string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatal(err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		t.Fatalf("%s: not dynamically linked", bin)
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	var libs []string
	dirs := []string{filepath.Dir(interp), "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
	for _, n := range needed {
		found := ""
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, n)); err == nil {
				found = filepath.Join(d, n)
				break
			}
		}
		if found == "" {
			t.Fatalf("%s: library %s not found in %v", bin, n, dirs)
		}
		libs = append(libs, found)
	}
	return interp, libs
}

// TestRecordGofuncExecLaterNoProc: without the proc stream (NoProc), a
// process of --exec started later is recorded all the same, exactly: the
// file is instrumented at the start and the follow object's exec program
// selects the process at its exec. A copy of the program is not.
func TestRecordGofuncExecLaterNoProc(t *testing.T) {
	kerneltest.Require(t)
	path, other := goTargetAndCopy(t)
	const n = 6
	dir := filepath.Join(t.TempDir(), "rec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var p, po *callsProc
	rec, err := New(Options{Dir: dir, Exec: []string{path}, Funcs: []string{"main.work"}, WakeupEvery: 1, NoProc: true,
		Started: func() {
			defer cancel()
			p, po = startCalls(t, path, n), startCalls(t, other, n)
			p.run(t)
			po.run(t)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	entries, exits := countWork(t, dir)
	pid := uint32(p.cmd.Process.Pid)
	if entries[pid] != n || exits[pid] != n || len(entries) != 1 || len(exits) != 1 {
		t.Errorf("entries %v, exits %v; want %d of each by %d only (not the copy's %d)", entries, exits, n, pid, po.cmd.Process.Pid)
	}
}

// goTargetAndCopy returns gotarget and a copy of it: another file, with
// the same functions.
func goTargetAndCopy(t *testing.T) (path, other string) {
	t.Helper()
	path = testdata.GoTarget(t, "../bpf/testdata", runtime.GOARCH, false)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other = filepath.Join(t.TempDir(), "gotarget-other")
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path, other
}
