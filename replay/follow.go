package replay

import (
	"context"
	"errors"

	"github.com/ebpfrec/ebpfrec/store"
)

// follow replays what is committed, then polls for more until ctx ends.
// Each pass opens the recording from the segment the previous pass ended
// in (store.OpenLive) and skips what was already read by sequence number.
func (r *Replayer) follow(ctx context.Context, ropts store.ReaderOptions) error {
	r.seen, r.retried = map[string]bool{}, map[uint64]bool{}
	fromSeg := 0
	after := r.openDeleted // the last record accounted for
	var sig string
	for {
		if ctx.Err() != nil {
			return nil
		}
		if s := store.ChangeToken(r.dir, fromSeg); (s != sig || s == "") && store.HasSegments(r.dir) {
			// Records up to After were read by an earlier pass: the
			// reader reports any missing after them (retention deleted
			// them before this pass), which drain tells from damage.
			ropts.After, ropts.AfterSet = after, true
			if r.meta.Started.IsZero() {
				// The first pass of a follower that started before its
				// recorder: the time window needs the recording's start.
				if m, err := store.ReadMeta(r.dir); err == nil {
					r.meta = m
					ropts.Streams = r.selected()
				}
			}
			var err error
			if ropts.From, ropts.To, err = r.storeWindow(); err != nil {
				return err
			}
			lr, err := store.OpenLive(r.dir, ropts, fromSeg, r.opts.ScratchDir)
			switch {
			case errors.Is(err, store.ErrNothingCommitted), errors.Is(err, store.ErrSegmentDeleted):
				// Nothing to read yet, or retention deleted every segment
				// this pass listed: the next pass lists newer ones, and
				// the deletion record they carry accounts for the rest.
			case err != nil:
				return err
			default:
				sig = s
				r.meta = lr.Meta()
				ropts.Streams = r.selected()
				_, err = r.drain(ctx, lr, r.maxSeq)
				if err == errPassCut {
					// Resume after what was delivered or reported: the
					// reader may have counted records it did not report.
					after = max(after, r.maxSeq)
				} else {
					after = max(after, lr.LastSeq())
				}
				segs := lr.Segments()
				lr.Close()
				if err == errPassCut {
					// Again from the same segment at the next poll, with
					// the deletion record that says what is gone.
					sig = ""
					break
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if n := len(segs); n > 0 {
					last := segs[n-1]
					if last.Closed {
						fromSeg = last.Index + 1
					} else {
						fromSeg = last.Index
					}
				}
			}
		}
		if r.order != nil {
			// Events held in the time-order window whose window has passed
			// in real time: nothing earlier is coming.
			if due, ok := r.order.idle(r.opts.Clock.Now()); ok {
				if err := r.releaseOrder(func() error { return r.order.ro.Release(due) }); err != nil {
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.opts.Clock.After(r.opts.PollInterval):
		}
	}
}
