package record

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// gotargetSum is what gotarget prints after calls of its work function
// (bpf/testdata/gotarget).
func gotargetSum(calls int) int {
	sum := 0
	for x := range calls {
		if x%3 == 0 {
			sum += x * 7
			continue
		}
		s := 0
		for i := range 64 {
			s += int(byte(x + i))
		}
		sum += s + x
	}
	return sum
}

// mappedAt returns where process pid mapped the start of the file at path.
// The child may not have exec'd yet when Start returns (seen on 6.12: its
// maps were still the test's): it waits for it, up to 10 s, so that the
// recording finds the process by its executable.
func mappedAt(t *testing.T, pid int, path string) string {
	t.Helper()
	for try := 0; try < 1000; try++ {
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(maps), "\n") {
			if f := strings.Fields(l); len(f) == 6 && f[5] == path && f[2] == "00000000" {
				return strings.Split(f[0], "-")[0]
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has not mapped %s in 10 s", pid, path)
	return ""
}

// TestRecordGofuncBuilds records gotarget's work function with gofunc in
// two processes of one executable, chosen by its path, for gotarget built
// position-independent (each process has its functions at another
// address), without symbols and DWARF (-ldflags=-s -w: functions from its
// Go function table, the goroutine id's offset from its Go release), and
// both: each process's calls are recorded exactly, an entry and an exit
// each, on goroutine 1, and both print the right sum under the probes.
func TestRecordGofuncBuilds(t *testing.T) {
	kerneltest.Require(t)
	for _, b := range []testdata.GoBuild{testdata.GoPIE, testdata.GoStripped, testdata.GoPIEStripped} {
		t.Run(b.Name, func(t *testing.T) { testRecordGofuncBuild(t, b) })
	}
}

func testRecordGofuncBuild(t *testing.T, build testdata.GoBuild) {
	bin := testdata.GoTargetAs(t, "../bpf/testdata", runtime.GOARCH, build)
	calls := []int{37, 52}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   strings.Builder
	}
	procs := make([]*proc, len(calls))
	for i, n := range calls {
		p := &proc{cmd: exec.Command(bin, "calls", strconv.Itoa(n))}
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdout = &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.stdin.Close()
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		})
		procs[i] = p
	}
	pie := build.Name == testdata.GoPIE.Name || build.Name == testdata.GoPIEStripped.Name
	a, b := mappedAt(t, procs[0].cmd.Process.Pid, bin), mappedAt(t, procs[1].cmd.Process.Pid, bin)
	if aslr, _ := os.ReadFile("/proc/sys/kernel/randomize_va_space"); pie && a == b && strings.TrimSpace(string(aslr)) != "0" {
		t.Errorf("both processes of the position-independent %s mapped it at %s", bin, a)
	}

	dir := filepath.Join(t.TempDir(), "rec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec, err := New(Options{Dir: dir, Exec: []string{bin}, Funcs: []string{"main.wor?"}, WakeupEvery: 1,
		Started: func() {
			go func() {
				defer cancel()
				for _, p := range procs {
					if _, err := io.WriteString(p.stdin, "x"); err != nil {
						t.Error(err)
					}
					p.stdin.Close()
				}
				for _, p := range procs {
					if err := p.cmd.Wait(); err != nil {
						t.Errorf("gotarget: %v", err)
					}
				}
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
	for _, r := range sum.Instrumented {
		if r.Err != nil {
			t.Errorf("instrumenting %d: %v", r.PID, r.Err)
		}
	}
	// The file itself (PID 0, for processes started later) and each
	// running process, once.
	want := map[int32]bool{0: true}
	for _, p := range procs {
		want[int32(p.cmd.Process.Pid)] = true
	}
	for _, r := range sum.Instrumented {
		if !want[r.PID] {
			t.Errorf("instrumented %d (%s), not the file nor one of the processes, or twice", r.PID, r.Exe)
		}
		delete(want, r.PID)
	}
	if len(want) > 0 {
		t.Errorf("not instrumented: %v (instrumented %+v)", want, sum.Instrumented)
	}

	type count struct{ entries, exits int }
	got := map[uint32]*count{}
	for _, e := range decodeAll(t, dir)[gofunc.StreamGofunc] {
		g := e.(*gofunc.Event)
		if g.Func != "main.work" || g.Goid != 1 {
			t.Errorf("unexpected event %+v", g)
			continue
		}
		c := got[g.Pid]
		if c == nil {
			c = &count{}
			got[g.Pid] = c
		}
		switch g.Kind {
		case "entry":
			c.entries++
		case "exit":
			c.exits++
			if !g.EntrySeen {
				t.Errorf("exit without its entry: %+v", g)
			}
		}
	}
	for i, p := range procs {
		c := got[uint32(p.cmd.Process.Pid)]
		if c == nil {
			c = &count{}
		}
		if c.entries != calls[i] || c.exits != calls[i] {
			t.Errorf("process %d: recorded %d entries and %d exits of main.work, want %d of each", p.cmd.Process.Pid, c.entries, c.exits, calls[i])
		}
		if out, want := strings.TrimSpace(p.out.String()), strconv.Itoa(gotargetSum(calls[i])); out != want {
			t.Errorf("process %d printed %q under the probes, want %s", p.cmd.Process.Pid, out, want)
		}
	}
	if len(got) != len(procs) {
		t.Errorf("events of %d processes, want %d", len(got), len(procs))
	}
}
