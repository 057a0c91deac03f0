package record

import (
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/store"
)

// procCollection returns the collection of the proc stream (Options.NoProc
// unset), or nil when this kernel cannot run it: the recording goes on
// without it, saying so in Summary.Skipped.
func (s *session) procCollection(t tracers.Builtin) (*Collection, error) {
	err := t.Supported()
	if err == nil {
		err = t.Variant().Err
	}
	if err != nil {
		s.opts.Log.Warn("record: recording without the process table (proc), which this kernel cannot run", "reason", err)
		s.skipped = append(s.skipped, t.Name()+": "+err.Error())
		return nil, nil
	}
	c, err := s.rec.builtinCollection(t)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// snapshotProc writes the processes alive now (those the filter selects)
// into the proc stream, counted as emitted by the stream (so the
// accounting holds for them as for the kernel's events). A failed
// snapshot is logged: the kernel's events of the processes still come.
func (s *session) snapshotProc() {
	var st *streamState
	for _, x := range s.streams {
		if proc.IsStream(x.info.Tracer, x.info.Name, x.info.EventType, x.info.Object != nil) {
			st = x
		}
	}
	if st == nil {
		return
	}
	opts := proc.SnapshotOptions{}
	if f := s.rec.filter; f != nil {
		opts.Select = f.Selected
	}
	recs, err := proc.Snapshot(opts)
	if err != nil {
		s.opts.Log.Warn("record: no snapshot of the processes alive at start", "error", err)
		return
	}
	if root := proc.CgroupRoot(); root != "" {
		n := &cgroupNamer{s: s, st: st, root: root, known: map[uint64]bool{}, ids: make(chan uint64, cgroupQueue), done: make(chan struct{})}
		for _, r := range recs {
			if _, id, ok := proc.RawKindCgroup(r); ok {
				n.known[id] = true
			}
		}
		s.cgroups = n
		st.observe = n.observe // before the readers start (loop)
		go n.run()
	}
	b := store.Batch{Stream: st.info.Name, Kind: st.info.Kind}
	per := max(1, min(s.opts.Ringbuf.BatchSize, store.MaxBatchEvents))
	for len(recs) > 0 {
		n := min(per, len(recs))
		b.Events = b.Events[:0]
		now := time.Now()
		for _, r := range recs[:n] {
			b.Events = append(b.Events, store.Event{Raw: r, Timestamp: now, CPU: -1})
		}
		recs = recs[n:]
		st.synthesized.Add(uint64(n))
		if ok, err := s.appendBatch(st, &b, n); !ok {
			// Aborted or a storage failure: appendBatch counted the batch.
			// The rest is never emitted.
			if err != nil { // neither: the batch is dropped by ebpfrec
				st.abortDropped.Add(uint64(n))
				s.opts.Log.Warn("record: snapshot of the processes alive at start", "error", err)
			}
			return
		}
	}
}

// cgroupQueue bounds the cgroups waiting for their path: a burst of new
// cgroups beyond it leaves some without a path (their ids stay known).
const cgroupQueue = 256

// cgroupNamer writes into the proc stream the path of every cgroup that the
// kernel's events show and the snapshot did not describe (created during
// the recording), so that their container ids resolve too.
type cgroupNamer struct {
	s     *session
	st    *streamState
	root  string
	known map[uint64]bool // the reader goroutine's
	ids   chan uint64
	done  chan struct{}
}

// observe is called by the proc stream's reader with every batch recorded.
func (n *cgroupNamer) observe(events []bpf.RingbufEvent) {
	for _, e := range events {
		kind, id, ok := proc.RawKindCgroup(e.Raw)
		if !ok || kind > proc.KindExit || id == 0 || n.known[id] {
			continue
		}
		n.known[id] = true
		select {
		case n.ids <- id:
		default:
			n.s.opts.Log.Warn("record: too many new cgroups at once: one is left without its path", "cgroup_id", id)
		}
	}
}

func (n *cgroupNamer) run() {
	defer close(n.done)
	for id := range n.ids {
		path, err := proc.CgroupPath(n.root, id)
		if err != nil { // removed meanwhile, or no open_by_handle_at
			n.s.opts.Log.Debug("record: the path of a cgroup", "error", err)
			continue
		}
		b := store.Batch{Stream: n.st.info.Name, Kind: n.st.info.Kind,
			Events: []store.Event{{Raw: proc.RecordCgroup(id, path), Timestamp: time.Now(), CPU: -1}}}
		n.st.synthesized.Add(1)
		if ok, err := n.s.appendBatch(n.st, &b, 1); !ok && err != nil {
			n.st.abortDropped.Add(1)
		}
	}
}

// stop writes the paths still queued and returns; call it once the
// readers have stopped.
func (n *cgroupNamer) stop() {
	close(n.ids)
	<-n.done
}
