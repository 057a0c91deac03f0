package store

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ReaderOptions select what a Reader delivers.
type ReaderOptions struct {
	// Streams, if not empty, selects batches and loss points of these
	// streams only.
	Streams []string
	// From and To, if not zero, select the batches whose event time span
	// overlaps [From, To) (a batch is always delivered whole) and the loss
	// points in [From, To). Batches without events are not selected by a
	// time range.
	From, To time.Time
	// OnLoss, if set, receives the loss points of the selected streams in
	// recorded order, interleaved with Next's batches.
	OnLoss func(LossPoint)
	// RingbufEvents makes Next decode ring buffer batches into
	// Batch.Ringbuf, leaving Batch.Events empty, and drop their events'
	// CPU and Lost (ring buffer events have neither: the reader stores -1
	// and 0). Replay sets it: the slice goes to handlers as it is.
	RingbufEvents bool
	// After, if not zero, says the caller already has every record up to
	// this sequence number (a follower's earlier pass): those are skipped,
	// and records missing between After and the first one found are
	// reported like any gap (a *CorruptError with Last set).
	After uint64
	// AfterSet makes After count even when it is 0: the caller expects
	// every record from After+1 on (a follower that opened the recording
	// before its first deletion), so records retention deleted since are
	// reported as missing too.
	AfterSet bool
	// ScratchDir is where the segment a writer is still writing is copied
	// to be read as of its last commit (default os.TempDir()); the copy is
	// removed by Close.
	ScratchDir string
}

// Reader iterates the batches of a recording in recorded order. It reads
// closed segments, segments left unclosed by a writer that stopped, and the
// segment a running writer holds, as of its last commit (see
// SegmentInfo.Live). A Reader is not safe for concurrent use.
type Reader struct {
	dir     string
	scratch string // copies of segments being written ("": none)
	live    bool   // a writer was writing the recording when it was opened
	opts    ReaderOptions
	streams map[string]bool
	segs    []SegmentInfo
	meta    Meta
	deleted *Deleted

	next int // index in segs of the next segment to open
	cur  *openSeg

	seek    int64 // seek time (ns) while seeking, else math.MinInt64
	from    int64
	to      int64
	batch   Batch
	loss    LossPoint
	dec     decoder
	rec     []byte
	bg      *readerBG // readahead, preloading, their buffers
	lastSeq uint64

	// Sequence checking, so that no record is lost silently: known says
	// lastSeq is the last record accounted for (read or reported), so that
	// the next one must be lastSeq+1. prevIndex is the index of the last
	// segment opened; gapSeg, if not zero, the first of the segments
	// missing before the current one. pendBatch and pendErr are what
	// Next returns at its next call, after an error about a gap.
	known     bool
	prevIndex int
	gapSeg    int
	pendBatch bool
	pendErr   error
	skipped   error // damage skipped in the segment last closed
}

// openSeg is the segment being read.
type openSeg struct {
	info   *SegmentInfo
	db     *bolt.DB
	tx     *bolt.Tx
	names  []string // stream names by number
	kinds  []Kind
	m      *loadedSeg // the checked file, whose log chunks are read
	log    logStream
	broken bool // a panic (damaged page, file truncated): skip past it
}

// Open opens the recording in dir for reading. It fails if dir holds no
// segment or a segment has a newer format version; a damaged segment is
// reported by Segments and, when iteration reaches it, by Next. A
// recording still being written is read up to its writer's last commit.
func Open(dir string, opts ReaderOptions) (*Reader, error) {
	files, err := recordingSegments(dir)
	if err != nil {
		return nil, err
	}
	return openFiles(dir, files, opts)
}

// openFiles opens a Reader over the segment files files (in order) of the
// recording in dir.
func openFiles(dir string, files []segFile, opts ReaderOptions) (*Reader, error) {
	files, scratch, err := liveFiles(files, opts.ScratchDir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("store: %s: every segment listed was %w while opening", dir, ErrSegmentDeleted)
	}
	r, err := openReader(dir, files, opts)
	if err != nil {
		if scratch != "" {
			os.RemoveAll(scratch)
		}
		return nil, err
	}
	r.scratch = scratch
	r.live = writerActive(dir)
	return r, nil
}

func openReader(dir string, files []segFile, opts ReaderOptions) (*Reader, error) {
	r := &Reader{dir: dir, opts: opts, seek: math.MinInt64, from: math.MinInt64, to: math.MaxInt64}
	r.dec.ring = opts.RingbufEvents
	if len(opts.Streams) > 0 {
		r.streams = make(map[string]bool)
		for _, s := range opts.Streams {
			r.streams[s] = true
		}
	}
	if !opts.From.IsZero() {
		r.from = opts.From.UnixNano()
	}
	if !opts.To.IsZero() {
		r.to = opts.To.UnixNano()
	}
	r.startBG()
	r.bg.ring = opts.RingbufEvents
	// The first segment is inspected first: if it is closed, and no time
	// range may skip it, it is loaded (its pages checked) on another core
	// while the others are inspected, for the first Next.
	r.segs = make([]SegmentInfo, len(files))
	r.segs[0] = inspectSegment(files[0])
	if opts.From.IsZero() {
		r.preloadNext()
	}
	inspectSegments(files[1:], r.segs[1:])
	// Retention deletes the oldest segments: those gone since the listing
	// are history deleted, not damage.
	for len(r.segs) > 1 && errors.Is(r.segs[0].err, errVanished) {
		r.segs = r.segs[1:]
	}
	markForeign(r.segs)
	for i, si := range r.segs {
		if errors.Is(si.err, ErrNewerFormat) {
			r.bg.stop()
			return nil, fmt.Errorf("store: %s: %w", segName(files[i].index), si.err)
		}
		if si.err == nil {
			r.meta = si.Meta
			if si.deleted != nil {
				r.deleted = si.deleted
			}
		}
	}
	return r, nil
}

// Meta returns the metadata of the newest readable segment (which declares
// every stream).
func (r *Reader) Meta() Meta { return r.meta }

// Segments describes every segment file, including the skipped ones.
func (r *Reader) Segments() []SegmentInfo { return r.segs }

// Live says whether a writer was still writing the recording when it was
// opened: the reader delivers what it had committed then.
func (r *Reader) Live() bool { return r.live }

// LastSeq returns the sequence number of the last record the reader has
// accounted for: delivered, left out by a filter, or reported missing or
// damaged (0 if none yet). A follower passes it as the next pass's
// ReaderOptions.After.
func (r *Reader) LastSeq() uint64 { return max(r.lastSeq, r.opts.After) }

// Deleted says what history retention deleted before the first segment,
// or nil.
func (r *Reader) Deleted() *Deleted { return r.deleted }

// Seek positions the reader so that the next batch is the first, in
// recorded order, whose events reach time t (its latest event is at or after
// t), using the segments' summaries and time indexes. Filters still apply.
func (r *Reader) Seek(t time.Time) error {
	r.closeCur()
	r.next = 0
	r.known, r.prevIndex, r.gapSeg, r.pendBatch, r.pendErr, r.skipped = false, 0, 0, false, nil, nil
	r.seek = t.UnixNano()
	return nil
}

// Close releases the open segment and stops the goroutines reading ahead.
func (r *Reader) Close() error {
	r.closeCur()
	r.bg.release()
	r.next = len(r.segs)
	r.pendBatch, r.pendErr = false, nil
	if r.scratch != "" {
		err := os.RemoveAll(r.scratch)
		r.scratch = ""
		return err
	}
	return nil
}

func (r *Reader) closeCur() {
	if r.cur == nil {
		return
	}
	r.skipped = r.cur.log.skipped
	r.cur.log.close()
	func() {
		defer func() {
			if p := recover(); p != nil && !boltPanic(p) {
				panic(p)
			}
		}()
		r.cur.tx.Rollback()
		r.cur.db.Close()
		r.cur.m.close()
	}()
	r.cur = nil
}

// All iterates the batches as Next does: a *CorruptError is yielded and
// iteration goes on; any other error ends it. The batch is valid until the
// next iteration.
func (r *Reader) All() iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		for {
			b, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(b, err) {
				return
			}
			if err != nil {
				// Declared here: errors.As moves it to the heap.
				var ce *CorruptError
				if !errors.As(err, &ce) {
					return
				}
			}
		}
	}
}

// Next returns the next selected batch, or io.EOF at the end. The batch and
// its events' Raw bytes are valid until the next call of Next or Close (buffers are
// reused). A *CorruptError names damaged data and is not terminal: call Next
// again to go on with the intact data after it.
func (r *Reader) Next() (*Batch, error) {
	defer debug.SetPanicOnFault(panicOnFault())
	if r.pendErr != nil {
		err := r.pendErr
		r.pendErr = nil
		return nil, err
	}
	if r.pendBatch {
		r.pendBatch = false
		return &r.batch, nil
	}
	for {
		if r.cur == nil {
			if r.next >= len(r.segs) {
				return nil, io.EOF
			}
			si := &r.segs[r.next]
			r.next++
			if si.BeingWritten {
				r.known = false
				continue // said so by Segments
			}
			if si.err != nil {
				if r.next == len(r.segs) && interruptedCreate(si) {
					continue // a writer killed while creating its last segment: said so by Segments
				}
				// Its records are named by the gap before the next record
				// read (startSegment sees the segment's index missing).
				return nil, &CorruptError{Segment: si.Index, Err: si.err}
			}
			if r.skipSegment(si) {
				r.known = false
				continue
			}
			r.startSegment(si)
			err := r.openSegment(si)
			if r.cur == nil {
				// Nothing of the segment is read: damaged, or nothing
				// selected, or an empty log.
				var ce *CorruptError
				if s := si.Summary; errors.As(err, &ce) && s != nil && s.Records > 0 && ce.Seq == 0 && ce.Last == 0 {
					// The records missing before the segment first, then
					// the segment's own.
					// Records up to lastSeq were read, or the caller has
					// them (ReaderOptions.After): not missing here.
					first := s.FirstSeq
					if r.known && first <= r.lastSeq {
						first = r.lastSeq + 1
					}
					switch {
					case first > s.LastSeq && errors.Is(err, ErrSegmentDeleted):
						err = nil // deleted, but nothing of it is missing
					case first <= s.LastSeq:
						var gap *CorruptError
						if r.known && first > r.lastSeq+1 {
							gap = r.gapError(si.Index, first)
						}
						ce.Seq, ce.Last = first, s.LastSeq
						r.lastSeq, r.known = s.LastSeq, true
						if gap != nil {
							r.pendErr = err
							return nil, gap
						}
					}
				}
				if err == nil {
					err = r.endSegment(si)
				}
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		si := r.cur.info
		b, err := r.nextInSegment()
		if err == io.EOF || r.cur == nil {
			// The segment's end, or the rest of it skipped as damaged.
			r.closeCur()
			if e := r.endSegment(si); e != nil {
				if err == io.EOF {
					return nil, e
				}
				r.pendErr = e
			}
			if err == io.EOF {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		if b != nil {
			return b, nil
		}
	}
}

// skipSegment says whether a closed segment's summary rules it out.
func (r *Reader) skipSegment(si *SegmentInfo) bool {
	s := si.Summary
	if s == nil || r.opts.OnLoss != nil {
		return false
	}
	if s.Batches == 0 || s.Events == 0 {
		return r.from != math.MinInt64 || r.to != math.MaxInt64 || r.seek != math.MinInt64
	}
	start := max(r.from, r.seek)
	if s.MaxTime.UnixNano() < start || s.MinTime.UnixNano() >= r.to {
		return true
	}
	if r.streams != nil {
		for name := range s.Streams {
			if r.streams[name] && s.Streams[name].Batches > 0 {
				return false
			}
		}
		return true
	}
	return false
}

func (r *Reader) openSegment(si *SegmentInfo) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if !boltPanic(p) {
				panic(p)
			}
			err = &CorruptError{Segment: si.Index, Err: fmt.Errorf("damaged page (bbolt failed: %v)", p)}
			if r.cur != nil && r.cur.log.c != nil {
				r.cur.broken = true // skip the damaged pages
			} else {
				r.closeCur()
			}
		}
	}()
	db, err := openSegmentRO(si.Path)
	if err != nil {
		if errors.Is(err, errBeingWritten) {
			si.BeingWritten = true
			si.Skipped = err.Error()
			return nil
		}
		if os.IsNotExist(err) {
			return &CorruptError{Segment: si.Index, Err: errDeletedReading}
		}
		return &CorruptError{Segment: si.Index, Err: err}
	}
	// bbolt trusts its pages: check them first (see checkPages). The log
	// chunks the check found are then read without bbolt.
	m := r.takePreload(si.Path)
	if m == nil {
		m = loadSegment(si.Path)
	}
	if m.fatal {
		m.close()
		db.Close()
		if m.gone {
			return &CorruptError{Segment: si.Index, Err: errDeletedReading}
		}
		return &CorruptError{Segment: si.Index, Err: fmt.Errorf("damaged file structure, segment skipped: %s", strings.Join(m.msgs, "; "))}
	}
	tx, err := db.Begin(false)
	if err != nil {
		m.close()
		db.Close()
		return &CorruptError{Segment: si.Index, Err: err}
	}
	s := &openSeg{info: si, db: db, tx: tx, m: m}
	r.preloadNext()
	r.cur = s
	sm, err := readSegMeta(tx)
	if err != nil {
		r.closeCur()
		return &CorruptError{Segment: si.Index, Err: err}
	}
	for _, st := range sm.meta.Streams {
		s.names = append(s.names, st.Name)
		s.kinds = append(s.kinds, st.Kind)
	}
	s.log.c = newChunkCursor(m, r.bg)
	s.log.maxValue = chunkValueOf(sm.format)
	// Start where the time index says the wanted time begins.
	start := max(r.from, r.seek)
	var pos *indexEntry
	if start != math.MinInt64 {
		r.known = false // records before start are skipped on purpose
		var none bool
		pos, none = findInIndex(tx, start)
		if none {
			r.closeCur() // nothing late enough here
			return nil
		}
	}
	if pos != nil {
		err = s.log.seekRecord(pos.chunk, pos.off)
	} else {
		err = s.log.first()
	}
	if err == io.EOF {
		r.closeCur()
		return nil
	}
	if err != nil {
		return r.corrupt(err)
	}
	return nil
}

// findInIndex returns the first index group whose events reach start, or
// none if the index says no group does; nil, false if the index is damaged
// (then the caller scans).
func findInIndex(tx *bolt.Tx, start int64) (pos *indexEntry, none bool) {
	defer func() {
		if p := recover(); p != nil {
			if !boltPanic(p) {
				panic(p)
			}
			pos, none = nil, false
		}
	}()
	c := tx.Bucket(bucketIndex).Cursor()
	seen := false
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, ok := parseIndexEntry(k, v)
		if !ok {
			return nil, false
		}
		seen = true
		if e.minT <= e.maxT && e.maxT >= start {
			return &e, false
		}
	}
	return nil, seen
}

// nextInSegment reads records until one is selected: it returns the batch,
// (nil, nil) to go on, io.EOF at the segment's end, or a *CorruptError.
func (r *Reader) nextInSegment() (b *Batch, err error) {
	s := r.cur
	defer func() {
		if p := recover(); p != nil {
			if !boltPanic(p) {
				panic(p)
			}
			b = nil
			err = &CorruptError{Segment: s.info.Index, Seq: r.lastSeq, After: r.lastSeq != 0,
				Err: fmt.Errorf("damaged page (bbolt failed: %v); skipping it", p)}
			s.broken = true
		}
	}()
	if s.broken {
		if !r.skipDamage() {
			return nil, io.EOF
		}
	}
	for {
		rec, startChunk, err := s.log.readRecord(r.rec[:0])
		if !s.log.inPlace {
			r.rec = rec[:0] // gathered (and maybe grown) in r.rec: keep it
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			ce := &CorruptError{Segment: s.info.Index, Seq: r.lastSeq, After: r.lastSeq != 0, Err: err}
			if rerr := s.log.resyncFrom(startChunk); rerr != nil && rerr != io.EOF {
				r.closeCur()
			}
			return nil, ce
		}
		var h recHeader
		var derr error
		if p := s.log.pre; p != nil {
			// Decoded ahead, by the same decodeRecord (see inflate.go).
			h, r.batch = p.h, p.batch
		} else {
			r.dec.crcVerified = s.log.verified
			h, derr = r.dec.decodeRecord(rec, &r.batch, &r.loss)
		}
		if derr != nil {
			ce := &CorruptError{Segment: s.info.Index, Seq: h.seq, Err: derr}
			// Go on right after the record if what follows looks like the
			// next record; else resync at the next chunk where one starts.
			next, ok := s.log.plausibleNext(r.lastSeq, h.seq)
			if errors.Is(derr, errCRC) && h.seq != r.lastSeq+1 && !(ok && next == h.seq+1) {
				// The header itself may be damaged: name the batch by position.
				ce.Seq, ce.After = r.lastSeq, r.lastSeq != 0
				ce.Err = fmt.Errorf("record claiming batch %d: %v", h.seq, derr)
			}
			if !ok {
				if rerr := s.log.resyncFrom(startChunk); rerr != nil && rerr != io.EOF {
					r.closeCur()
				}
			}
			if ce.Seq == r.lastSeq+1 && !ce.After {
				r.lastSeq = ce.Seq
			}
			return nil, ce
		}
		if h.seq <= r.opts.After {
			continue // the caller has it
		}
		if r.known && h.seq <= r.lastSeq {
			// Sequence numbers only increase through a recording: a record
			// again (a copy of an earlier segment) is damage, and the rest
			// of the segment is not delivered.
			return nil, r.corrupt(fmt.Errorf("batch %d comes after batch %d: sequence numbers go back (a copy of an earlier segment?); the rest of the segment is not read", h.seq, r.lastSeq))
		}
		var gap *CorruptError
		if h.seq > r.lastSeq+1 && r.known {
			gap = r.gapError(s.info.Index, h.seq)
		}
		r.lastSeq, r.known, r.gapSeg, s.log.skipped = h.seq, true, 0, nil
		b, err := r.selectRecord(&h)
		if gap != nil {
			// Report the lost records first; the record goes next.
			r.pendBatch, r.pendErr = b != nil, err
			return nil, gap
		}
		if b != nil || err != nil {
			return b, err
		}
	}
}

// selectRecord returns the batch just decoded if it is selected, or nil;
// it passes loss points to OnLoss.
func (r *Reader) selectRecord(h *recHeader) (*Batch, error) {
	s := r.cur
	if int(h.stream) >= len(s.names) {
		return nil, &CorruptError{Segment: s.info.Index, Seq: h.seq, Err: fmt.Errorf("stream number %d not declared", h.stream)}
	}
	name := s.names[h.stream]
	if r.streams != nil && !r.streams[name] {
		return nil, nil
	}
	if h.typ == recLoss {
		r.loss.Stream = name
		t := timeNS(r.loss.Time)
		if r.opts.OnLoss != nil && t >= r.from && t < r.to && t >= r.seek {
			r.opts.OnLoss(r.loss)
		}
		return nil, nil
	}
	if k := s.kinds[h.stream]; Kind(h.kind) != k {
		// Handlers take one kind of event per stream: a batch of another
		// kind is damage, reported, not dropped.
		return nil, &CorruptError{Segment: s.info.Index, Seq: h.seq, Err: fmt.Errorf("batch of kind %s in stream %q, which is declared %s: not delivered", Kind(h.kind), name, k)}
	}
	b := &r.batch
	b.Stream = name
	if r.from != math.MinInt64 || r.to != math.MaxInt64 || r.seek != math.MinInt64 {
		mn, mx, ok := b.TimeSpan()
		if !ok {
			return nil, nil
		}
		if mx < r.seek || mx < r.from || mn >= r.to {
			return nil, nil
		}
		r.seek = math.MinInt64 // found the seek point
	}
	return b, nil
}
