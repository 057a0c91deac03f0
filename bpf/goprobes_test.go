package bpf

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// Slots of gofunc's stats map (bpf/testdata/gofunc.c).
const (
	goStEntries uint32 = iota
	goStReturns
	goStArgSum
	goStRetSum
	goStG
	goStGMismatch
	goStGoid
	goStGoidErr
)

// gotargetWork is gotarget's work function (bpf/testdata/gotarget), to
// know what it returns.
func gotargetWork(x int) int {
	if x%3 == 0 {
		return x * 7
	}
	s := 0
	for i := range 64 {
		s += int(byte(x + i))
	}
	return s + x
}

func TestInspectGo(t *testing.T) {
	bin := testdata.GoTarget(t, "testdata", runtime.GOARCH, false)
	off, err := InspectGo(bin, []string{"main.work", "main.(*Server).Handle*"}, []string{"main.Server.Handled", "runtime.g.goid"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n, fo := range off.Funcs {
		names = append(names, n)
		if fo.Start == 0 || len(fo.Returns) == 0 {
			t.Errorf("%s: %+v", n, fo)
		}
	}
	if len(names) != 3 || len(off.Funcs["main.work"].Returns) != 2 {
		t.Errorf("functions %v, main.work %+v", names, off.Funcs["main.work"])
	}
	if off.Field["main.Server.Handled"] != 24 || off.Field["runtime.g.goid"] == 0 {
		t.Errorf("fields %v", off.Field)
	}

	// Built with -ldflags=-s -w, the program gives the same offsets, from
	// its Go function table, and the goid's offset without DWARF.
	stripped := testdata.GoTarget(t, "testdata", runtime.GOARCH, true)
	soff, err := InspectGo(stripped, []string{"main.work", "main.(*Server).Handle*"}, []string{"runtime.g.goid"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(soff.Funcs) != fmt.Sprint(off.Funcs) || soff.Field["runtime.g.goid"] != off.Field["runtime.g.goid"] {
		t.Errorf("stripped: %+v, full: %+v", soff, off)
	}
	for _, c := range []struct {
		path          string
		funcs, fields []string
		err           error
		names         string
	}{
		{stripped, nil, []string{"main.Server.Handled"}, exeinfo.ErrNoDWARF, "main.Server.Handled"},
		{bin, []string{"main.nosuch"}, nil, exeinfo.ErrNoSymbol, "main.nosuch"},
		{bin, nil, []string{"main.Server.Nope"}, exeinfo.ErrNoField, "Nope"},
		{bin, nil, []string{"nodot"}, ErrInvalidName, "nodot"},
		{"/bin/true", []string{"main.work"}, nil, exeinfo.ErrNotGo, "/bin/true"},
	} {
		_, err := InspectGo(c.path, c.funcs, c.fields)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("InspectGo(%s, %v, %v): %v, want %v naming %s", c.path, c.funcs, c.fields, err, c.err, c.names)
		}
	}
}

// TestGoFuncProbes probes gotarget's work function at its entry and at each
// of its return instructions, has the program call it a known number of
// times, and checks the counts, the argument and result sums read from the
// Go ABI's registers, the goroutine pointer and its goid (read at the
// DWARF offset of runtime.g.goid), and that the program's output is the
// same as without probes.
//
// The return program also runs from a spec whose section says uretprobe:
// AttachGoFunc must still place plain uprobes at the return instructions
// (a uretprobe would report the caller's address, and break Go's stacks).
func TestGoFuncProbes(t *testing.T) {
	for _, sec := range []string{"uprobe", "uretprobe"} {
		t.Run(sec, func(t *testing.T) { testGoFuncProbes(t, sec, testdata.GoExe) })
	}
}

// TestGoFuncProbesBuilds probes gotarget as TestGoFuncProbes does, built
// position-independent (its functions at another address in each
// process), without symbols and DWARF (-ldflags=-s -w: offsets from its Go
// function table), and both.
func TestGoFuncProbesBuilds(t *testing.T) {
	for _, b := range []testdata.GoBuild{testdata.GoPIE, testdata.GoStripped, testdata.GoPIEStripped} {
		t.Run(b.Name, func(t *testing.T) { testGoFuncProbes(t, "uprobe", b) })
	}
}

// loadBias returns where the process pid mapped the executable at path
// relative to the addresses of its program headers: 0 unless it is
// position-independent.
func loadBias(t *testing.T, pid int, path string) uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	first := ^uint64(0)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			first = p.Vaddr &^ 0xfff
		}
	}
	// The child may not have exec'd yet when Start returns (seen on 6.12:
	// its maps were still the test's): wait for it, up to 10 s.
	var maps []byte
	for try := 0; try < 1000; try++ {
		var err error
		if maps, err = os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(maps), "\n") {
			f := strings.Fields(l)
			if len(f) == 6 && f[5] == path && f[2] == "00000000" {
				start, err := strconv.ParseUint(strings.Split(f[0], "-")[0], 16, 64)
				if err != nil || first == ^uint64(0) {
					t.Fatalf("%s: %q: %v", path, l, err)
				}
				return start - first
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s is not mapped at offset 0 by process %d:\n%s", path, pid, maps)
	return 0
}

func testGoFuncProbes(t *testing.T, retSection string, build testdata.GoBuild) {
	m := newTestManager(t)
	bin := testdata.GoTargetAs(t, "testdata", runtime.GOARCH, build)
	offs, err := InspectGo(bin, []string{"main.work"}, []string{"runtime.g.goid"})
	if err != nil {
		t.Fatal(err)
	}
	fo := offs.Funcs["main.work"]
	ef, err := exeinfo.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := ef.Symbol("main.work")
	ef.Close()
	if err != nil {
		t.Fatal(err)
	}

	const calls = 301
	wantSum, wantThirds := 0, 0
	for i := range calls {
		wantSum += gotargetWork(i)
		if i%3 == 0 {
			wantThirds++
		}
	}
	cmd := exec.Command(bin, "calls", strconv.Itoa(calls))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	// The probed instruction's address is its offset's place in the mapped
	// segment, moved by the load bias of a position-independent executable.
	bias := loadBias(t, cmd.Process.Pid, bin)
	if pie := build.Name == "pie" || build.Name == "pie-stripped"; pie != (bias != 0) {
		t.Errorf("%s mapped with load bias %#x", bin, bias)
	}
	vaddr := func(off uint64) uint64 { return off - sym.Offset + sym.Value + bias }

	spec, err := testdata.LoadGofunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables[testdata.GofuncVarTargetTgid].Set(uint32(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables[testdata.GofuncVarG_goidOffset].Set(offs.Field["runtime.g.goid"]); err != nil {
		t.Fatal(err)
	}
	spec.Programs[testdata.GofuncProgGoReturn].SectionName = retSection
	if err := m.LoadSpec("gofunc", spec); err != nil {
		t.Fatal(err)
	}
	coll, err := m.LoadCollection("gofunc", nil)
	if err != nil {
		t.Fatal(err)
	}
	links, err := m.AttachGoFunc("gofunc", testdata.GofuncProgGoEntry, testdata.GofuncProgGoReturn, bin, fo)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1+len(fo.Returns) || m.Stats().LinksActive != len(links) {
		t.Fatalf("%d links, %+v; want %d", len(links), m.Stats(), 1+len(fo.Returns))
	}

	if _, err := io.WriteString(stdin, "x"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gotarget: %v: %s", err, out.String())
	}
	if got := strings.TrimSpace(out.String()); got != strconv.Itoa(wantSum) {
		t.Errorf("gotarget printed %q under probes, want %d", got, wantSum)
	}

	stat := func(s uint32) uint64 { return readCounter(t, m.MapManager(), "gofunc/stats", s) }
	if e, r := stat(goStEntries), stat(goStReturns); e != calls || r != calls {
		t.Errorf("entries %d, returns %d; want %d each", e, r, calls)
	}
	if got, want := stat(goStArgSum), uint64(calls*(calls-1)/2); got != want {
		t.Errorf("arguments (RAX/R0 at entry) sum to %d, want %d", got, want)
	}
	if got := stat(goStRetSum); got != uint64(wantSum) {
		t.Errorf("results (RAX/R0 at the returns) sum to %d, want %d", got, wantSum)
	}
	if g, mis := stat(goStG), stat(goStGMismatch); g == 0 || mis != 0 {
		t.Errorf("goroutine pointer %#x, %d hits with another one; want one goroutine", g, mis)
	}
	// The main goroutine is goroutine 1.
	if goid, errs := stat(goStGoid), stat(goStGoidErr); goid != 1 || errs != 0 {
		t.Errorf("goid %d (%d failed reads), want 1", goid, errs)
	}

	hits := make(map[uint64]uint64)
	var ip, n uint64
	it := coll.Maps[testdata.GofuncMapHits].Iterate()
	for it.Next(&ip, &n) {
		hits[ip] = n
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if hits[vaddr(fo.Start)] != calls {
		t.Errorf("entry %#x hit %d times, want %d (hits %v)", vaddr(fo.Start), hits[vaddr(fo.Start)], calls, hits)
	}
	var retHits []uint64
	for _, r := range fo.Returns {
		retHits = append(retHits, hits[vaddr(r)])
	}
	// One return is work's x*7 path (every third call), the other the rest.
	if fmt.Sprint(retHits) != fmt.Sprint([]uint64{uint64(wantThirds), uint64(calls - wantThirds)}) &&
		fmt.Sprint(retHits) != fmt.Sprint([]uint64{uint64(calls - wantThirds), uint64(wantThirds)}) {
		t.Errorf("returns %#x hit %v times, want %d and %d (hits %v)", fo.Returns, retHits, wantThirds, calls-wantThirds, hits)
	}
	if len(hits) != 1+len(fo.Returns) {
		t.Errorf("hits at %d addresses, want %d: %v", len(hits), 1+len(fo.Returns), hits)
	}

	var ids []link.ID
	for _, l := range links {
		if id, ok := linkID(t, l); ok {
			ids = append(ids, id)
		}
	}
	for _, r := range append([]uint64{fo.Start}, fo.Returns...) {
		prog := testdata.GofuncProgGoReturn
		if r == fo.Start {
			prog = testdata.GofuncProgGoEntry
		}
		if err := m.DetachLink(fmt.Sprintf("gofunc/%s@%s:%#x", prog, bin, r)); err != nil {
			t.Error(err)
		}
	}
	kl := kernelLinks(t)
	for _, id := range ids {
		if _, ok := kl[id]; ok {
			t.Errorf("link %d still in the kernel after DetachLink", id)
		}
	}
	if m.Stats().LinksActive != 0 {
		t.Errorf("Stats = %+v", m.Stats())
	}
}
