package bpf

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// uprobeTargetC calls target() exactly argv[1] times, but only after it has
// read one byte from stdin, so the test can attach a probe filtered on the
// child's PID before any call.
const uprobeTargetC = `
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline, used)) int target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	char c;
	if (argc != 2 || read(0, &c, 1) != 1)
		return 2;
	int n = atoi(argv[1]);
	volatile int sum = 0;
	for (int i = 0; i < n; i++)
		sum += target(i);
	printf("%d\n", sum);
	return 0;
}
`

// buildUprobeTarget compiles uprobeTargetC and returns the binary's path and
// the file offset of target().
func buildUprobeTarget(t *testing.T) (string, uint64) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "target.c")
	bin := filepath.Join(dir, "target")
	if err := os.WriteFile(src, []byte(uprobeTargetC), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	off, err := symbolFileOffset(bin, "target")
	if err != nil {
		t.Fatal(err)
	}
	return bin, off
}

// symbolFileOffset returns the offset in the file of a function symbol:
// its value minus its section's address plus the section's offset.
func symbolFileOffset(path, name string) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return 0, err
	}
	for _, s := range syms {
		if s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		if int(s.Section) >= len(f.Sections) {
			return 0, fmt.Errorf("symbol %s in section %d", name, s.Section)
		}
		sec := f.Sections[s.Section]
		return s.Value - sec.Addr + sec.Offset, nil
	}
	return 0, fmt.Errorf("no function %s in %s", name, path)
}

func TestManagerAttachUprobe(t *testing.T) {
	m := newTestManager(t)
	bin, off := buildUprobeTarget(t)
	for _, c := range []struct {
		name, section string
		attachType    ebpf.AttachType
		typ           ProgramType
	}{
		{"uprobe", "uprobe", ebpf.AttachNone, ProgramUprobe},
		{"uretprobe", "uretprobe", ebpf.AttachNone, ProgramUretprobe},
		{"uprobe_multi", "uprobe.multi", ebpf.AttachTraceUprobeMulti, ProgramUprobe},
	} {
		t.Run(c.name, func(t *testing.T) {
			testUprobe(t, m, c.name, bin, off, func(ps *ebpf.ProgramSpec) {
				ps.SectionName, ps.AttachType = c.section, c.attachType
			}, c.typ)
		})
	}
}

// testUprobe runs bin so that it calls target() a known number of times
// with count_uprobe, adjusted by tweak, attached as collection coll.
func testUprobe(t *testing.T, m *Manager, coll, bin string, off uint64, tweak func(*ebpf.ProgramSpec), typ ProgramType) {
	const calls = 29
	cmd := exec.Command(bin, fmt.Sprint(calls))
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
	l, err := m.AttachUprobe(coll, testdata.TestprogProgCountUprobe, bin, off)
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
	id := linkID(t, l)

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

	if err := m.DetachLink(linkName); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernelLinks(t)[id]; ok {
		t.Errorf("link %d still in the kernel after DetachLink", id)
	}

	if _, err := m.AttachUprobe(coll, testdata.TestprogProgCountUprobe, filepath.Join(t.TempDir(), "missing"), off); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uprobe on a missing file: %v, want os.ErrNotExist", err)
	}
	if m.Stats().LinksActive != 0 {
		t.Errorf("Stats = %+v", m.Stats())
	}
}
