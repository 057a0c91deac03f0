package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/store"
)

// session is one run of a Recorder.
type session struct {
	rec         *Recorder
	opts        Options
	mgr         *bpf.Manager
	w           *store.Writer
	streams     []*streamState
	cmd         *gatedCommand
	skipped     []string // "tracer: reason" of the built-in tracers this kernel cannot run
	commandExit int
	started     time.Time
	stopErr     chan error // the writer failed: stop the recording
	fpMu        sync.Mutex // serializes appends and their Fingerprints lines
	note        *note      // the recorder's note in the recording (nil if it could not be written)
	cgroups     *cgroupNamer
	// users are the user-space tracers and their ProcessTracers;
	// instrumented what instrumenting processes for them gave.
	users        []*userTracer
	instMu       sync.Mutex // instrumented is appended to by watchExecs' goroutine too
	instrumented []InstrumentResult
	watchStop    chan struct{} // ends watchExecs' goroutine
	watchDone    chan struct{}
	self         int      // the recorder's pid, never instrumented
	execFiles    []fileID // the executables of Options.Exec

	storageMu  sync.Mutex
	storageErr error // the storage failure that stopped the writer, if any

	// aborting is set by Abort: batches read from then on are counted as
	// dropped by ebpfrec instead of recorded, so the buffers empty at once.
	aborting atomic.Bool
}

func (s *session) run(ctx context.Context) (sum *Summary, err error) {
	s.stopErr = make(chan error, 1)
	log := s.opts.Log

	s.mgr, err = bpf.NewManager(s.opts.Manager, log, s.opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("record: %w", explainPrivileges(err))
	}
	defer func() {
		if serr := s.mgr.Stop(context.Background()); serr != nil && err == nil {
			err = fmt.Errorf("record: release BPF objects: %w", serr)
		}
	}()

	// Processes given by PID must exist; the recording ends when they exit.
	pidsDone, stopWatch, err := watchPIDs(s.opts.PIDs)
	if err != nil {
		return nil, err
	}
	defer stopWatch()
	if err := ensureTracefs(log); err != nil {
		return nil, err
	}
	// The user's collections that opt into the process filter get the
	// recording's filter maps in place of their own.
	var colls []Collection
	var hooked []int
	for _, c := range s.rec.colls {
		if ok, _ := common.UserHook(c.Spec); ok { // AddCollection checked it
			hooked = append(hooked, len(colls))
		}
		colls = append(colls, c)
	}
	if err := s.setupFilter(len(s.rec.tracers) > 0 || len(hooked) > 0 || s.rec.proc != nil); err != nil {
		return nil, err
	}
	for _, i := range hooked {
		opts := ebpf.CollectionOptions{}
		if colls[i].Options != nil {
			opts = *colls[i].Options
		}
		repl := s.rec.filter.UserMapReplacements()
		for k, m := range opts.MapReplacements {
			repl[k] = m
		}
		opts.MapReplacements = repl
		colls[i].Options = &opts
	}
	for _, t := range s.rec.tracers {
		err := t.Supported()
		if err == nil {
			err = t.Variant().Err
		}
		if err != nil {
			// One tracer this kernel lacks does not stop the others; a
			// recording of nothing else fails.
			if len(s.rec.tracers)+len(s.rec.colls) == 1 {
				return nil, fmt.Errorf("record: tracer %s cannot run on this kernel: %w", t.Name(), err)
			}
			log.Warn("record: skipping a tracer this kernel cannot run", "tracer", t.Name(), "reason", err)
			s.skipped = append(s.skipped, t.Name()+": "+err.Error())
			continue
		}
		c, err := s.rec.builtinCollection(t)
		if err != nil {
			return nil, err
		}
		colls = append(colls, c)
	}
	if t := s.rec.proc; t != nil {
		c, err := s.procCollection(t)
		if err != nil {
			return nil, err
		}
		if c != nil {
			// Its stream comes last; its programs are attached first (below).
			colls = append(colls, *c)
		}
	}
	if err := s.load(colls); err != nil {
		return nil, err
	}
	s.self = os.Getpid()
	for _, t := range s.rec.tracers {
		if pi, ok := t.(tracers.ProcessInstrumenter); ok && s.loadedColl(colls, t.Name()) {
			pt := bpf.NewProcessTracer(pi.ProcessTracerType(), log, pi)
			pt.GoFields = pi.GoFields()
			s.users = append(s.users, &userTracer{t: pi, pt: pt})
		}
	}
	defer func() {
		if err != nil {
			s.releaseUsers()
		}
	}()
	if s.rec.proc != nil && len(colls) > 0 && colls[len(colls)-1].Name == proc.Name {
		// Attached first, so that its programs run first on the tracepoints
		// it shares with other tracers (a tracepoint calls its probes in the
		// order they were attached): a process's exec is in the table
		// before the exec tracer's event of it, in ktime order.
		colls = append(colls[len(colls)-1:], colls[:len(colls)-1]...)
	}

	meta, err := hostMeta()
	if err != nil {
		log.Warn("record: host metadata incomplete", "error", err)
	}
	meta.ToolVersion = s.opts.ToolVersion
	meta.CommandLine = s.opts.CommandLine
	s.started = time.Now() // the recording starts now; loading took what it took
	meta.Started = s.started.Round(0)
	for _, st := range s.streams {
		meta.Streams = append(meta.Streams, st.info)
	}
	_, statErr := os.Stat(s.opts.Dir)
	dirExisted := statErr == nil
	s.w, err = store.Create(s.opts.Dir, meta, s.opts.Store)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	// From here on the recording exists: whatever happens, close it. If
	// recording never started (attaching failed), leave no half-made
	// recording behind.
	running := false
	if s.note, err = reserveNote(s.opts.Dir, meta.Started.Format(time.RFC3339)); err != nil {
		// Only the end of a recording that fails needs the note.
		log.Warn("record: cannot write the recorder's note into the recording", "error", err)
	}
	defer func() {
		cerr := s.w.Close()
		if !running {
			if s.note != nil {
				_ = s.note.finish("")
			}
			removeRecording(s.opts.Dir, dirExisted)
			if cerr != nil && err == nil {
				err = fmt.Errorf("record: close recording: %w", cerr)
			}
			return
		}
		if cerr != nil && s.w.Err() != nil {
			s.storageFailed(cerr) // the final commit or the segment's close
		} else if cerr != nil && err == nil {
			err = fmt.Errorf("record: close recording: %w", cerr)
		}
		if sum != nil {
			s.settle(sum)
			s.finishSummary(sum)
		}
		if serr := s.storageFailure(); serr != nil {
			err = s.storageError(sum, serr, err)
		}
		if s.note != nil {
			if nerr := s.note.finish(s.endNote(sum)); nerr != nil {
				log.Warn("record: cannot write the recorder's note into the recording", "error", nerr)
			}
		}
	}()

	if err := s.makeReaders(); err != nil {
		return nil, err
	}
	if err := s.attachAll(colls); err != nil {
		return nil, err
	}
	s.instrumentExecFiles()
	s.instrumentLibrariesForComms()
	s.instrumentRunning()
	if len(s.opts.Command) > 0 {
		if err := s.startCommand(); err != nil {
			return nil, err
		}
		s.instrumentCommand()
	}
	running = true
	// After the attach (and the command's start), so that every process
	// is in the kernel's events or in the snapshot, or in both.
	s.snapshotProc()
	s.watchExecs() // after snapshotProc, which sets the proc stream's observer
	if s.opts.Started != nil {
		s.opts.Started()
	}
	return s.loop(ctx, pidsDone)
}

// removeRecording removes a recording that never started: the directory if
// Create made it, else only the segment files in it.
func removeRecording(dir string, keepDir bool) {
	if !keepDir {
		_ = os.RemoveAll(dir)
		return
	}
	_ = store.RemoveSegments(dir)
}

// setupFilter creates the shared process filter of the built-in tracers
// and of the collections that opt into it (needed), and applies the
// selection. AddCollection made sure that a selection reaches every
// collection.
func (s *session) setupFilter(needed bool) error {
	if !needed {
		return nil
	}
	f, err := common.NewFilter()
	if err != nil {
		return fmt.Errorf("record: process filter: %w", explainPrivileges(err))
	}
	s.rec.filter = f
	s.mgr.AddCloser(f)
	// The recorder's own activity (writing segments, reading buffers) is
	// never recorded: it would feed back into the open and syscall tracers.
	if err := f.BlockPID(uint32(os.Getpid())); err != nil {
		return fmt.Errorf("record: process filter: %w", err)
	}
	for _, p := range s.opts.Exec {
		// The kernel allows the processes that exec it from now on;
		// instrumenting allows those running it already.
		if err := f.AllowExec(p); err != nil {
			return fmt.Errorf("record: --exec %s: %w", p, err)
		}
	}
	if len(s.opts.Command) > 0 {
		if err := f.Restrict(); err != nil {
			return fmt.Errorf("record: process filter: %w", err)
		}
		if err := f.Follow(); err != nil {
			return fmt.Errorf("record: follow the command's descendants: %w", err)
		}
	}
	for _, pid := range s.opts.PIDs {
		if err := f.AllowPID(pid); err != nil {
			return fmt.Errorf("record: --pid %d: %w", pid, err)
		}
	}
	for _, c := range s.opts.Comms {
		if err := f.AllowComm(c); err != nil {
			return fmt.Errorf("record: --comm %q: %w", c, err)
		}
	}
	return nil
}

// load loads every collection and resolves the streams' maps.
func (s *session) load(colls []Collection) error {
	names := map[string]bool{}
	// Streams of a collection are named by their map alone when it is the
	// only one (the proc stream, which every recording has, has its name).
	named := 0
	for _, c := range colls {
		for _, us := range c.Streams {
			if us.Name == "" {
				named++
				break
			}
		}
	}
	release, _ := kernelRelease() // unknown: misses read as not counted
	for _, c := range colls {
		if err := s.mgr.LoadSpec(c.Name, c.Spec); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		coll, err := s.mgr.LoadCollection(c.Name, c.Options)
		if err != nil {
			return fmt.Errorf("record: load %s: %w", c.Name, explainPrivileges(err))
		}
		if c.loaded != nil {
			if err := c.loaded(coll); err != nil {
				return fmt.Errorf("record: load %s: %w", c.Name, err)
			}
		}
		for _, us := range c.Streams {
			st := &streamState{coll: c.Name, user: us, m: coll.Maps[us.Map]}
			name := us.Name
			if name == "" {
				name = us.Map
				if named > 1 {
					name = c.Name + "/" + us.Map
				}
			}
			if names[name] {
				return fmt.Errorf("record: two streams are called %q", name)
			}
			names[name] = true
			if us.DropCounter != "" {
				if st.drop = coll.Maps[us.DropCounter]; st.drop == nil {
					return fmt.Errorf("record: collection %s: drop counter: %w %q", c.Name, ErrUnknownMap, us.DropCounter)
				}
			}
			if us.EmittedCounter != "" {
				if st.emit = coll.Maps[us.EmittedCounter]; st.emit == nil {
					return fmt.Errorf("record: collection %s: emitted counter: %w %q", c.Name, ErrUnknownMap, us.EmittedCounter)
				}
			}
			kind := store.KindRingbuf
			if st.m.Type() == ebpf.PerfEventArray {
				kind = store.KindPerfbuf
			}
			st.info = store.StreamInfo{Name: name, Tracer: us.Tracer, Map: us.Map, Kind: kind, EventType: us.EventType, Object: us.Object,
				KernelLossUncounted: kind == store.KindRingbuf && st.drop == nil}
			if us.Struct != "" {
				if st.info.Layout, err = StructLayout(c.Spec, us.Struct); err != nil {
					return fmt.Errorf("record: collection %s: stream %s: %w", c.Name, name, err)
				}
			}
			st.progs, st.info.KernelMissedCounted = streamPrograms(c, coll, us.Map, release)
			if !st.info.KernelMissedCounted {
				// Not counted means unknown: what some of the programs
				// count would read as a partial total (store.Loss.Total).
				st.progs = nil
			}
			st.batch = store.Batch{Stream: name, Kind: kind}
			s.streams = append(s.streams, st)
		}
	}
	if len(s.streams) == 0 {
		return fmt.Errorf("record: %w: no ring buffer or perf event array to read", ErrNoStreams)
	}
	return nil
}

// makeReaders creates one reader per stream, with a handler that tees each
// batch into the recording before the user's handler sees it.
func (s *session) makeReaders() error {
	for _, st := range s.streams {
		st := st
		if st.info.Kind == store.KindRingbuf {
			cfg := s.opts.Ringbuf
			cfg.DropCounter = st.drop
			rd, err := bpf.NewRingbufReader(st.m, st.info.Name, s.ringTee(st), cfg, s.opts.Log, s.opts.Metrics)
			if err != nil {
				return fmt.Errorf("record: stream %s: %w", st.info.Name, err)
			}
			st.ring = rd
		} else {
			rd, err := bpf.NewPerfbufReader(st.m, st.info.Name, s.perfTee(st), s.opts.Perfbuf, s.opts.Log, s.opts.Metrics)
			if err != nil {
				return fmt.Errorf("record: stream %s: %w", st.info.Name, err)
			}
			st.perf = rd
		}
	}
	return nil
}

// attachAll attaches every collection's programs.
func (s *session) attachAll(colls []Collection) error {
	for _, c := range colls {
		if c.user {
			continue // attached to processes: instrument.go
		}
		atts := c.Attach
		if len(atts) == 0 {
			atts = sectionAttachments(c.Spec)
			if len(atts) == 0 {
				return fmt.Errorf("record: collection %s: %w: no program says where to attach (give --attach KIND:TARGET=PROGRAM)", c.Name, ErrBadAttachment)
			}
		}
		for _, a := range atts {
			if _, err := attach(s.mgr, c.Name, c.Spec, a); err != nil {
				return fmt.Errorf("record: collection %s: attach %s: %w", c.Name, a, explainPrivileges(err))
			}
		}
	}
	return nil
}

func (s *session) startCommand() error {
	if s.rec.filter == nil {
		// AddCollection refuses a command for collections without the
		// filter, so this is a bug; say so rather than record everything.
		return fmt.Errorf("record: %w: no process filter to select the command with", ErrNoProcessFilter)
	}
	g, err := startGated(s.opts.Command, s.opts.CommandStdin, s.opts.CommandStdout, s.opts.CommandStderr)
	if err != nil {
		return err
	}
	if err := s.rec.filter.AllowPID(uint32(g.pid())); err != nil {
		g.abort()
		return fmt.Errorf("record: select the command: %w", err)
	}
	s.cmd = g
	return nil
}

// loop runs the readers until the recording ends, then drains and returns.
func (s *session) loop(ctx context.Context, pidsDone <-chan struct{}) (*Summary, error) {
	readCtx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	var wg sync.WaitGroup
	readErr := make(chan error, len(s.streams))
	for _, st := range s.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if st.ring != nil {
				err = st.ring.Start(readCtx)
			} else {
				err = st.perf.Start(readCtx)
			}
			if err != nil {
				readErr <- fmt.Errorf("record: stream %s: %w", st.info.Name, err)
			}
		}()
	}
	s.storeLoss(true)

	var runErr error
	var cmdDone chan struct{}
	if s.cmd != nil {
		cmdDone = make(chan struct{})
		if err := s.cmd.release(); err != nil {
			runErr = err // stop at once, below, keeping what was read
		}
		go func() {
			code, err := s.cmd.wait()
			if err != nil {
				s.opts.Log.Warn("record: command", "error", err)
			}
			s.commandExit = code
			close(cmdDone)
		}()
	}
	var deadline <-chan time.Time
	if s.opts.Duration > 0 {
		t := time.NewTimer(s.opts.Duration)
		defer t.Stop()
		deadline = t.C
	}
	lossTick := time.NewTicker(s.opts.LossInterval)
	defer lossTick.Stop()
	progTick := time.NewTicker(s.opts.ProgressInterval)
	defer progTick.Stop()

	aborted := false
wait:
	for runErr == nil {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline:
			break wait
		case <-cmdDone:
			cmdDone = nil
			break wait
		case <-pidsDone:
			break wait
		case <-s.rec.abort:
			aborted = true
			break wait
		case err := <-s.stopErr:
			runErr = fmt.Errorf("record: recording stopped: %w", err)
			break wait
		// A storage failure of the committer shows in the next append or
		// loss point (at the latest at the next LossInterval).
		case err := <-readErr:
			runErr = err
			break wait
		case <-lossTick.C:
			s.storeLoss(false)
		case <-progTick.C:
			s.progress(false)
		}
	}

	// Stop the producers first, so that draining the buffers reaches the
	// end of what was emitted.
	for _, name := range s.mgrLinks() {
		if err := s.mgr.DetachLink(name); err != nil && !errors.Is(err, bpf.ErrUnknownLink) {
			s.opts.Log.Warn("record: detach", "link", name, "error", err)
		}
	}
	s.releaseUsers()
	if s.cmd != nil && cmdDone != nil {
		// The recording ended before the command: stop it.
		s.cmd.signal(sigterm)
		select {
		case <-cmdDone:
		case <-time.After(2 * time.Second):
			s.cmd.signal(sigkill)
			<-cmdDone
		}
	}
	// Abort, now or while the buffers drain: what is still in them is read
	// and counted as dropped by ebpfrec, not recorded (no handler, no
	// append), so the drain ends at once and the accounting holds.
	drained := make(chan struct{})
	watch := make(chan struct{})
	go func() {
		defer close(watch)
		select {
		case <-s.rec.abort:
			s.aborting.Store(true)
		case <-drained:
		}
	}()
	if aborted {
		<-watch
	}
	stopReaders()
	wg.Wait()
	if s.cgroups != nil { // paths of the cgroups the drain showed, before the last counts
		s.cgroups.stop()
	}
	close(drained)
	<-watch
	aborted = s.aborting.Load()
	close(readErr)
	for err := range readErr {
		if runErr == nil {
			runErr = err
		}
	}
	s.storeLoss(true)
	s.progress(true)
	s.instMu.Lock()
	sum := &Summary{Dir: s.opts.Dir, Started: s.started, Duration: time.Since(s.started), CommandExit: s.commandExit, Aborted: aborted,
		Instrumented: s.instrumented}
	s.instMu.Unlock()
	for _, st := range s.streams {
		sum.Streams = append(sum.Streams, s.result(st))
	}
	return sum, runErr
}

// mgrLinks lists the manager's links of this session (every program listed
// by the manager carries its links' names in AttachPoint).
func (s *session) mgrLinks() []string {
	var names []string
	for _, p := range s.mgr.ListPrograms() {
		for _, n := range strings.Split(p.AttachPoint, ", ") {
			if n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}
