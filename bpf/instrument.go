package bpf

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
)

// FileKey identifies a file by device and inode, as the keys of
// ProcessTracer.Instrumentables and of the *InstrumentedLib methods do.
// With dev 0 it is the inode itself (callers that know only the inode, as
// the seed's API); otherwise the inode with the device mixed into every
// bit, so that two files with the same inode number on different devices
// (a container's overlay and the host) get different keys: a collision
// needs an inode number as large as the mixed device, which no file system
// hands out.
func FileKey(dev, ino uint64) uint64 {
	if dev == 0 {
		return ino
	}
	// splitmix64's finalizer.
	z := dev + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return ino ^ (z ^ (z >> 31))
}

// Key returns the file's FileKey.
func (fi *FileInfo) Key() uint64 { return FileKey(fi.Dev, fi.Ino) }

// procRoot is where /proc is; tests keep it.
const procRoot = "/proc"

// NewFileInfo describes the executable of the running process pid from
// /proc: its path, device and inode, parent, PID namespace, and its comm
// as the service name. A process that is gone gives an error wrapping
// os.ErrNotExist.
func NewFileInfo(pid int32) (*FileInfo, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(int(pid)))
	exe := filepath.Join(dir, "exe")
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		return nil, fmt.Errorf("bpf: process %d: executable: %w", pid, err)
	}
	target, err := os.Readlink(exe)
	if err != nil {
		return nil, fmt.Errorf("bpf: process %d: %w", pid, err)
	}
	fi := &FileInfo{
		CmdExePath: target,
		ProExeLink: exe,
		PID:        pid,
		Ino:        st.Ino,
		Dev:        uint64(st.Dev),
	}
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		fi.Service.Name = strings.TrimSpace(string(comm))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		// The fields after the comm, which may hold spaces and parentheses:
		// state, ppid, ...
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 {
				if pp, err := strconv.ParseInt(f[1], 10, 32); err == nil {
					fi.PPID = int32(pp)
				}
			}
		}
	}
	var ns syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "ns", "pid"), &ns); err == nil {
		fi.NS = uint32(ns.Ino)
	}
	return fi, nil
}

// exePath is the path through which the process's executable is opened
// and probed: /proc/PID/exe reaches it whatever mount namespace it lives
// in, and the kernel resolves a uprobe's path to the inode at attach time.
func (fi *FileInfo) exePath() string {
	if fi.ProExeLink != "" {
		return fi.ProExeLink
	}
	return fi.CmdExePath
}

// InstrumentedLibs implements the *InstrumentedLib methods of Tracer for
// embedding: a count of users per library (by FileKey) and the closers of
// its instrumentation, closed when the last user is unlinked. It is safe
// for concurrent use; its zero value is ready.
type InstrumentedLibs struct {
	mu   sync.Mutex
	libs map[uint64]*instrumenter
	// OnCloseError, if set, receives the error of closing a library's
	// resources (the Tracer methods return none).
	OnCloseError func(key uint64, err error)
}

// RecordInstrumentedLib records that the library key was instrumented, by
// its first user, with closers to close once it has none.
func (l *InstrumentedLibs) RecordInstrumentedLib(key uint64, closers []io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.libs == nil {
		l.libs = make(map[uint64]*instrumenter)
	}
	in := l.libs[key]
	if in == nil {
		in = &instrumenter{}
		l.libs[key] = in
	}
	in.refs++
	in.closers = append(in.closers, closers...)
}

// AddInstrumentedLibRef counts one more user of the library key; unknown
// libraries are ignored (record them first).
func (l *InstrumentedLibs) AddInstrumentedLibRef(key uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if in := l.libs[key]; in != nil {
		in.refs++
	}
}

// AlreadyInstrumentedLib reports whether the library key is instrumented.
func (l *InstrumentedLibs) AlreadyInstrumentedLib(key uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.libs[key] != nil
}

// UnlinkInstrumentedLib counts one user of the library key less, and with
// the last one closes its closers, last recorded first.
func (l *InstrumentedLibs) UnlinkInstrumentedLib(key uint64) {
	l.mu.Lock()
	in := l.libs[key]
	if in == nil {
		l.mu.Unlock()
		return
	}
	in.refs--
	if in.refs > 0 {
		l.mu.Unlock()
		return
	}
	delete(l.libs, key)
	onErr := l.OnCloseError
	l.mu.Unlock()
	if err := closeReverse(in.closers); err != nil && onErr != nil {
		onErr(key, err)
	}
}

// LibRefs returns how many users the library key has (0 if it is not
// instrumented).
func (l *InstrumentedLibs) LibRefs(key uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if in := l.libs[key]; in != nil {
		return in.refs
	}
	return 0
}

// Close closes the resources of every library, whatever their counts.
func (l *InstrumentedLibs) Close() error {
	l.mu.Lock()
	libs := l.libs
	l.libs = nil
	l.mu.Unlock()
	var errs []error
	for _, in := range libs {
		errs = append(errs, closeReverse(in.closers))
	}
	return errors.Join(errs...)
}

// procState is what ProcessTracer remembers of an instrumented process,
// to release it.
type procState struct {
	exe  uint64   // FileKey of the executable
	libs []libRef // the library references it took
	ns   uint32
	kids []uint32 // child PIDs allowed with it
}

// libRef is a reference on library key taken through program prog.
type libRef struct {
	prog Tracer
	key  uint64
}

// Instrument instruments the process of ie.FileInfo with the tracer's
// programs, and allows its PID (and ie.ChildPids) in each of them:
//
//   - its executable, once per file (FileKey): for a Go tracer, the
//     functions named by each program's GoProbes (globs) get their Start
//     program at entry and their End program at each return instruction
//     (uprobes, never uretprobes: Go moves its stacks); the offsets, with
//     the fields of GoFields, go to every program's RegisterOffsets first,
//     and ProcessBinary follows; ie.Offsets gets them. Another process of
//     the same file only adds a reference (and gets the same Offsets).
//   - the libraries it maps that a program's UProbes names (by file name,
//     "libc.so.6", or its prefix before a version, "libc.so"): Start as a
//     uprobe, End as a uretprobe, once per library and program, shared by
//     every process through the program's *InstrumentedLib methods.
//     They are opened through /proc/PID/map_files, whatever the process's
//     mount namespace or root. When ie.FileInfo names by path an
//     executable that its process does not run yet (record's Command,
//     still the gate's shell), they are those its program interpreter
//     lists for it instead.
//
// Errors are kept in ie.InstrumentationError and returned; whatever was
// attached for the failing step is detached, and the process is not
// allowed. A probe that is not Required is skipped, with a log line, when
// its function is missing. Release undoes Instrument.
func (pt *ProcessTracer) Instrument(ie *Instrumentable) error {
	if ie == nil {
		return fmt.Errorf("bpf: Instrument: nil Instrumentable: %w", ErrInvalidName)
	}
	// One at a time: two processes of a new file must not both find it
	// uninstrumented and probe it twice.
	pt.instMu.Lock()
	defer pt.instMu.Unlock()
	var err error
	if pt.closed {
		err = fmt.Errorf("bpf: Instrument: %w", ErrTracerClosed)
	} else {
		err = pt.instrument(ie)
	}
	ie.InstrumentationError = err
	ie.Tracer = pt
	return err
}

// InstrumentFile instruments the executable fi describes by path
// (CmdExePath, with its Dev and Ino from stat) before any process of it
// runs, as Instrument does a process's executable, with the libraries its
// program interpreter lists for it, and holds a reference to them until
// Close: the probes are on the files, so processes that exec it later run
// into them from their first instruction (the filter chooses whose
// events are kept). Nothing is allowed. Another call for the same file
// adds references.
func (pt *ProcessTracer) InstrumentFile(fi *FileInfo) error {
	if fi == nil || fi.CmdExePath == "" || fi.Ino == 0 {
		return fmt.Errorf("bpf: InstrumentFile: a path, device and inode are needed: %w", ErrInvalidName)
	}
	pt.instMu.Lock()
	defer pt.instMu.Unlock()
	if pt.closed {
		return fmt.Errorf("bpf: InstrumentFile %s: %w", fi.CmdExePath, ErrTracerClosed)
	}
	key := fi.Key()
	if pt.IsInstrumented(key) {
		pt.AddInstrumented(key)
	} else {
		closers, offs, err := pt.instrumentExe(fi)
		if err != nil {
			return err
		}
		pt.AddInstrumented(key, closers...)
		pt.mu.Lock()
		pt.Instrumentables[key].offsets = offs
		pt.mu.Unlock()
	}
	// The library references are held until Close.
	st := &procState{exe: key}
	if err := pt.instrumentLibs(fi, st, true); err != nil {
		pt.releaseState(0, st)
		return err
	}
	pt.mu.Lock()
	pt.held = append(pt.held, st.libs...)
	pt.mu.Unlock()
	return nil
}

func (pt *ProcessTracer) instrument(ie *Instrumentable) error {
	fi := ie.FileInfo
	if fi == nil {
		return fmt.Errorf("bpf: Instrument: no FileInfo: %w", ErrInvalidName)
	}
	if fi.Ino == 0 {
		nfi, err := NewFileInfo(fi.PID)
		if err != nil {
			return err
		}
		// The caller's service attributes stand; the comm names an
		// unnamed one.
		if fi.Service.Name != "" || fi.Service.Namespace != "" || fi.Service.Metadata != nil {
			nfi.Service = fi.Service
		}
		*fi = *nfi
	}
	key := fi.Key()

	pt.mu.Lock()
	if pt.procs == nil {
		pt.procs = make(map[int32]*procState)
	}
	if _, ok := pt.procs[fi.PID]; ok {
		pt.mu.Unlock()
		return nil // instrumented already
	}
	in, haveExe := pt.Instrumentables[key]
	pt.mu.Unlock()

	if pt.Type == Go {
		ie.Type = InstrumentableGolang
	}
	if !haveExe {
		closers, offs, err := pt.instrumentExe(fi)
		if err != nil {
			return err
		}
		ie.Offsets = offs
		pt.AddInstrumented(key, closers...)
		pt.mu.Lock()
		pt.Instrumentables[key].offsets = offs
		pt.mu.Unlock()
	} else {
		// Instrument and Release run one at a time: in is still there.
		ie.Offsets = in.offsets
		pt.AddInstrumented(key)
	}
	st := &procState{exe: key, ns: fi.NS, kids: append([]uint32(nil), ie.ChildPids...)}
	if err := pt.instrumentLibs(fi, st, fi.notRunYet()); err != nil {
		pt.releaseState(fi.PID, st)
		return err
	}
	pt.mu.Lock()
	pt.procs[fi.PID] = st
	pt.mu.Unlock()
	attrs := &fi.Service
	pt.AllowPID(uint32(fi.PID), fi.NS, attrs)
	for _, c := range ie.ChildPids {
		pt.AllowPID(c, fi.NS, attrs)
	}
	return nil
}

// instrumentExe attaches the programs' Go probes to the executable of fi.
func (pt *ProcessTracer) instrumentExe(fi *FileInfo) ([]io.Closer, *GoOffsets, error) {
	if pt.Type != Go {
		for _, p := range pt.Programs {
			p.ProcessBinary(fi)
		}
		return nil, nil, nil
	}
	path := fi.exePath()
	// The functions are matched below, per probe, so that a probe that is
	// not Required may miss; InspectGo checks the file is Go and reads the
	// fields.
	offs, err := InspectGo(path, nil, pt.GoFields)
	if err != nil {
		return nil, nil, err
	}
	ef, err := exeinfo.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer ef.Close()
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, nil, fmt.Errorf("bpf: %s: %w", path, err)
	}
	var closers []io.Closer
	fail := func(err error) ([]io.Closer, *GoOffsets, error) {
		closeReverse(closers)
		return nil, nil, err
	}
	type attachment struct {
		name string
		pd   *ProbeDesc
	}
	var todo []attachment
	for _, p := range pt.Programs {
		for pat, pds := range p.GoProbes() {
			syms, err := ef.Match(pat)
			if err != nil {
				if anyRequired(pds) {
					return fail(err)
				}
				pt.logger().Info("Go function not instrumented", "file", path, "pattern", pat, "error", err)
				continue
			}
			for _, s := range syms {
				if _, ok := offs.Funcs[s.Name]; !ok {
					fo, err := ef.ReturnOffsets(s)
					if err != nil {
						if anyRequired(pds) {
							return fail(err)
						}
						pt.logger().Info("Go function not instrumented", "file", path, "function", s.Name, "error", err)
						continue
					}
					offs.Funcs[s.Name] = FuncOffsets{Start: fo.Start, Returns: fo.Returns}
				}
				for _, pd := range pds {
					todo = append(todo, attachment{s.Name, pd})
				}
			}
		}
	}
	for _, p := range pt.Programs {
		if r, ok := p.(OffsetsRegisterer); ok {
			if err := r.RegisterOffsetsErr(fi, offs); err != nil {
				return fail(err)
			}
			continue
		}
		p.RegisterOffsets(fi, offs)
	}
	for _, a := range todo {
		fo := offs.Funcs[a.name]
		if a.pd.Start != nil {
			l, err := ex.Uprobe(a.name, a.pd.Start, &link.UprobeOptions{Address: fo.Start})
			if err != nil {
				return fail(fmt.Errorf("bpf: %s: %s: entry uprobe: %w", path, a.name, err))
			}
			closers = append(closers, l)
		}
		if a.pd.End != nil {
			if len(fo.Returns) == 0 {
				return fail(fmt.Errorf("bpf: %s: %s: no return instruction to probe", path, a.name))
			}
			for _, r := range fo.Returns {
				l, err := ex.Uprobe(a.name, a.pd.End, &link.UprobeOptions{Address: r})
				if err != nil {
					return fail(fmt.Errorf("bpf: %s: %s: return uprobe at %#x: %w", path, a.name, r, err))
				}
				closers = append(closers, l)
			}
		}
	}
	for _, p := range pt.Programs {
		p.ProcessBinary(fi)
	}
	return closers, offs, nil
}

// OffsetsRegisterer is a Tracer that can refuse an executable's offsets
// (e.g. a layout it cannot probe): Instrument calls RegisterOffsetsErr
// instead of RegisterOffsets, and its error fails the executable.
type OffsetsRegisterer interface {
	RegisterOffsetsErr(fi *FileInfo, offsets *GoOffsets) error
}

func anyRequired(pds []*ProbeDesc) bool {
	for _, pd := range pds {
		if pd.Required {
			return true
		}
	}
	return false
}

// instrumentLibs instruments, or takes a reference on, each library of the
// process that a program's UProbes names, and records the references in st.
// byPath says that fi's process does not run the executable yet (or that
// there is none): the libraries are those its loader lists.
func (pt *ProcessTracer) instrumentLibs(fi *FileInfo, st *procState, byPath bool) error {
	want := false
	for _, p := range pt.Programs {
		if len(p.UProbes()) > 0 {
			want = true
		}
	}
	if !want {
		return nil
	}
	var maps []string
	var links map[string]string
	who := fmt.Sprintf("process %d", fi.PID)
	if byPath {
		who = fi.CmdExePath
		// An executable given by path before it runs (record's Command:
		// the process is still the gate's shell, whose own libraries may
		// not even be mapped yet): its libraries as its program
		// interpreter resolves them, and the executable itself (a module
		// may be it: bash's readline), opened by their paths.
		exe := fi.CmdExePath
		if interp, ok := scriptInterpreter(exe); ok {
			// A script runs its #! interpreter: that program's libraries
			// are the ones its processes map (and bash's readline is in
			// bash).
			exe = interp
		}
		libs, err := loaderLibraries(exe)
		if err != nil {
			return err
		}
		maps = append([]string{exe}, libs...)
		links = make(map[string]string, len(maps))
		for _, m := range maps {
			links[m] = m
		}
	} else {
		var err error
		if maps, links, err = mappedFileLinks(fi.PID); err != nil {
			return err
		}
		// The executable is mapped; a module may be it (bash's readline).
		if fi.CmdExePath != "" && filepath.IsAbs(fi.CmdExePath) && !slices.Contains(maps, fi.CmdExePath) {
			maps = append(maps, fi.CmdExePath)
		}
	}
	var modules []string
	for _, p := range pt.Programs {
		for module, probes := range p.UProbes() {
			lib, ok := findModule(maps, module)
			if !ok {
				modules = append(modules, module)
				continue
			}
			path := libOpenPath(fi.PID, lib, links)
			var s syscall.Stat_t
			if err := syscall.Stat(path, &s); err != nil {
				return fmt.Errorf("bpf: %s: library %s: %w", who, lib, err)
			}
			key := FileKey(uint64(s.Dev), s.Ino)
			if err := pt.takeLib(p, key, path, probes); err != nil {
				return err
			}
			st.libs = append(st.libs, libRef{p, key})
		}
	}
	if len(st.libs) == 0 && !loading(maps) {
		// Nothing would be probed: say so rather than call the process
		// instrumented (a static Go program for dns, a command that
		// only starts bash for bash).
		slices.Sort(modules)
		return fmt.Errorf("bpf: %s: %w: it maps none of %s", who, ErrNoModule, strings.Join(modules, ", "))
	}
	return nil
}

// takeLib takes a reference on library key (at path) for program p,
// attaching p's probes to it if it is the first.
func (pt *ProcessTracer) takeLib(p Tracer, key uint64, path string, probes map[string][]*ProbeDesc) error {
	if p.AlreadyInstrumentedLib(key) {
		p.AddInstrumentedLibRef(key)
		return nil
	}
	closers, err := pt.attachLib(path, probes)
	if err != nil {
		return err
	}
	p.RecordInstrumentedLib(key, closers)
	return nil
}

// InstrumentLibraries attaches the programs' library probes (UProbes) to
// every matching library file that a running process maps, or that the
// program interpreter of one of exes lists for it (as for an executable
// not yet run: its loader's --list; an executable it cannot list, such as
// a script, is skipped with a log line), and holds a reference on each until
// Close: processes chosen later, at their exec (by comm), run into the
// probes from their first call, which a library instrumented when their
// exec is seen would miss (right after an exec only the dynamic loader is
// mapped, and a short-lived process may be gone before it is looked at).
// The filter chooses whose events are kept. It returns the libraries
// instrumented, and the first error of a file that could not be (the
// others are still instrumented).
func (pt *ProcessTracer) InstrumentLibraries(exes []string) ([]string, error) {
	want := false
	for _, p := range pt.Programs {
		want = want || len(p.UProbes()) > 0
	}
	if !want {
		return nil, nil
	}
	pt.instMu.Lock()
	defer pt.instMu.Unlock()
	if pt.closed {
		return nil, fmt.Errorf("bpf: InstrumentLibraries: %w", ErrTracerClosed)
	}
	type progLib struct {
		p   Tracer
		key uint64
	}
	done := make(map[progLib]bool)
	var libs []string
	var firstErr error
	// take instruments the matching files of maps, opened through links.
	take := func(who string, pid int32, maps []string, links map[string]string) {
		for _, p := range pt.Programs {
			for module, probes := range p.UProbes() {
				lib, ok := findModule(maps, module)
				if !ok {
					continue
				}
				path := libOpenPath(pid, lib, links)
				var s syscall.Stat_t
				if syscall.Stat(path, &s) != nil {
					continue // its process is gone
				}
				k := progLib{p, FileKey(uint64(s.Dev), s.Ino)}
				if done[k] {
					continue
				}
				done[k] = true
				if err := pt.takeLib(p, k.key, path, probes); err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("bpf: library %s (of %s): %w", lib, who, err)
					}
					continue
				}
				pt.mu.Lock()
				pt.held = append(pt.held, libRef{p, k.key})
				pt.mu.Unlock()
				libs = append(libs, lib)
			}
		}
	}
	for _, exe := range exes {
		paths, err := loaderLibraries(exe)
		if err != nil {
			// A hint that did not help (a script, a file that is not
			// ELF): the mapped files still count.
			pt.logger().Info("libraries of an executable not listed", "error", err)
			continue
		}
		links := make(map[string]string, len(paths))
		for _, l := range paths {
			links[l] = l
		}
		take(exe, 0, paths, links)
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return libs, fmt.Errorf("bpf: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.ParseInt(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		maps, links, err := mappedFileLinks(int32(pid))
		if err != nil || len(maps) == 0 {
			continue // gone, or a kernel thread
		}
		take(fmt.Sprintf("process %d", pid), int32(pid), maps, links)
	}
	return libs, firstErr
}

// ErrNoModule is wrapped by Instrument's error for a process that maps
// none of the libraries or executables its programs' UProbes are in.
var ErrNoModule = errors.New("nothing to probe")

// loading says whether the dynamic loader may still be mapping the
// process's libraries: glibc's loader is mapped and the C library not yet
// (a process seen right after its exec; musl's loader is its C library).
// Such a process is instrumented with what it maps; a library
// instrumented through another process (or at the start, for --comm)
// serves it too.
func loading(maps []string) bool {
	ld, libc := false, false
	for _, m := range maps {
		base := filepath.Base(m)
		switch {
		case strings.HasPrefix(base, "ld-linux") || base == "ld.so" || strings.HasPrefix(base, "ld64.so"):
			ld = true
		case base == "libc.so" || isVersionOf(base, "libc.so") || strings.HasPrefix(base, "libc-"):
			libc = true
		}
	}
	return ld && !libc
}

// attachLib attaches a library's probes: Start at the function's entry,
// End at its return (a uretprobe: C code does not move its stacks).
func (pt *ProcessTracer) attachLib(path string, probes map[string][]*ProbeDesc) ([]io.Closer, error) {
	ef, err := exeinfo.Open(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("bpf: %s: %w", path, err)
	}
	var closers []io.Closer
	for fn, pds := range probes {
		sym, err := ef.Symbol(fn)
		if err != nil {
			if anyRequired(pds) {
				closeReverse(closers)
				return nil, err
			}
			pt.logger().Info("library function not instrumented", "file", path, "function", fn, "error", err)
			continue
		}
		for _, pd := range pds {
			opts := &link.UprobeOptions{Address: sym.Offset}
			if pd.Start != nil {
				l, err := ex.Uprobe(fn, pd.Start, opts)
				if err != nil {
					closeReverse(closers)
					return nil, fmt.Errorf("bpf: %s: %s: uprobe: %w", path, fn, err)
				}
				closers = append(closers, l)
			}
			if pd.End != nil {
				l, err := ex.Uretprobe(fn, pd.End, opts)
				if err != nil {
					closeReverse(closers)
					return nil, fmt.Errorf("bpf: %s: %s: uretprobe: %w", path, fn, err)
				}
				closers = append(closers, l)
			}
		}
	}
	return closers, nil
}

// notRunYet reports whether fi names, by path, device and inode, an
// executable that its process does not run (yet): the process's
// /proc/PID/exe is another file.
func (fi *FileInfo) notRunYet() bool {
	if fi.CmdExePath == "" || !filepath.IsAbs(fi.CmdExePath) || fi.Ino == 0 {
		return false
	}
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(procRoot, strconv.Itoa(int(fi.PID)), "exe"), &st) != nil {
		return false // gone: reading its maps says so
	}
	return st.Ino != fi.Ino || uint64(st.Dev) != fi.Dev
}

// scriptInterpreter returns the program a script at path names on its
// #! line, and whether it is one (an absolute path, as the kernel needs).
func scriptInterpreter(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	var head [256]byte // the kernel reads at most this much of the line
	n, _ := io.ReadFull(f, head[:])
	line, _, _ := strings.Cut(string(head[:n]), "\n")
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return "", false
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || !filepath.IsAbs(fields[0]) {
		return "", false
	}
	return fields[0], true
}

// ErrUntrustedProgram is wrapped by the error for a program the recorder
// will not run: a file, or a directory above it, that someone other than
// root (or the recorder's own user) owns or may write.
var ErrUntrustedProgram = errors.New("not a trusted program")

// trustedProgram says why the program at path may not be run by the
// recorder, which runs with privileges: it (its symbolic links resolved)
// and every directory above it must be owned by root or the recorder's
// user and writable by no one else, so that no other user can have put
// or changed it (a program interpreter named by an executable that
// anyone could write, as in /tmp, is refused).
func trustedProgram(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(real) {
		return fmt.Errorf("%s: %w: not an absolute path", path, ErrUntrustedProgram)
	}
	me := uint32(os.Geteuid())
	for p := real; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		if st.Uid != 0 && st.Uid != me {
			return fmt.Errorf("%s: %w: %s is owned by uid %d", path, ErrUntrustedProgram, p, st.Uid)
		}
		if st.Mode&0o022 != 0 {
			return fmt.Errorf("%s: %w: %s is writable by its group or others", path, ErrUntrustedProgram, p)
		}
		if p == "/" {
			return nil
		}
	}
}

// loaderLibraries returns the paths of the shared libraries that the
// dynamically linked executable at path loads, its program interpreter
// among them, as that interpreter resolves them in this environment (its
// --list mode, which ldd uses: glibc's and musl's loaders have it); none
// for a static executable. The file is untrusted and the recorder
// privileged: the interpreter it names is run only if it is a trusted
// file (trustedProgram), with an empty environment (no LD_PRELOAD,
// LD_LIBRARY_PATH or LD_AUDIT of the recorder's), and in --list mode the
// loader maps the libraries without running their code.
func loaderLibraries(path string) ([]string, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bpf: %s: %w", path, err)
	}
	var interp string
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				ef.Close()
				return nil, fmt.Errorf("bpf: %s: program interpreter: %w", path, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	ef.Close()
	if interp == "" {
		return nil, nil
	}
	if err := trustedProgram(interp); err != nil {
		return nil, fmt.Errorf("bpf: %s: its program interpreter not run: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, interp, "--list", path)
	cmd.Env = []string{}
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bpf: %s: its libraries (%s --list): %w: %s", path, interp, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		// "name => /path (0x...)", "/path (0x...)" (the interpreter),
		// "name (0x...)" (the vDSO), "name => not found".
		line = strings.TrimSpace(line)
		if _, p, ok := strings.Cut(line, " => "); ok {
			line = p
		}
		if i := strings.LastIndex(line, " (0x"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(line, "/") && !slices.Contains(libs, line) {
			libs = append(libs, line)
		}
	}
	return libs, nil
}

// mappedFileLinks lists the files mapped by process pid (/proc/PID/maps),
// by the paths maps shows, with, for each file, the link to it in
// /proc/PID/map_files (named by its first mapping's address range).
func mappedFileLinks(pid int32) ([]string, map[string]string, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(int(pid)))
	f, err := os.Open(filepath.Join(dir, "maps"))
	if err != nil {
		return nil, nil, fmt.Errorf("bpf: process %d: %w", pid, err)
	}
	defer f.Close()
	links := make(map[string]string)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || !strings.HasPrefix(fs[5], "/") || fs[4] == "0" {
			continue
		}
		p := strings.Join(fs[5:], " ")
		if _, ok := links[p]; ok || strings.HasSuffix(p, " (deleted)") {
			continue
		}
		links[p] = filepath.Join(dir, "map_files", fs[0])
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("bpf: process %d: maps: %w", pid, err)
	}
	return out, links, nil
}

// libOpenPath returns the path through which the recorder opens and
// probes lib, a file that process pid maps (or its executable before it
// runs): its link in /proc/PID/map_files, which is the mapped file
// whatever the process's mount namespace and root (maps shows paths
// relative to the reader's root: a chrooted process's files have paths
// that neither the recorder nor /proc/PID/root resolves), else lib under
// /proc/PID/root (map_files needs CAP_SYS_ADMIN).
func libOpenPath(pid int32, lib string, links map[string]string) string {
	if l, ok := links[lib]; ok {
		var st syscall.Stat_t
		if syscall.Stat(l, &st) == nil {
			return l
		}
	}
	return filepath.Join(procRoot, strconv.Itoa(int(pid)), "root", lib)
}

// findModule returns the mapped file that module names: its base name, or
// the base name up to a numeric version suffix ("libc.so" for
// "libc.so.6", "libreadline.so" for "libreadline.so.8.2"; "bash" is not
// "bash.test").
func findModule(maps []string, module string) (string, bool) {
	if strings.Contains(module, "/") {
		for _, m := range maps {
			if m == module {
				return m, true
			}
		}
		return "", false
	}
	for _, m := range maps {
		base := filepath.Base(m)
		if base == module || isVersionOf(base, module) {
			return m, true
		}
	}
	return "", false
}

// isVersionOf says whether base is module followed by a version: dots and
// digits only, starting with a dot.
func isVersionOf(base, module string) bool {
	v, ok := strings.CutPrefix(base, module+".")
	if !ok || v == "" {
		return false
	}
	return strings.Trim(v, "0123456789.") == ""
}

// Release undoes Instrument for process pid (which exited, or is no longer
// of interest): the allowance Instrument gave it and the ChildPids it was
// instrumented with is withdrawn in every program (ForgetPID: nothing is
// blocked, as the pid may be reused, and an allowance the kernel gave, as
// to a followed process, stays), and its references to its executable and
// libraries are dropped; the last process of a file or library detaches
// its probes. Unknown PIDs are ignored.
func (pt *ProcessTracer) Release(pid int32) error {
	pt.instMu.Lock()
	defer pt.instMu.Unlock()
	pt.mu.Lock()
	st := pt.procs[pid]
	delete(pt.procs, pid)
	pt.mu.Unlock()
	if st == nil {
		return nil
	}
	pt.ForgetPID(uint32(pid), st.ns)
	for _, c := range st.kids {
		pt.ForgetPID(c, st.ns)
	}
	return pt.releaseState(pid, st)
}

// ReleaseAll releases every process instrumented (Release for each): the
// libraries they referenced are detached with their last user. Close
// calls it.
func (pt *ProcessTracer) ReleaseAll() error {
	pt.mu.Lock()
	pids := make([]int32, 0, len(pt.procs))
	for pid := range pt.procs {
		pids = append(pids, pid)
	}
	pt.mu.Unlock()
	var errs []error
	for _, pid := range pids {
		if err := pt.Release(pid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (pt *ProcessTracer) releaseState(pid int32, st *procState) error {
	for _, r := range st.libs {
		r.prog.UnlinkInstrumentedLib(r.key)
	}
	if err := pt.UnlinkInstrumented(st.exe); err != nil {
		return fmt.Errorf("bpf: releasing process %d: %w", pid, err)
	}
	return nil
}
