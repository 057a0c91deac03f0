package bpf

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// envUprobeCalls makes the test binary the uprobe target: it waits for a
// byte on stdin (so the test can attach a probe filtered on its PID first),
// then calls uprobeTarget that many times, prints the sum and exits. The
// target is the test binary itself, so the test needs no C compiler and
// runs wherever the tests run (the kernel matrix's VMs included).
const envUprobeCalls = "BPF_TEST_UPROBE_CALLS"

//go:noinline
func uprobeTarget(x int) int { return x + 1 }

func TestMain(m *testing.M) {
	if v := os.Getenv(envUprobeCalls); v != "" {
		n, _ := strconv.Atoi(v)
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			os.Exit(2)
		}
		sum := 0
		for i := range n {
			sum += uprobeTarget(i)
		}
		fmt.Println(sum)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// uprobeTargetBinary returns the test binary's path and the file offset of
// uprobeTarget in it.
func uprobeTargetBinary(t *testing.T) (string, uint64) {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	off, err := addressFileOffset(bin, uint64(reflect.ValueOf(uprobeTarget).Pointer()))
	if err != nil {
		t.Fatal(err)
	}
	return bin, off
}

// addressFileOffset returns where in the ELF file path the code at virtual
// address va lies, from the file's loadable segments (which a stripped
// binary keeps too: go test strips its binaries' symbols).
func addressFileOffset(path string, va uint64) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		return 0, fmt.Errorf("%s is %s, not a position-dependent executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && va >= p.Vaddr && va < p.Vaddr+p.Filesz {
			return va - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no executable segment of %s", va, path)
}

func TestManagerAttachUprobe(t *testing.T) {
	m := newTestManager(t)
	bin, off := uprobeTargetBinary(t)
	for _, c := range []struct {
		name, section string
		attachType    ebpf.AttachType
		typ           ProgramType
		forceRet      bool // attach with AttachUretprobe
		ret           bool // a return probe is expected
	}{
		{"uprobe", "uprobe", ebpf.AttachNone, ProgramUprobe, false, false},
		{"uretprobe", "uretprobe", ebpf.AttachNone, ProgramUretprobe, false, true},
		{"uprobe_multi", "uprobe.multi", ebpf.AttachTraceUprobeMulti, ProgramUprobe, false, false},
		{"uprobe_as_uretprobe", "uprobe", ebpf.AttachNone, ProgramUprobe, true, true},
		{"uprobe_multi_as_uretprobe", "uprobe.multi", ebpf.AttachTraceUprobeMulti, ProgramUprobe, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.attachType == ebpf.AttachTraceUprobeMulti {
				if err := features.HaveBPFLinkUprobeMulti(); err != nil {
					testUprobeRefused(t, m, c.name, bin, off, c.section, c.attachType, err)
					return
				}
			}
			testUprobe(t, m, c.name, bin, off, func(ps *ebpf.ProgramSpec) {
				ps.SectionName, ps.AttachType = c.section, c.attachType
			}, c.typ, c.forceRet, c.ret)
		})
	}
}

// testUprobe runs bin so that it calls target() a known number of times
// with count_uprobe, adjusted by tweak, attached as collection coll (by
// AttachUretprobe if forceRet), and checks that it was an entry or, if ret,
// a return probe: the return register holds uprobeTarget's argument i at
// its entry and i+1 at its return.
func testUprobe(t *testing.T, m *Manager, coll, bin string, off uint64, tweak func(*ebpf.ProgramSpec), typ ProgramType, forceRet, ret bool) {
	const calls = 29
	cmd := exec.Command(bin)
	// A return probe on a Go function puts a return address that is not
	// Go's on the stack while the function runs: a stack scan then (by the
	// collector, or for an asynchronous preemption) kills the process
	// ("unknown caller pc"). The child allocates next to nothing; these
	// keep the collector and preemption off its stack altogether.
	cmd.Env = append(os.Environ(), envUprobeCalls+"="+strconv.Itoa(calls), "GOGC=off", "GODEBUG=asyncpreemptoff=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	// Load a copy of the test program that selects the child (which waits
	// for a byte on stdin before calling target).
	spec := mgrTestSpec(t, cmd.Process.Pid)
	for name := range spec.Programs {
		if name != testdata.TestprogProgCountUprobe {
			delete(spec.Programs, name)
		}
	}
	tweak(spec.Programs[testdata.TestprogProgCountUprobe])
	if err := m.LoadSpec(coll, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadCollection(coll, nil); err != nil {
		t.Fatal(err)
	}
	attach := m.AttachUprobe
	if forceRet {
		attach = m.AttachUretprobe
	}
	l, err := attach(coll, testdata.TestprogProgCountUprobe, bin, off)
	if err != nil {
		t.Fatal(err)
	}
	linkName := fmt.Sprintf("%s/count_uprobe@%s:%#x", coll, bin, off)
	var found bool
	for _, p := range m.ListPrograms() {
		if p.Name == coll+"/count_uprobe" {
			found = true
			if p.AttachPoint != linkName || p.Type != typ {
				t.Errorf("ListPrograms: %+v, want attach point %q, type %q", p, linkName, typ)
			}
		}
	}
	if !found {
		t.Errorf("%s/count_uprobe not listed", coll)
	}
	id, hasID := linkID(t, l)

	// Let the child run and finish: every call happened before Wait returns.
	if _, err := io.WriteString(stdin, "x"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if got := readCounter(t, m.MapManager(), coll+"/counters", mgrSlotUprobe); got != calls {
		t.Errorf("counted %d calls, want %d (child printed %q)", got, calls, out.String())
	}
	// Calls with 0..calls-1: the arguments sum to calls*(calls-1)/2, the
	// results to calls*(calls+1)/2.
	want, what := uint64(calls*(calls-1)/2), "entry"
	if ret {
		want, what = calls*(calls+1)/2, "return"
	}
	if got := readCounter(t, m.MapManager(), coll+"/counters", mgrSlotUprobeRC); got != want {
		t.Errorf("return register summed to %d, want %d: not a probe at the function's %s", got, want, what)
	}

	if err := m.DetachLink(linkName); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernelLinks(t)[id]; hasID && ok {
		t.Errorf("link %d still in the kernel after DetachLink", id)
	}

	if _, err := m.AttachUprobe(coll, testdata.TestprogProgCountUprobe, filepath.Join(t.TempDir(), "missing"), off); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uprobe on a missing file: %v, want os.ErrNotExist", err)
	}
	if m.Stats().LinksActive != 0 {
		t.Errorf("Stats = %+v", m.Stats())
	}
}

// testUprobeRefused checks, on a kernel without uprobe_multi links (before
// 6.6), that a uprobe.multi program fails to load or attach with an error,
// and leaves nothing attached.
func testUprobeRefused(t *testing.T, m *Manager, coll, bin string, off uint64, section string, at ebpf.AttachType, why error) {
	spec := mgrTestSpec(t, os.Getpid())
	for name := range spec.Programs {
		if name != testdata.TestprogProgCountUprobe {
			delete(spec.Programs, name)
		}
	}
	ps := spec.Programs[testdata.TestprogProgCountUprobe]
	ps.SectionName, ps.AttachType = section, at
	if err := m.LoadSpec(coll, spec); err != nil {
		t.Fatal(err)
	}
	_, err := m.LoadCollection(coll, nil)
	if err == nil {
		var l interface{ Close() error }
		l, err = m.AttachUprobe(coll, testdata.TestprogProgCountUprobe, bin, off)
		if err == nil {
			l.Close()
			t.Fatalf("uprobe_multi attached on a kernel without it (%v)", why)
		}
	}
	t.Logf("no uprobe_multi here (%v): %v", why, err)
	if m.Stats().LinksActive != 0 {
		t.Errorf("Stats = %+v", m.Stats())
	}
}
