package store

// Damage and the sequence check: every record is read, reported damaged
// or reported missing, never skipped silently.

import (
	"errors"
	"fmt"
	"io"
)

// CorruptError reports damaged data. It is not terminal: the Reader skips
// the damaged part and the next call of Next goes on with the intact data.
// No record is skipped silently: records lost with damaged data, missing
// between two records read or at the end of a closed segment (by its
// summary), or in missing segment files, are reported with Last set (the
// records Seq to Last), before the next intact batch.
type CorruptError struct {
	// Segment is the segment's index.
	Segment int
	// Seq is the sequence number of the damaged record, or of the last good
	// one before it when After is set, or 0 if unknown.
	Seq   uint64
	After bool
	// Last, if not zero, says that records Seq to Last are lost (missing,
	// or skipped with damaged data); Segment is then the segment they
	// belong to.
	Last uint64
	// Err says what is wrong.
	Err error
}

func (e *CorruptError) Error() string {
	switch {
	case e.Last != 0:
		return fmt.Sprintf("store: %s: records %d-%d %v", segName(e.Segment), e.Seq, e.Last, e.Err)
	case e.Seq != 0 && e.After:
		return fmt.Sprintf("store: %s: after batch %d: %v", segName(e.Segment), e.Seq, e.Err)
	case e.Seq != 0:
		return fmt.Sprintf("store: %s: batch %d: %v", segName(e.Segment), e.Seq, e.Err)
	}
	return fmt.Sprintf("store: %s: %v", segName(e.Segment), e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// startSegment prepares the sequence check for reading segment si from its
// start: if the last record is not known from the previous segment, the
// segment's summary or the recording's start say where it begins.
func (r *Reader) startSegment(si *SegmentInfo) {
	if r.known && r.prevIndex != 0 && si.Index > r.prevIndex+1 {
		r.gapSeg = r.prevIndex + 1
	}
	r.prevIndex = si.Index
	if !r.known && (r.opts.After > 0 || r.opts.AfterSet) {
		r.lastSeq, r.known = r.opts.After, true
	}
	if r.known {
		return
	}
	if s := si.Summary; s != nil && s.Records > 0 {
		r.lastSeq, r.known = s.FirstSeq-1, true
	} else if r.next == 1 && r.deleted != nil && r.deleted.LastSegment == si.Index-1 {
		r.lastSeq, r.known = r.deleted.LastSeq, true
	} else if r.next == 1 && si.Index == 1 && r.deleted == nil {
		r.lastSeq, r.known = 0, true
	}
}

// endSegment checks, when the reader leaves segment si, that it read up to
// the last record its closing summary names: it returns a *CorruptError for
// the records missing at the end.
func (r *Reader) endSegment(si *SegmentInfo) error {
	var skipped error
	if r.cur == nil {
		skipped, r.skipped = r.skipped, nil
	}
	s := si.Summary
	if s == nil || s.Records == 0 {
		if skipped != nil {
			return &CorruptError{Segment: si.Index, Seq: r.lastSeq, After: r.known && r.lastSeq != 0, Err: fmt.Errorf("%v; skipped", skipped)}
		}
		return nil
	}
	if !r.known || r.lastSeq >= s.LastSeq {
		if !r.known || r.lastSeq < s.LastSeq {
			r.lastSeq = s.LastSeq
		}
		r.known = true
		return nil
	}
	msg := fmt.Sprintf("missing at the end of the segment (damaged; its summary says it ends at %d)", s.LastSeq)
	if skipped != nil {
		msg += fmt.Sprintf(" (%v)", skipped)
	}
	ce := &CorruptError{Segment: si.Index, Seq: r.lastSeq + 1, Last: s.LastSeq, Err: errors.New(msg)}
	r.lastSeq = s.LastSeq
	return ce
}

// gapError reports the records missing before record seq (lastSeq is the
// last accounted for).
func (r *Reader) gapError(seg int, seq uint64) *CorruptError {
	why := "sequence gap"
	if r.gapSeg != 0 {
		names := fmt.Sprintf("segment %06d", r.gapSeg)
		if r.gapSeg != seg-1 {
			names = fmt.Sprintf("segments %06d-%06d", r.gapSeg, seg-1)
		}
		deleted := r.live && deletedByRetention(r.dir, r.gapSeg-1, seg-1)
		seg = r.gapSeg
		if deleted {
			return &CorruptError{Segment: seg, Seq: r.lastSeq + 1, Last: seq - 1,
				Err: fmt.Errorf("missing before batch %d (%s %w)", seq, names, errDeletedListing)}
		}
		why = names + " missing or unreadable"
	} else if r.cur != nil && r.cur.log.skipped != nil { // nil between segments
		why = fmt.Sprintf("%v; skipped", r.cur.log.skipped)
	}
	msg := fmt.Sprintf("missing before batch %d (%s)", seq, why)
	return &CorruptError{Segment: seg, Seq: r.lastSeq + 1, Last: seq - 1, Err: errors.New(msg)}
}

// corrupt reports damage in the current segment and skips the rest of it.
func (r *Reader) corrupt(err error) error {
	ce := &CorruptError{Segment: r.cur.info.Index, Err: err}
	r.closeCur()
	return ce
}

var errCRC = errors.New("crc mismatch")

// ErrSegmentDeleted is wrapped by the *CorruptError of a segment whose file
// was deleted after the recording was listed, before the reader got to
// it: by a running writer's retention, as a rule. A follower opens the
// recording again to learn what the deletion record says.
var ErrSegmentDeleted = errors.New("deleted (retention of a running recorder?)")

// errDeletedReading is ErrSegmentDeleted met when the reader reached the
// segment.
var errDeletedReading = fmt.Errorf("%w while it was read", ErrSegmentDeleted)

// errDeletedListing is ErrSegmentDeleted for segments missing from the
// listing, deleted as it was made (see deletedByRetention).
var errDeletedListing = fmt.Errorf("%w as the recording was listed", ErrSegmentDeleted)

// skipDamage repositions after bbolt panicked on a damaged page: it tries
// chunks further and further after the last one read until bbolt can seek
// there. It returns false if the rest of the segment is unreadable.
func (r *Reader) skipDamage() bool {
	s := r.cur
	base := s.log.chunk
	for step := uint64(1); step < 1<<62 && base+step > base; {
		ok, eof := func() (ok, eof bool) {
			defer func() {
				if p := recover(); p != nil {
					if !boltPanic(p) {
						panic(p)
					}
					ok = false
				}
			}()
			s.log.close()
			s.log.c = newChunkCursor(s.m, r.bg)
			s.log.chunk = base + step
			err := s.log.toStart()
			return err == nil, err == io.EOF
		}()
		if eof {
			return false
		}
		if ok {
			s.broken = false
			return true
		}
		if step < 8 {
			step++
		} else {
			step *= 2
		}
	}
	return false
}
