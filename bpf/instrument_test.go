package bpf

import (
	"bufio"
	"debug/elf"
	"errors"
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

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// stubTracer gives gofuncTracer the Tracer methods ProcessTracer does not
// call (they would panic), one level deeper than its own.
type stubTracer struct{ Tracer }

// gofuncTracer is a Tracer over bpf/testdata/gofunc: AllowPID and BlockPID
// write its "allowed" map, and it probes what goProbes and uprobes say.
type gofuncTracer struct {
	stubTracer
	InstrumentedLibs
	coll      *ebpf.Collection
	goProbes  map[string][]*ProbeDesc
	uprobes   map[string]map[string][]*ProbeDesc
	offsets   []*GoOffsets
	processed []int32
}

func newGofuncTracer(t *testing.T) *gofuncTracer {
	t.Helper()
	kerneltest.Require(t)
	spec, err := testdata.LoadGofunc()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	tr := &gofuncTracer{coll: coll}
	t.Cleanup(func() {
		tr.InstrumentedLibs.Close()
		coll.Close()
	})
	return tr
}

func (g *gofuncTracer) AllowPID(pid, _ uint32, _ *ServiceAttrs) {
	if err := g.coll.Maps[testdata.GofuncMapAllowed].Put(pid, uint8(1)); err != nil {
		panic(err)
	}
}

func (g *gofuncTracer) BlockPID(pid, _ uint32) {
	g.coll.Maps[testdata.GofuncMapAllowed].Delete(pid)
}

func (g *gofuncTracer) GoProbes() map[string][]*ProbeDesc           { return g.goProbes }
func (g *gofuncTracer) UProbes() map[string]map[string][]*ProbeDesc { return g.uprobes }
func (g *gofuncTracer) RegisterOffsets(_ *FileInfo, offsets *GoOffsets) {
	g.offsets = append(g.offsets, offsets)
}
func (g *gofuncTracer) ProcessBinary(fi *FileInfo) { g.processed = append(g.processed, fi.PID) }

func (g *gofuncTracer) allowed(pid int) bool {
	var v uint8
	return g.coll.Maps[testdata.GofuncMapAllowed].Lookup(uint32(pid), &v) == nil
}

// count reads a per-process counter map of gofunc; absent is 0.
func (g *gofuncTracer) count(t *testing.T, m string, pid int) uint64 {
	t.Helper()
	var v uint64
	if err := g.coll.Maps[m].Lookup(uint32(pid), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0
		}
		t.Fatal(err)
	}
	return v
}

// proc is a started child whose stdin the test writes.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Start may return before /proc shows the new image (the 6.12 VM
	// once instrumented the test binary as one of four processes of
	// gotarget): wait until the process runs the file.
	var want, got syscall.Stat_t
	if err := syscall.Stat(cmd.Path, &want); err != nil {
		t.Fatal(err)
	}
	exe := fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)
	// (A process that already exited has no executable to stat.)
	for i := 0; syscall.Stat(exe, &got) == nil && (got.Dev != want.Dev || got.Ino != want.Ino); i++ {
		if i == 1000 {
			t.Fatalf("process %d does not run %s after 10 s", cmd.Process.Pid, cmd.Path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &proc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (p *proc) pid() int32 { return int32(p.cmd.Process.Pid) }

// finish closes stdin, reads the rest of the output and waits.
func (p *proc) finish(t *testing.T) string {
	t.Helper()
	p.stdin.Close()
	rest, err := io.ReadAll(p.out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", p.cmd.Path, err)
	}
	return string(rest)
}

// line writes s and a newline and reads back one line.
func (p *proc) line(t *testing.T, s string) string {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s+"\n"); err != nil {
		t.Fatal(err)
	}
	l, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: reading its echo: %v", p.cmd.Path, err)
	}
	return strings.TrimSuffix(l, "\n")
}

// closerLinks returns the BPF link IDs among closers (none on kernels that
// attach uprobes through perf events, 5.10).
func closerLinks(t *testing.T, closers []io.Closer) []link.ID {
	t.Helper()
	var ids []link.ID
	for _, c := range closers {
		if l, ok := c.(link.Link); ok {
			if id, ok := linkID(t, l); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func checkLinks(t *testing.T, ids []link.ID, present bool, what string) {
	t.Helper()
	kl := kernelLinks(t)
	for _, id := range ids {
		if _, ok := kl[id]; ok != present {
			t.Errorf("%s: link %d in the kernel's list: %v, want %v", what, id, ok, present)
		}
	}
}

// TestProcessTracerGo instruments two processes of one Go executable:
// the file is probed once (entry and each return of main.work), each
// process is counted on its own, a third process of the file that was not
// instrumented is not counted, and the probes go when the last instrumented
// process is released.
func TestProcessTracerGo(t *testing.T) {
	tr := newGofuncTracer(t)
	entry := tr.coll.Programs[testdata.GofuncProgGoEntry]
	tr.goProbes = map[string][]*ProbeDesc{
		"main.wor?":   {{Required: true, Start: entry, End: tr.coll.Programs[testdata.GofuncProgGoReturn]}},
		"main.absent": {{Start: entry}}, // not required: skipped
	}
	pt := NewProcessTracer(Go, nil, tr)
	pt.GoFields = []string{"runtime.g.goid"}
	defer pt.Close()

	bin := testdata.GoTarget(t, "testdata", runtime.GOARCH, false)
	counts := map[string]int{"a": 50, "b": 70, "c": 30}
	procs := map[string]*proc{}
	for _, n := range []string{"a", "b", "c"} {
		procs[n] = startProc(t, bin, "calls", strconv.Itoa(counts[n]))
	}

	ieA := &Instrumentable{FileInfo: &FileInfo{PID: procs["a"].pid()}}
	if err := pt.Instrument(ieA); err != nil {
		t.Fatal(err)
	}
	fi := ieA.FileInfo
	var st syscall.Stat_t
	if err := syscall.Stat(bin, &st); err != nil {
		t.Fatal(err)
	}
	if fi.Ino != st.Ino || fi.Dev != uint64(st.Dev) || fi.CmdExePath != bin || fi.Service.Name != "gotarget" || fi.PPID != int32(os.Getpid()) || fi.NS == 0 {
		t.Errorf("FileInfo %+v", fi)
	}
	if ieA.Type != InstrumentableGolang || ieA.InstrumentationError != nil || ieA.Tracer != pt || ieA.Offsets == nil || ieA.Offsets.Field["runtime.g.goid"] == 0 {
		t.Errorf("Instrumentable %+v", ieA)
	}
	work := ieA.Offsets.Funcs["main.work"]
	if len(tr.offsets) != 1 || tr.offsets[0] != ieA.Offsets || fmt.Sprint(tr.processed) != fmt.Sprint([]int32{fi.PID}) {
		t.Errorf("RegisterOffsets got %v, ProcessBinary %v", tr.offsets, tr.processed)
	}
	key := fi.Key()
	in := pt.Instrumentables[key]
	if in == nil || len(in.closers) != 1+len(work.Returns) || len(work.Returns) != 2 {
		t.Fatalf("instrumented %+v for main.work %+v, want an entry and 2 return probes", in, work)
	}
	ids := closerLinks(t, in.closers)

	ieB := &Instrumentable{FileInfo: &FileInfo{PID: procs["b"].pid()}}
	if err := pt.Instrument(ieB); err != nil {
		t.Fatal(err)
	}
	if in.refs != 2 || len(in.closers) != 3 || len(tr.offsets) != 1 || ieB.Offsets != ieA.Offsets {
		t.Errorf("second process of the file: refs %d, %d closers, offsets registered %d times; want 2, 3, 1", in.refs, len(in.closers), len(tr.offsets))
	}
	if !tr.allowed(int(ieA.FileInfo.PID)) || !tr.allowed(int(ieB.FileInfo.PID)) || tr.allowed(int(procs["c"].pid())) {
		t.Error("allowed map does not hold exactly a and b")
	}

	for _, n := range []string{"a", "b", "c"} {
		want := 0
		for i := range counts[n] {
			want += gotargetWork(i)
		}
		io.WriteString(procs[n].stdin, "x")
		if got := strings.TrimSpace(procs[n].finish(t)); got != strconv.Itoa(want) {
			t.Errorf("process %s printed %q, want %d", n, got, want)
		}
	}
	for n, want := range map[string]int{"a": counts["a"], "b": counts["b"], "c": 0} {
		if got := tr.count(t, testdata.GofuncMapGoCalls, int(procs[n].pid())); got != uint64(want) {
			t.Errorf("process %s: %d calls of main.work counted, want %d", n, got, want)
		}
	}

	if err := pt.Release(ieA.FileInfo.PID); err != nil {
		t.Fatal(err)
	}
	if !pt.IsInstrumented(key) || tr.allowed(int(ieA.FileInfo.PID)) {
		t.Error("after releasing a: the file must stay instrumented for b, a must no longer be allowed")
	}
	checkLinks(t, ids, true, "b still instrumented")
	if err := pt.Release(ieB.FileInfo.PID); err != nil {
		t.Fatal(err)
	}
	if pt.IsInstrumented(key) {
		t.Error("file instrumented after its last process was released")
	}
	checkLinks(t, ids, false, "all released")
	// On every kernel (5.10's perf-event uprobes are not in the link
	// list): an allowed process of the file is no longer counted.
	d := startProc(t, bin, "calls", "40")
	tr.AllowPID(uint32(d.pid()), 0, nil)
	io.WriteString(d.stdin, "x")
	d.finish(t)
	if got := tr.count(t, testdata.GofuncMapGoCalls, int(d.pid())); got != 0 {
		t.Errorf("%d calls counted after the probes were released", got)
	}
	if err := pt.Release(12345678); err != nil {
		t.Errorf("releasing an unknown PID: %v", err)
	}
}

// TestProcessTracerErrors checks that processes that cannot be instrumented
// get a clear error in their Instrumentable and leave nothing behind.
func TestProcessTracerErrors(t *testing.T) {
	tr := newGofuncTracer(t)
	tr.goProbes = map[string][]*ProbeDesc{
		"main.work": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgGoEntry]}},
	}
	pt := NewProcessTracer(Go, nil, tr)
	defer pt.Close()

	// Stripped, and its Go function table hidden: no function has a name.
	stripped := startProc(t, testdata.GoTargetNoFuncTable(t, "testdata", runtime.GOARCH), "calls", "1")
	notGo := startProc(t, "cat")
	gone := startProc(t, "true")
	gone.finish(t)
	for _, c := range []struct {
		name string
		pid  int32
		err  error
	}{
		{"stripped", stripped.pid(), exeinfo.ErrNoSymbols},
		{"not Go", notGo.pid(), exeinfo.ErrNotGo},
		{"vanished", gone.pid(), os.ErrNotExist},
	} {
		ie := &Instrumentable{FileInfo: &FileInfo{PID: c.pid}}
		err := pt.Instrument(ie)
		if !errors.Is(err, c.err) || ie.InstrumentationError != err || !strings.Contains(err.Error(), strconv.Itoa(int(c.pid))) && !strings.Contains(err.Error(), "/") {
			t.Errorf("%s: %v, want %v naming the process or file", c.name, err, c.err)
		}
		if tr.allowed(int(c.pid)) {
			t.Errorf("%s: allowed", c.name)
		}
	}
	if len(pt.Instrumentables) != 0 || len(pt.procs) != 0 {
		t.Errorf("left behind: %v, %v", pt.Instrumentables, pt.procs)
	}
	if err := pt.Instrument(&Instrumentable{}); err == nil {
		t.Error("no FileInfo: no error")
	}
	io.WriteString(stripped.stdin, "x")
	stripped.finish(t)
	notGo.finish(t)
}

// TestProcessTracerLibs instruments the C library of two processes of cat
// and one of bash: it is probed once (uprobe and uretprobe on read),
// referenced three times, each allowed process is counted, another cat is
// not, and the probes go with the last release.
func TestProcessTracerLibs(t *testing.T) {
	tr := newGofuncTracer(t)
	tr.uprobes = map[string]map[string][]*ProbeDesc{
		"libc.so":      {"read": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgLibEntry], End: tr.coll.Programs[testdata.GofuncProgLibReturn]}}},
		"libnosuch.so": {"f": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgLibEntry]}}},
	}
	pt := NewProcessTracer(Generic, nil, tr)
	defer pt.Close()

	procs := map[string]*proc{
		"cat1":  startProc(t, "cat"),
		"cat2":  startProc(t, "cat"),
		"bash":  startProc(t, "bash", "-c", `while read -r l; do echo "$l"; done`),
		"other": startProc(t, "cat"),
	}
	// An echo proves each has started and mapped its libraries.
	for n, p := range procs {
		if got := p.line(t, "ready"); got != "ready" {
			t.Fatalf("%s echoed %q", n, got)
		}
	}
	libc := ""
	for i, n := range []string{"cat1", "cat2", "bash"} {
		ie := &Instrumentable{FileInfo: &FileInfo{PID: procs[n].pid()}}
		if err := pt.Instrument(ie); err != nil {
			t.Fatal(err)
		}
		if ie.Type != InstrumentableGeneric || ie.Offsets != nil {
			t.Errorf("%s: %+v", n, ie)
		}
		st := pt.procs[ie.FileInfo.PID]
		if st == nil || len(st.libs) != 1 {
			t.Fatalf("%s: %+v, want one library reference", n, st)
		}
		if got := tr.LibRefs(st.libs[0].key); got != i+1 {
			t.Errorf("after %s: %d references to libc, want %d", n, got, i+1)
		}
		if libc == "" {
			maps, _ := mappedFiles(ie.FileInfo.PID)
			libc, _ = findModule(maps, "libc.so")
		}
	}
	// Once per executable: cat's second process adds a reference only.
	if fmt.Sprint(tr.processed) != fmt.Sprint([]int32{procs["cat1"].pid(), procs["bash"].pid()}) {
		t.Errorf("ProcessBinary for %v, want cat1 and bash", tr.processed)
	}
	var s syscall.Stat_t
	if err := syscall.Stat(libc, &s); err != nil {
		t.Fatal(err)
	}
	key := FileKey(uint64(s.Dev), s.Ino)
	in := tr.libs[key]
	if in == nil || len(in.closers) != 2 {
		t.Fatalf("libc %s instrumented with %+v, want a uprobe and a uretprobe", libc, in)
	}
	ids := closerLinks(t, in.closers)

	for n, p := range procs {
		for i := range 3 {
			if got := p.line(t, fmt.Sprint(n, i)); got != fmt.Sprint(n, i) {
				t.Errorf("%s echoed %q", n, got)
			}
		}
		p.finish(t)
	}
	for n, p := range procs {
		calls := tr.count(t, testdata.GofuncMapLibCalls, int(p.pid()))
		rets := tr.count(t, testdata.GofuncMapLibReturns, int(p.pid()))
		t.Logf("%s: %d reads entered, %d returned", n, calls, rets)
		// Each read counted at entry returned before the process exited;
		// the read pending at attach time is in neither count.
		if n == "other" && (calls != 0 || rets != 0) || n != "other" && (calls < 3 || calls != rets) {
			t.Errorf("%s: %d reads entered, %d returned", n, calls, rets)
		}
	}

	for i, n := range []string{"cat1", "bash", "cat2"} {
		if err := pt.Release(procs[n].pid()); err != nil {
			t.Fatal(err)
		}
		if got := tr.LibRefs(key); got != 2-i {
			t.Errorf("after releasing %s: %d references, want %d", n, got, 2-i)
		}
		checkLinks(t, ids, i < 2, "after releasing "+n)
	}
	if tr.AlreadyInstrumentedLib(key) || len(pt.Instrumentables) != 0 {
		t.Errorf("still instrumented: lib %v, executables %v", tr.AlreadyInstrumentedLib(key), pt.Instrumentables)
	}
	p := startProc(t, "cat")
	p.line(t, "ready")
	tr.AllowPID(uint32(p.pid()), 0, nil)
	p.line(t, "x")
	p.finish(t)
	if got := tr.count(t, testdata.GofuncMapLibCalls, int(p.pid())); got != 0 {
		t.Errorf("%d reads counted after the last release", got)
	}
}

// TestProcessTracerNoModule: a process that maps none of the modules the
// programs' UProbes name (a static Go program for a libc probe; cat for a
// library it does not load) is not instrumented, with ErrNoModule naming
// it, and not allowed. Before, Instrument returned nil for both, and the
// recorder said "instrumented: dns: pid N" with nothing probed.
func TestProcessTracerNoModule(t *testing.T) {
	tr := newGofuncTracer(t)
	static := startProc(t, testdata.GoTarget(t, "testdata", runtime.GOARCH, false), "calls", "1")
	cat := startProc(t, "cat")
	if got := cat.line(t, "ready"); got != "ready" { // its libraries are mapped
		t.Fatalf("cat echoed %q", got)
	}
	for _, c := range []struct {
		name    string
		p       *proc
		modules map[string]map[string][]*ProbeDesc
	}{
		{"static Go program, libc", static, map[string]map[string][]*ProbeDesc{
			"libc.so": {"read": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgLibEntry]}}}}},
		{"cat, a library it does not map", cat, map[string]map[string][]*ProbeDesc{
			"libnosuch.so": {"f": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgLibEntry]}}}}},
	} {
		tr.uprobes = c.modules
		pt := NewProcessTracer(Generic, nil, tr)
		ie := &Instrumentable{FileInfo: &FileInfo{PID: c.p.pid()}}
		err := pt.Instrument(ie)
		if !errors.Is(err, ErrNoModule) || !strings.Contains(err.Error(), strconv.Itoa(int(c.p.pid()))) {
			t.Errorf("%s: %v, want %v naming the process", c.name, err, ErrNoModule)
		}
		if tr.allowed(int(c.p.pid())) {
			t.Errorf("%s: allowed", c.name)
		}
		if len(pt.Instrumentables) != 0 || len(pt.procs) != 0 {
			t.Errorf("%s: left behind: %v, %v", c.name, pt.Instrumentables, pt.procs)
		}
		pt.Close()
	}
	io.WriteString(static.stdin, "x")
	static.finish(t)
	cat.finish(t)
}

// TestLoading: a process whose loader is mapped and its C library not yet
// is still being loaded; a static one, or one with its C library, is not.
func TestLoading(t *testing.T) {
	for maps, want := range map[string]bool{
		"/usr/bin/cat /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2":                                     true,
		"/usr/bin/cat /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /usr/lib/x86_64-linux-gnu/libc.so.6": false,
		"/lib/ld-musl-x86_64.so.1 /usr/bin/sh":                                                            false,
		"/tmp/server":                                                                                     false,
		"/usr/bin/script /lib64/ld-linux-x86-64.so.2 /lib/libc-2.31.so":                                   false,
	} {
		if got := loading(strings.Fields(maps)); got != want {
			t.Errorf("loading(%s) = %v, want %v", maps, got, want)
		}
	}
}

// TestProcessTracerConcurrent instruments four processes of one file at
// once: the file must still be probed once, with four references, and
// Release of a process also blocks its children (Instrumentable.ChildPids).
func TestProcessTracerConcurrent(t *testing.T) {
	tr := newGofuncTracer(t)
	tr.goProbes = map[string][]*ProbeDesc{
		"main.work": {{Required: true, Start: tr.coll.Programs[testdata.GofuncProgGoEntry], End: tr.coll.Programs[testdata.GofuncProgGoReturn]}},
	}
	pt := NewProcessTracer(Go, nil, tr)
	defer pt.Close()
	bin := testdata.GoTarget(t, "testdata", runtime.GOARCH, false)
	var procs []*proc
	for range 4 {
		procs = append(procs, startProc(t, bin, "calls", "1"))
	}
	errs := make(chan error, len(procs))
	ies := make([]*Instrumentable, len(procs))
	for i, p := range procs {
		// The first one claims a made-up child.
		ies[i] = &Instrumentable{FileInfo: &FileInfo{PID: p.pid()}}
		if i == 0 {
			ies[i].ChildPids = []uint32{4000000}
		}
		go func() { errs <- pt.Instrument(ies[i]) }()
	}
	for range procs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(pt.Instrumentables) != 1 {
		for _, ie := range ies {
			t.Logf("process %d: %s (device %d, inode %d)", ie.FileInfo.PID, ie.FileInfo.CmdExePath, ie.FileInfo.Dev, ie.FileInfo.Ino)
		}
		t.Fatalf("%d files instrumented, want 1", len(pt.Instrumentables))
	}
	for _, in := range pt.Instrumentables {
		if in.refs != 4 || len(in.closers) != 3 {
			t.Errorf("file instrumented with %d closers and %d references, want 3 and 4", len(in.closers), in.refs)
		}
	}
	if !tr.allowed(4000000) {
		t.Error("child PID not allowed")
	}
	if err := pt.Release(procs[0].pid()); err != nil {
		t.Fatal(err)
	}
	if tr.allowed(4000000) || tr.allowed(int(procs[0].pid())) {
		t.Error("Release left the process or its child allowed")
	}
	for _, p := range procs {
		io.WriteString(p.stdin, "x")
		p.finish(t)
	}
}

// TestFindModule: a module matches its file and its versions, not a file
// that merely starts with its name (a test binary "bash.test" is not
// "bash": the 6.12 VM instrumented one, before its child had exec'd bash).
func TestFindModule(t *testing.T) {
	maps := []string{"/src/bpf/tracers/bash/bash.test", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/libreadline.so.8.2", "/usr/bin/bash"}
	for module, want := range map[string]string{
		"bash":           "/usr/bin/bash",
		"libc.so":        "/usr/lib/x86_64-linux-gnu/libc.so.6",
		"libc.so.6":      "/usr/lib/x86_64-linux-gnu/libc.so.6",
		"libreadline.so": "/usr/lib/libreadline.so.8.2",
		"libc":           "",
	} {
		got, ok := findModule(maps, module)
		if got != want || ok != (want != "") {
			t.Errorf("findModule(%q) = %q, %v; want %q", module, got, ok, want)
		}
	}
	if got, ok := findModule(maps[:1], "bash"); ok {
		t.Errorf("bash found as %q", got)
	}
}

// TestLoaderLibraries: the libraries the loader lists for an executable
// before it runs are the files a process of it maps (compared by device
// and inode), the interpreter among them; a static executable has none,
// and a file that is not ELF is an error that names it.
func TestLoaderLibraries(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	libs, err := loaderLibraries(sleep)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sleep, "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ids := func(paths []string) map[[2]uint64]string {
		m := map[[2]uint64]string{}
		for _, p := range paths {
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			m[[2]uint64{uint64(st.Dev), st.Ino}] = p
		}
		return m
	}
	// Right after its exec only the loader is mapped: wait for the rest.
	var mapped []string
	for i := 0; ; i++ {
		maps, err := mappedFiles(int32(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		mapped = nil
		for _, m := range maps {
			// Libraries only: not sleep itself, the locale files, gconv's
			// cache, or ld.so.cache, which the loader maps while it loads.
			if !sameFile(t, m, sleep) && isELF(t, m) {
				mapped = append(mapped, m)
			}
		}
		if len(mapped) >= len(libs) || i == 1000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want, got := ids(mapped), ids(libs)
	if len(got) < 2 || len(got) != len(want) {
		t.Fatalf("loader lists %q; sleep maps %q", libs, mapped)
	}
	for id, p := range want {
		if _, ok := got[id]; !ok {
			t.Errorf("sleep maps %s, which the loader's list %q lacks", p, libs)
		}
	}
	static := testdata.GoTarget(t, "testdata", runtime.GOARCH, false)
	if libs, err := loaderLibraries(static); err != nil || len(libs) != 0 {
		t.Errorf("static executable: %q, %v", libs, err)
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loaderLibraries(notELF); err == nil || !strings.Contains(err.Error(), notELF) {
		t.Errorf("not ELF: %v", err)
	}
}

// TestLoaderLibrariesUntrustedInterpreter: an executable whose program
// interpreter is a file anyone could have written (here a script in a
// directory under /tmp, which others may write) does not get that
// interpreter run by the recorder: loaderLibraries refuses it, naming
// why, and the script never runs. Before, the recorder (root) ran it.
func TestLoaderLibrariesUntrustedInterpreter(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", "i") // short: the new path must fit the old one's place
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // writable by anyone
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	evil := filepath.Join(dir, "ld")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\necho x > "+marker+"\necho '\t/x.so (0x1)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The copy's PT_INTERP now names the script.
	ef, err := elf.Open(sleep)
	if err != nil {
		t.Fatal(err)
	}
	var off, size uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			off, size = p.Off, p.Filesz
		}
	}
	ef.Close()
	if size == 0 || uint64(len(evil)) >= size {
		t.Fatalf("sleep's interpreter field (%d bytes) cannot hold %s", size, evil)
	}
	copy(b[off:off+size], append([]byte(evil), make([]byte, size-uint64(len(evil)))...))
	exe := filepath.Join(dir, "sleep")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	libs, err := loaderLibraries(exe)
	if !errors.Is(err, ErrUntrustedProgram) || !strings.Contains(err.Error(), dir) {
		t.Errorf("loaderLibraries = %v, %v; want an error wrapping ErrUntrustedProgram naming %s", libs, err, dir)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the executable's interpreter was run")
	}
}

// mappedFiles lists the files mapped by process pid, by the paths
// /proc/PID/maps shows.
func mappedFiles(pid int32) ([]string, error) {
	out, _, err := mappedFileLinks(pid)
	return out, err
}

// isELF reports whether the file at path starts as an ELF file does.
func isELF(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	return err == nil && string(magic) == "\x7fELF"
}

// sameFile reports whether paths a and b name the same file.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(sa, sb)
}
