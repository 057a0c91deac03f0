package record

// Processes instrumented by user-space tracers (tracers.ProcessInstrumenter:
// gofunc): they are attached to chosen processes through a
// bpf.ProcessTracer, not to the kernel's tracepoints.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
)

// ErrNoTargets: a user-space tracer was asked for without processes to
// instrument (Options.Exec, PIDs, Comms or Command).
var ErrNoTargets = errors.New("no processes to instrument")

// InstrumentResult is what instrumenting one process (or, for the
// Command, its executable before it runs) for a user-space tracer gave.
type InstrumentResult struct {
	// Tracer names the user-space tracer.
	Tracer string
	// PID is the process; Exe its executable. PID is 0 for an executable
	// of Options.Exec instrumented by path at the start, for the
	// processes that run it then or later.
	PID int32
	Exe string
	// Err is why the process could not be instrumented (nil if it was):
	// a stripped or non-ELF executable, a missing function, a process
	// that vanished. The recording goes on without it.
	Err error
}

// funcSetter is a tracer whose functions are chosen by glob (gofunc).
type funcSetter interface{ SetFuncs([]string) }

// userTracer is a loaded user-space tracer and the ProcessTracer that
// instruments processes for it.
type userTracer struct {
	t  tracers.ProcessInstrumenter
	pt *bpf.ProcessTracer
}

// checkUserTracer configures a user-space tracer from the options, or says
// what it lacks.
func (o *Options) checkUserTracer(t tracers.Builtin) error {
	pi, ok := t.(tracers.ProcessInstrumenter)
	if !ok {
		return nil
	}
	if fs, ok := pi.(funcSetter); ok {
		if len(o.Funcs) == 0 {
			return fmt.Errorf("record: tracer %s traces the functions chosen by Funcs (--func GLOB): none given", t.Name())
		}
		fs.SetFuncs(o.Funcs)
	}
	if len(o.Exec) == 0 && len(o.PIDs) == 0 && len(o.Comms) == 0 && len(o.Command) == 0 {
		return fmt.Errorf("record: tracer %s: %w: choose them with Exec (--exec PATH), PIDs, Comms or the Command", t.Name(), ErrNoTargets)
	}
	return nil
}

// instrumentExecFiles instruments, for every user-space tracer, the
// executables of Exec by path before any process is looked at: the probes
// are on each file from then on, so a process that execs it later (which
// the kernel's filter selects from its exec) is traced from its first
// instruction, and watchExecs only adds it to the instrumented processes.
func (s *session) instrumentExecFiles() {
	for _, p := range s.opts.Exec {
		var st syscall.Stat_t
		err := syscall.Stat(p, &st)
		if err == nil {
			s.execFiles = append(s.execFiles, fileID{uint64(st.Dev), st.Ino})
		}
		for _, u := range s.users {
			res := InstrumentResult{Tracer: u.t.Name(), Exe: p, Err: err}
			if err == nil {
				res.Err = u.pt.InstrumentFile(&bpf.FileInfo{CmdExePath: p, Ino: st.Ino, Dev: uint64(st.Dev)})
			}
			s.report(res)
		}
	}
}

// instrumentLibrariesForComms instruments, when Comms choose processes,
// the libraries that user-space tracers probe (dns: the C library) in
// every file of them that a running process maps (or that the loader
// lists for a program on PATH named like a comm), before any later
// process is looked at: a process that execs later, selected by its comm
// in the kernel, calls them from its first instruction, long before the
// recorder sees its exec (and its own mapping of them).
func (s *session) instrumentLibrariesForComms() {
	if len(s.opts.Comms) == 0 {
		return
	}
	// A comm that is no glob is often the name of a program on PATH: the
	// libraries its loader lists count too (a host, or a VM, where no
	// running process maps them).
	var exes []string
	for _, c := range s.opts.Comms {
		if !strings.ContainsAny(c, "*?[\\") {
			if p, err := exec.LookPath(c); err == nil {
				exes = append(exes, p)
			}
		}
	}
	for _, u := range s.users {
		libs, err := u.pt.InstrumentLibraries(exes)
		if err != nil {
			s.report(InstrumentResult{Tracer: u.t.Name(), Err: err})
		}
		if len(libs) > 0 {
			s.opts.Log.Info("record: libraries instrumented for processes started later", "tracer", u.t.Name(), "libraries", libs)
		}
	}
}

// fileID is a file by device (stat's st_dev) and inode.
type fileID struct{ dev, ino uint64 }

// instrumentRunning instruments, for every user-space tracer, the running
// processes that the options choose (Exec, PIDs, Comms). A process that
// cannot be instrumented is reported in s.instrumented and left out.
func (s *session) instrumentRunning() {
	if len(s.users) == 0 {
		return
	}
	sel := bpf.ProcessSelector{ExePaths: s.opts.Exec, Comms: s.opts.Comms}
	for _, p := range s.opts.PIDs {
		sel.PIDs = append(sel.PIDs, int32(p))
	}
	if len(sel.PIDs)+len(sel.ExePaths)+len(sel.Comms) == 0 {
		return
	}
	fis, errs := bpf.FindProcesses(sel)
	for _, u := range s.users {
		for _, err := range errs {
			s.instrumented = append(s.instrumented, InstrumentResult{Tracer: u.t.Name(), Err: err})
		}
		for _, fi := range fis {
			if int(fi.PID) == s.self {
				continue
			}
			fi := *fi // each ProcessTracer keeps its own
			s.instrument(u, &fi)
		}
	}
}

// instrumentCommand instruments the Command's executable for every
// user-space tracer, before it runs: its process is still the gate's
// shell, so the executable is given by path (uprobes are attached to a
// file, and the filter selects the process).
func (s *session) instrumentCommand() {
	if len(s.users) == 0 || s.cmd == nil {
		return
	}
	path, err := exec.LookPath(s.opts.Command[0])
	for _, u := range s.users {
		if err != nil {
			s.instrumented = append(s.instrumented, InstrumentResult{Tracer: u.t.Name(), PID: int32(s.cmd.pid()), Exe: s.opts.Command[0], Err: err})
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			s.instrumented = append(s.instrumented, InstrumentResult{Tracer: u.t.Name(), PID: int32(s.cmd.pid()), Exe: path, Err: err})
			continue
		}
		fi := &bpf.FileInfo{CmdExePath: path, PID: int32(s.cmd.pid()), Ino: st.Ino, Dev: uint64(st.Dev)}
		s.instrument(u, fi)
	}
}

func (s *session) instrument(u *userTracer, fi *bpf.FileInfo) {
	ie := &bpf.Instrumentable{FileInfo: fi}
	err := u.pt.Instrument(ie)
	exe := fi.CmdExePath
	s.report(InstrumentResult{Tracer: u.t.Name(), PID: fi.PID, Exe: exe, Err: err})
}

// report adds an instrumentation result to the summary, hands it to
// Options.Instrumented and logs a failure.
func (s *session) report(res InstrumentResult) {
	s.instMu.Lock()
	s.instrumented = append(s.instrumented, res)
	s.instMu.Unlock()
	if s.opts.Instrumented != nil {
		s.opts.Instrumented(res)
	}
	if res.Err != nil {
		s.opts.Log.Warn("record: not instrumented", "tracer", res.Tracer, "pid", res.PID, "exe", res.Exe, "error", res.Err)
	}
}

// procChange is an exec or exit of a process the user-space tracers may
// follow, from the proc stream.
type procChange struct {
	pid  int32
	exit bool
	comm bool // an exec with a comm that Comms matches
}

// watchExecs hands the execs of processes whose comm matches Comms (globs,
// as for the processes running at the start) or, with Exec, every exec
// in the proc stream, to a goroutine that instruments them for every
// user-space tracer, and their exits to Release: the reader never waits
// for it. The filter selects such processes (by comm, or by executable
// from the exec on: common.Filter.AllowExec), so their execs are in the
// stream; the goroutine instruments a process of Exec if /proc says it
// still runs one of its files. Call it before the readers start;
// stopWatching ends it.
func (s *session) watchExecs() {
	if len(s.users) == 0 || len(s.opts.Comms)+len(s.opts.Exec) == 0 {
		return
	}
	var st *streamState
	for _, x := range s.streams {
		if proc.IsStream(x.info.Tracer, x.info.Name, x.info.EventType, x.info.Object != nil) {
			st = x
		}
	}
	if st == nil {
		s.opts.Log.Warn("record: without the proc stream, processes started later are not listed as instrumented, and those of --comm not instrumented (those of --exec are recorded all the same: their files and libraries are instrumented, and the kernel selects them at their exec)")
		return
	}
	changes := make(chan procChange, 1024)
	s.watchStop, s.watchDone = make(chan struct{}), make(chan struct{})
	prev := st.observe
	var ev proc.Event
	st.observe = func(events []bpf.RingbufEvent) {
		if prev != nil {
			prev(events)
		}
		for _, e := range events {
			if proc.Decode(e.Raw, &ev) != nil {
				continue
			}
			var c procChange
			switch {
			case ev.Kind == "exec" && matchComm(s.opts.Comms, ev.Command):
				c = procChange{pid: int32(ev.Pid), comm: true}
			case ev.Kind == "exec" && len(s.execFiles) > 0:
				c = procChange{pid: int32(ev.Pid)}
			case ev.Kind == "exit":
				c = procChange{pid: int32(ev.Pid), exit: true}
			default:
				continue
			}
			select {
			case changes <- c:
			default:
				s.opts.Log.Warn("record: too many execs at once: a process is left uninstrumented", "pid", ev.Pid)
			}
		}
	}
	// The processes instrumented here for running a file of Exec.
	byExec := map[int32]bool{}
	go func() {
		defer close(s.watchDone)
		for {
			select {
			case <-s.watchStop:
				return
			case c := <-changes:
				s.change(c, byExec)
			}
		}
	}()
}

// change applies an exec or exit to every user-space tracer.
func (s *session) change(c procChange, byExec map[int32]bool) {
	if c.exit {
		delete(byExec, c.pid)
		for _, u := range s.users {
			if err := u.pt.Release(c.pid); err != nil {
				s.opts.Log.Warn("record: release", "tracer", u.t.Name(), "pid", c.pid, "error", err)
			}
		}
		return
	}
	var fi *bpf.FileInfo
	if !c.comm {
		nfi, err := bpf.NewFileInfo(c.pid)
		if err != nil {
			// Gone already: its exit follows. Its calls of the file were
			// recorded all the same (the probes are on the file).
			s.opts.Log.Debug("record: a process exited before it was instrumented", "pid", c.pid, "error", err)
			return
		}
		if !slices.Contains(s.execFiles, fileID{nfi.Dev, nfi.Ino}) {
			if byExec[c.pid] {
				// It execs another file: the kernel no longer selects it.
				delete(byExec, c.pid)
				for _, u := range s.users {
					_ = u.pt.Release(c.pid)
				}
			}
			return
		}
		byExec[c.pid] = true
		fi = nfi
	}
	for _, u := range s.users {
		// A process instrumented before keeps its old image's probes
		// until released: drop them first.
		_ = u.pt.Release(c.pid)
		if fi == nil {
			s.instrumentLater(u, &bpf.FileInfo{PID: c.pid})
			continue
		}
		cp := *fi // each ProcessTracer keeps its own
		s.instrumentLater(u, &cp)
	}
}

// instrumentLater instruments a process whose exec the proc stream showed,
// as instrument does, but a process that is gone by then (short-lived
// ones are, often) is no failure: its exit follows, and it is left out of
// the results.
func (s *session) instrumentLater(u *userTracer, fi *bpf.FileInfo) {
	err := u.pt.Instrument(&bpf.Instrumentable{FileInfo: fi})
	if err != nil && gone(fi.PID) {
		s.opts.Log.Debug("record: a process exited before it was instrumented", "tracer", u.t.Name(), "pid", fi.PID, "error", err)
		return
	}
	s.report(InstrumentResult{Tracer: u.t.Name(), PID: fi.PID, Exe: fi.CmdExePath, Err: err})
}

// gone reports whether process pid has exited (a zombie has no exe).
func gone(pid int32) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	return err != nil
}

func matchComm(globs []string, comm string) bool {
	for _, g := range globs {
		if exeinfo.Glob(g, comm) {
			return true
		}
	}
	return false
}

// stopWatching ends watchExecs' goroutine.
func (s *session) stopWatching() {
	if s.watchStop != nil {
		close(s.watchStop)
		<-s.watchDone
		s.watchStop = nil
	}
}

// releaseUsers detaches every user-space tracer's probes, the libraries'
// (dns's libc, bash's readline) among them: before the buffers drain, so
// that no event comes after the drain (the accounting would not balance),
// and so that none stays attached after the recording.
func (s *session) releaseUsers() {
	s.stopWatching()
	for _, u := range s.users {
		if err := u.pt.Close(); err != nil {
			s.opts.Log.Warn("record: detach", "tracer", u.t.Name(), "error", err)
		}
	}
}

// loadedColl reports whether colls holds the collection called name (a
// tracer this kernel cannot run is not loaded).
func (s *session) loadedColl(colls []Collection, name string) bool {
	for _, c := range colls {
		if c.Name == name {
			return true
		}
	}
	return false
}

// hasUserTracer reports whether a user-space tracer was added.
func (r *Recorder) hasUserTracer() bool {
	for _, t := range r.tracers {
		if tracers.InstrumentsProcesses(t) {
			return true
		}
	}
	return false
}
