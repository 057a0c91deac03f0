package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
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
	pidsDone, err := watchPIDs(s.opts.PIDs)
	if err != nil {
		return nil, err
	}
	if err := ensureTracefs(log); err != nil {
		return nil, err
	}
	if err := s.setupFilter(); err != nil {
		return nil, err
	}
	colls := append([]Collection(nil), s.rec.colls...)
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
	if err := s.load(colls); err != nil {
		return nil, err
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
	defer func() {
		if cerr := s.w.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("record: close recording: %w", cerr)
		}
		if !running {
			removeRecording(s.opts.Dir, dirExisted)
			return
		}
		if sum != nil {
			s.finishSummary(sum)
		}
	}()

	if err := s.makeReaders(); err != nil {
		return nil, err
	}
	if err := s.attachAll(colls); err != nil {
		return nil, err
	}
	if len(s.opts.Command) > 0 {
		if err := s.startCommand(); err != nil {
			return nil, err
		}
	}
	running = true
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
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, f := range segs {
		_ = os.Remove(f)
	}
}

// setupFilter creates the shared process filter of the built-in tracers
// and applies the selection.
func (s *session) setupFilter() error {
	if len(s.rec.tracers) == 0 {
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
	for _, c := range colls {
		if err := s.mgr.LoadSpec(c.Name, c.Spec); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		coll, err := s.mgr.LoadCollection(c.Name, c.Options)
		if err != nil {
			return fmt.Errorf("record: load %s: %w", c.Name, explainPrivileges(err))
		}
		for _, us := range c.Streams {
			st := &streamState{coll: c.Name, user: us, m: coll.Maps[us.Map]}
			name := us.Name
			if name == "" {
				name = us.Map
				if len(colls) > 1 {
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
			st.info = store.StreamInfo{Name: name, Tracer: us.Tracer, Map: us.Map, Kind: kind, EventType: us.EventType, Object: us.Object}
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

func (s *session) append(st *streamState, n int) error {
	st.batch.Loss = st.loss(false)
	if s.opts.Fingerprints != nil {
		// Lines in sequence order: the append and its line under one lock,
		// or another stream's append could come between them.
		s.fpMu.Lock()
		defer s.fpMu.Unlock()
	}
	if err := s.w.Append(&st.batch); err != nil {
		select {
		case s.stopErr <- err:
		default:
		}
		return err
	}
	var bytes uint64
	for _, e := range st.batch.Events {
		bytes += uint64(len(e.Raw))
	}
	if s.opts.Fingerprints != nil {
		fmt.Fprintln(s.opts.Fingerprints, store.FingerprintLine(st.batch.Seq, st.info.Name, st.info.Kind, st.batch.Events))
	}
	st.recorded.Add(uint64(n))
	st.batches.Add(1)
	st.bytes.Add(bytes)
	return nil
}

func (s *session) ringTee(st *streamState) bpf.EventHandler {
	return func(ctx context.Context, events []bpf.RingbufEvent) error {
		st.batch.Events = st.batch.Events[:0]
		for _, e := range events {
			st.batch.Events = append(st.batch.Events, store.Event{Raw: e.Raw, Timestamp: e.Timestamp, CPU: -1})
		}
		if err := s.append(st, len(events)); err != nil {
			return err
		}
		if st.user.Handler != nil {
			// Recorded already: a failing live handler loses nothing.
			if err := st.user.Handler(ctx, events); err != nil {
				s.opts.Log.Warn("record: live handler failed", "stream", st.info.Name, "error", err)
			}
		}
		return nil
	}
}

func (s *session) perfTee(st *streamState) bpf.PerfEventHandler {
	return func(ctx context.Context, events []bpf.PerfbufEvent) error {
		st.batch.Events = events // store.Event is bpf.PerfbufEvent
		if err := s.append(st, len(events)); err != nil {
			return err
		}
		if st.user.PerfHandler != nil {
			if err := st.user.PerfHandler(ctx, events); err != nil {
				s.opts.Log.Warn("record: live handler failed", "stream", st.info.Name, "error", err)
			}
		}
		return nil
	}
}

// attachAll attaches every collection's programs.
func (s *session) attachAll(colls []Collection) error {
	for _, c := range colls {
		atts := c.Attach
		if len(atts) == 0 {
			atts = sectionAttachments(c.Spec)
			if len(atts) == 0 {
				return fmt.Errorf("record: collection %s: %w: no program says where to attach (give --attach KIND:TARGET=PROGRAM)", c.Name, ErrBadAttachment)
			}
		}
		for _, a := range atts {
			if _, err := attach(s.mgr, c.Name, a); err != nil {
				return fmt.Errorf("record: collection %s: attach %s: %w", c.Name, a, explainPrivileges(err))
			}
		}
	}
	return nil
}

func (s *session) startCommand() error {
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
	if aborted {
		// Stop without draining: close the buffers under the readers.
		for _, st := range s.streams {
			if st.ring != nil {
				_ = st.ring.Close()
			} else {
				_ = st.perf.Close()
			}
		}
	}
	stopReaders()
	wg.Wait()
	close(readErr)
	for err := range readErr {
		if runErr == nil {
			runErr = err
		}
	}
	s.storeLoss(true)
	s.progress(true)
	sum := &Summary{Dir: s.opts.Dir, Started: s.started, Duration: time.Since(s.started), CommandExit: s.commandExit, Aborted: aborted}
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

// storeLoss stores each stream's loss counters if they changed (or always).
func (s *session) storeLoss(always bool) {
	now := time.Now().Round(0)
	for _, st := range s.streams {
		l := st.loss(always)
		if !always && l == st.lastLoss {
			continue
		}
		if err := s.w.AppendLoss(st.info.Name, now, l); err != nil {
			select {
			case s.stopErr <- err:
			default:
			}
			return
		}
		st.lastLoss = l
	}
}

func (s *session) result(st *streamState) StreamResult {
	l := st.loss(true)
	r := StreamResult{
		Name: st.info.Name, Kind: st.info.Kind, Tracer: st.info.Tracer,
		Recorded: st.recorded.Load(), Batches: st.batches.Load(), Bytes: st.bytes.Load(),
		KernelLost: l.KernelLost, RingbufDropped: l.RingbufDropped, UserDropped: l.UserDropped,
	}
	if st.emit != nil {
		if n, err := tracers.ReadCounter(st.emit); err == nil {
			r.Emitted, r.HasEmitted = n, true
		}
	}
	return r
}

func (s *session) progress(final bool) {
	if s.opts.Progress == nil {
		return
	}
	p := Progress{Elapsed: time.Since(s.started), Final: final, DiskBytes: dirSize(s.opts.Dir)}
	secs := s.opts.ProgressInterval.Seconds()
	for _, st := range s.streams {
		l := st.loss(false)
		n := st.recorded.Load()
		p.Streams = append(p.Streams, StreamProgress{
			Name: st.info.Name, Events: n, Bytes: st.bytes.Load(),
			Lost: l.KernelLost + l.RingbufDropped, Dropped: l.UserDropped,
			KernelLost: l.KernelLost, RingDrops: l.RingbufDropped,
			EventsPerSec: float64(n-st.lastEvents) / secs,
		})
		st.lastEvents = n
	}
	s.opts.Progress(p)
}

func (s *session) finishSummary(sum *Summary) {
	sum.Skipped = s.skipped
	if segs, err := filepath.Glob(filepath.Join(s.opts.Dir, "*.seg")); err == nil {
		sum.Segments = len(segs)
	}
	sum.DiskBytes = dirSize(s.opts.Dir)
}

func dirSize(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// explainPrivileges adds what to do to permission errors of a user who is
// not root (root's come from elsewhere: a verifier rejection, lockdown).
func explainPrivileges(err error) error {
	if errors.Is(err, os.ErrPermission) && os.Geteuid() != 0 {
		return fmt.Errorf("%w (recording needs root, or CAP_BPF and CAP_PERFMON: run with sudo)", err)
	}
	return err
}

// watchPIDs returns a channel closed once every process in pids has exited
// (nil if pids is empty): like perf record -p, a recording of given
// processes ends with them.
func watchPIDs(pids []uint32) (<-chan struct{}, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	var fds []unix.PollFd
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(int(pid), 0)
		if err != nil {
			for _, f := range fds {
				unix.Close(int(f.Fd))
			}
			return nil, fmt.Errorf("record: --pid %d: %w", pid, err)
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for left := len(fds); left > 0; {
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				break
			}
			for i := range fds {
				if fds[i].Fd >= 0 && fds[i].Revents != 0 {
					unix.Close(int(fds[i].Fd))
					fds[i].Fd = -1 // poll ignores negative fds
					left--
				}
			}
		}
	}()
	return done, nil
}

// ensureTracefs mounts tracefs at /sys/kernel/tracing where it is missing
// (tracepoint attachment needs it), and says so. Without the privilege to
// mount, the tracers that need it say what to do when they attach.
func ensureTracefs(log *slog.Logger) error {
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return nil
	}
	if _, err := os.Stat("/sys/kernel/debug/tracing/events"); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return nil
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("record: tracefs is not mounted and mounting it failed: %w (mount -t tracefs tracefs %s)", err, dir)
	}
	log.Warn("record: mounted tracefs at " + dir)
	return nil
}
