package record

// Accounting for every event: appending batches with their loss counters,
// loss points, the summary, and storage failures.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/store"
)

// storageFailed notes the storage failure that stopped the writer (the
// first one) and stops the recording.
func (s *session) storageFailed(err error) {
	s.storageMu.Lock()
	if s.storageErr == nil {
		s.storageErr = err
	}
	s.storageMu.Unlock()
	select {
	case s.stopErr <- err:
	default:
	}
}

func (s *session) storageFailure() error {
	s.storageMu.Lock()
	defer s.storageMu.Unlock()
	return s.storageErr
}

// append hands a batch of n events to the recording. It reports whether
// the writer took it: after a storage failure it takes nothing more, and
// the events are counted as lost to it (storage_lost), not as dropped by
// the reader. A batch the writer took is counted as recorded until it is
// known not to have been committed (settle).
func (s *session) append(st *streamState, n int) (bool, error) {
	return s.appendBatch(st, &st.batch, n)
}

// appendBatch is append of a batch b of st other than st.batch (which
// belongs to the stream's reader).
func (s *session) appendBatch(st *streamState, b *store.Batch, n int) (bool, error) {
	if s.aborting.Load() {
		st.abortDropped.Add(uint64(n))
		return false, nil
	}
	st.logMu.Lock()
	defer st.logMu.Unlock()
	b.Loss = st.nextLoss(false)
	if s.opts.Fingerprints != nil {
		// Lines in sequence order: the append and its line under one lock,
		// or another stream's append could come between them.
		s.fpMu.Lock()
		defer s.fpMu.Unlock()
	}
	if err := s.w.Append(b); err != nil {
		if werr := s.w.Err(); werr != nil {
			st.storageLost.Add(uint64(n))
			s.storageFailed(werr)
			return false, nil
		}
		select {
		case s.stopErr <- err:
		default:
		}
		return false, err
	}
	var bytes uint64
	for _, e := range b.Events {
		bytes += uint64(len(e.Raw))
	}
	if s.opts.Fingerprints != nil {
		fmt.Fprintln(s.opts.Fingerprints, store.FingerprintLine(b.Seq, st.info.Name, st.info.Kind, b.Events))
	}
	st.recorded.Add(uint64(n))
	st.batches.Add(1)
	st.bytes.Add(bytes)
	// Forget the batches committed since; keep this one until it is.
	committed := s.w.Committed()
	i := 0
	for i < len(st.pending) && st.pending[i].seq <= committed {
		i++
	}
	st.pending = append(st.pending[i:], pendingBatch{seq: b.Seq, events: uint64(n), bytes: bytes})
	return true, nil
}

func (s *session) ringTee(st *streamState) bpf.EventHandler {
	return func(ctx context.Context, events []bpf.RingbufEvent) error {
		st.batch.Events = st.batch.Events[:0]
		for _, e := range events {
			st.batch.Events = append(st.batch.Events, store.Event{Raw: e.Raw, Timestamp: e.Timestamp, CPU: -1})
		}
		if ok, err := s.append(st, len(events)); !ok {
			return err
		}
		if st.observe != nil {
			st.observe(events)
		}
		if st.user.Handler != nil {
			// Recorded already: a failing live handler loses nothing.
			if err := st.user.Handler(ctx, events); err != nil {
				s.handlerFailed(st, err)
			}
		}
		return nil
	}
}

func (s *session) perfTee(st *streamState) bpf.PerfEventHandler {
	return func(ctx context.Context, events []bpf.PerfbufEvent) error {
		st.batch.Events = events // store.Event is bpf.PerfbufEvent
		if ok, err := s.append(st, len(events)); !ok {
			return err
		}
		if st.user.PerfHandler != nil {
			if err := st.user.PerfHandler(ctx, events); err != nil {
				s.handlerFailed(st, err)
			}
		}
		return nil
	}
}

// handlerFailed counts an error of the stream's live handler (Stream.Handler,
// PerfHandler) and keeps the first, with its batch, for the summary and
// Run's error: the batch is recorded already, so the recording goes on,
// but the caller must learn that its live processing failed.
func (s *session) handlerFailed(st *streamState, err error) {
	s.opts.Log.Warn("record: live handler failed", "stream", st.info.Name, "error", err)
	if st.handlerErrors.Add(1) == 1 {
		st.handlerErr = fmt.Errorf("record: stream %s: batch %d: %w: %w", st.info.Name, st.batches.Load(), ErrHandler, err)
	}
}

// storeLoss stores each stream's loss counters if they changed (or always).
func (s *session) storeLoss(always bool) {
	now := time.Now().Round(0)
	for _, st := range s.streams {
		if !s.appendLoss(st, now, always) {
			return
		}
	}
}

// appendLoss logs the stream's loss counters if they moved (or always),
// in order with its batches (logMu). It reports whether to go on.
func (s *session) appendLoss(st *streamState, now time.Time, always bool) bool {
	st.logMu.Lock()
	defer st.logMu.Unlock()
	l := st.nextLoss(always)
	if !always && l == st.lastLoss {
		return true
	}
	if err := s.w.AppendLoss(st.info.Name, now, l); err != nil {
		if werr := s.w.Err(); werr != nil {
			s.storageFailed(werr)
			return false
		}
		select {
		case s.stopErr <- err:
		default:
		}
		return false
	}
	st.lastLoss = l
	return true
}

func (s *session) result(st *streamState) StreamResult {
	l := st.loss(true)
	r := StreamResult{
		Name: st.info.Name, Kind: st.info.Kind, Tracer: st.info.Tracer, KernelLossUncounted: st.info.KernelLossUncounted,
		Recorded: st.recorded.Load(), Batches: st.batches.Load(), Bytes: st.bytes.Load(),
		KernelLostPerfbuf: l.KernelLost, KernelLostRingbuf: l.RingbufDropped, EbpfrecDropped: l.UserDropped,
		KernelMissed: l.KernelMissed, KernelMissedCounted: st.info.KernelMissedCounted,
		StorageLost:   st.storageLost.Load(),
		HandlerErrors: st.handlerErrors.Load(), HandlerErr: st.handlerErr,
	}
	if st.emit != nil {
		if n, err := tracers.ReadCounter(st.emit); err == nil {
			// Records user space wrote into the stream are emitted too.
			r.Emitted, r.HasEmitted = n+st.synthesized.Load(), true
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
			KernelLostPerfbuf: l.KernelLost, KernelLostRingbuf: l.RingbufDropped, EbpfrecDropped: l.UserDropped,
			KernelMissed: l.KernelMissed, EventsPerSec: float64(n-st.lastEvents) / secs,
		})
		st.lastEvents = n
	}
	s.opts.Progress(p)
}

// settle, once the writer is closed, moves the batches it took but never
// committed from recorded to lost to the storage failure, so that the
// summary's recorded counts are what the recording holds.
func (s *session) settle(sum *Summary) {
	committed := s.w.Committed()
	for i, st := range s.streams {
		for _, p := range st.pending {
			if p.seq <= committed {
				continue
			}
			st.recorded.Add(-p.events)
			st.batches.Add(^uint64(0))
			st.bytes.Add(-p.bytes)
			st.storageLost.Add(p.events)
		}
		st.pending = nil
		if i < len(sum.Streams) {
			sum.Streams[i] = s.result(st)
		}
	}
	sum.StorageErr = s.storageFailure()
}

// storageError is the error a recording ends with after a storage failure
// (serr): it names the failure and what it cost, and replaces the error
// that only said the recording stopped because of it.
func (s *session) storageError(sum *Summary, serr, err error) error {
	var lost uint64
	if sum != nil {
		for _, st := range sum.Streams {
			lost += st.StorageLost
		}
	}
	e := fmt.Errorf("record: storage failure, the recording stopped: %w; %d events read from the kernel were not stored (%s)", serr, lost, lossterms.StorageLost)
	if err == nil || errors.Is(err, serr) {
		return e
	}
	return errors.Join(err, e)
}

// endNote is the recorder's last word in the recording's note: nothing (the
// note goes) unless a storage failure ended the recording.
func (s *session) endNote(sum *Summary) string {
	serr := s.storageFailure()
	if serr == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ended by a storage failure at %s: %v\n", time.Now().Round(0).Format(time.RFC3339), serr)
	if sum != nil {
		var lost uint64
		for _, st := range sum.Streams {
			lost += st.StorageLost
		}
		fmt.Fprintf(&b, "%s: %d events read from the kernel were not stored", lossterms.StorageLost, lost)
		sep := " ("
		for _, st := range sum.Streams {
			if st.StorageLost > 0 {
				fmt.Fprintf(&b, "%sstream %s: %d", sep, st.Name, st.StorageLost)
				sep = ", "
			}
		}
		if sep == ", " {
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (s *session) finishSummary(sum *Summary) {
	sum.Skipped = s.skipped
	sum.Deleted = s.w.Deleted()
	u, _ := store.DiskUsage(s.opts.Dir)
	sum.Segments, sum.DiskBytes = u.Segments, u.Bytes
}

func dirSize(dir string) int64 {
	u, _ := store.DiskUsage(dir)
	return u.Bytes
}
