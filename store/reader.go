package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
}

// SegmentInfo describes one segment file of a recording.
type SegmentInfo struct {
	// Index is the segment's number; Path its file.
	Index int    `json:"index"`
	Path  string `json:"path"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// Closed says the writer closed the segment (its Summary is set).
	Closed bool `json:"closed"`
	// Summary is the summary written at close (nil if not closed).
	Summary *SegmentSummary `json:"summary,omitempty"`
	// Meta is the segment's metadata (zero if unreadable).
	Meta Meta `json:"-"`
	// Skipped, if not empty, says why the segment is not read.
	Skipped string `json:"skipped,omitempty"`
	// BeingWritten says a writer holds the segment open.
	BeingWritten bool `json:"being_written,omitempty"`

	deleted *Deleted
	err     error // why the segment cannot be read (also in Skipped)
}

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

// Reader iterates the batches of a recording in recorded order. It reads
// closed segments and segments left unclosed by a writer that stopped; a
// segment still locked by its writer is skipped (see Segments). A Reader is
// not safe for concurrent use.
type Reader struct {
	dir     string
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
// reported by Segments and, when iteration reaches it, by Next.
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
	// The first segment is inspected first: if it is closed, and no time
	// range may skip it, it is loaded (its pages checked) on another core
	// while the others are inspected, for the first Next.
	r.segs = make([]SegmentInfo, len(files))
	r.segs[0] = inspectSegment(files[0])
	if opts.From.IsZero() {
		r.preloadNext()
	}
	inspectSegments(files[1:], r.segs[1:])
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

// errForeign: a segment of another recording among this one's.
var errForeign = errors.New("belongs to another recording")

// markForeign marks as damage (never delivered) the segments whose
// metadata names another segment (a copy, or a renamed file) or whose
// recording ID is not the recording's: the one most readable segments
// carry, or on a tie the oldest segment's, so that a segment of another
// recording saved among these is outnumbered. Readers that meet a copy
// anyway see its sequence numbers go back (nextInSegment).
func markForeign(sis []SegmentInfo) {
	count := map[string]int{}
	id := ""
	for i := range sis {
		if sis[i].err != nil {
			continue
		}
		rid := sis[i].Meta.RecordingID
		count[rid]++
		if id == "" || count[rid] > count[id] {
			id = rid
		}
	}
	for i := range sis {
		si := &sis[i]
		if si.err == nil && si.Meta.RecordingID != id {
			si.err = fmt.Errorf("%w (recording ID %q, this recording's is %q): not read", errForeign, si.Meta.RecordingID, id)
			si.Skipped = si.err.Error()
		}
	}
	for i := range sis {
		si := &sis[i]
		if si.err == nil && si.Meta.Segment != si.Index {
			si.err = fmt.Errorf("metadata says it is %s (a copy or a renamed file): not read", segName(si.Meta.Segment))
			si.Skipped = si.err.Error()
		}
	}
}

// inspectSegments inspects files into sis, on up to four goroutines when
// there are cores for them: each inspection opens a file and decodes its
// metadata, so a recording of many segments opens that much sooner.
func inspectSegments(files []segFile, sis []SegmentInfo) {
	workers := min(runtime.GOMAXPROCS(0), len(files), 4)
	if workers < 2 {
		for i, f := range files {
			sis[i] = inspectSegment(f)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(files); i = int(next.Add(1)) - 1 {
				sis[i] = inspectSegment(files[i])
			}
		})
	}
	wg.Wait()
}

// recordingSegments lists the segments of the recording in dir, and
// fails if there are none.
func recordingSegments(dir string) ([]segFile, error) {
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return nil, fmt.Errorf("store: %s holds no recording (no *.seg files)", dir)
	}
	return files, nil
}

// ReadMeta returns the metadata of the recording in dir, as Open and
// Reader.Meta would, from its newest readable segment only: the others are
// not opened. It fails if dir holds no segment or if a segment it opens
// (the newest readable one, and any newer that are not) has a newer format
// version; Open also fails for an older segment with a newer version.
func ReadMeta(dir string) (Meta, error) {
	files, err := recordingSegments(dir)
	if err != nil {
		return Meta{}, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		si := inspectSegment(files[i])
		if errors.Is(si.err, ErrNewerFormat) {
			return Meta{}, fmt.Errorf("store: %s: %w", segName(files[i].index), si.err)
		}
		if si.err == nil {
			return si.Meta, nil
		}
	}
	return Meta{}, nil
}

// startBG gives r what its background reading needs. bg does not
// reference r: a Reader dropped without Close becomes unreachable, and
// its goroutines are stopped then.
func (r *Reader) startBG() {
	r.bg = new(readerBG)
	runtime.AddCleanup(r, (*readerBG).stop, r.bg)
}

// preloading is a segment loaded (read and checked) ahead.
type preloading struct {
	path string
	done chan *loadedSeg
}

// preloadNext starts loading the next segment, if it is closed (so it
// cannot change), on a second core while the current one is read: the page
// check costs as much per byte as a third of reading the log.
func (r *Reader) preloadNext() {
	if r.bg.pre != nil || r.next >= len(r.segs) || runtime.GOMAXPROCS(0) < 2 {
		return
	}
	si := &r.segs[r.next]
	if si.err != nil || si.BeingWritten || !si.Closed {
		return
	}
	p := &preloading{path: si.Path, done: make(chan *loadedSeg, 1)}
	go func() { p.done <- loadSegment(p.path) }()
	r.bg.pre = p
}

// takePreload returns the preloaded segment at path, or nil; a segment
// preloaded that is not path is closed.
func (r *Reader) takePreload(path string) *loadedSeg {
	p := r.bg.pre
	if p == nil {
		return nil
	}
	r.bg.pre = nil
	m := <-p.done
	if p.path != path {
		m.close()
		m = nil
	}
	return m
}

// inspectSegment reads a segment's metadata and closes it again.
func inspectSegment(f segFile) (si SegmentInfo) {
	si = SegmentInfo{Index: f.index, Path: f.path}
	if f.bad != nil {
		si.err = f.bad
		si.Skipped = f.bad.Error()
		return si
	}
	if fi, err := os.Lstat(f.path); err == nil {
		si.Size = fi.Size()
	}
	defer panicOnFault()()
	if si.Size < 2*pageSize {
		si.err = fmt.Errorf("file of %d bytes is too small to be a segment: %w", si.Size, errTooSmall)
		si.Skipped = si.err.Error()
		return si
	}
	fail := func(err error) SegmentInfo {
		if errors.Is(err, errBeingWritten) {
			si.BeingWritten = true
		} else if terr := truncated(f.path); terr != nil && !errors.Is(err, ErrNewerFormat) {
			err = terr // what bbolt said of it is noise
		}
		si.err = err
		si.Skipped = err.Error()
		return si
	}
	db, err := openSegmentRO(f.path)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		sm, err := readSegMeta(tx)
		if err != nil {
			return err
		}
		si.Meta = sm.meta
		si.Summary = sm.summary
		si.Closed = sm.summary != nil
		si.deleted = sm.deleted
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return si
}

// Meta returns the metadata of the newest readable segment (which declares
// every stream).
func (r *Reader) Meta() Meta { return r.meta }

// Segments describes every segment file, including the skipped ones.
func (r *Reader) Segments() []SegmentInfo { return r.segs }

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
	return nil
}

func (r *Reader) closeCur() {
	if r.cur == nil {
		return
	}
	r.skipped = r.cur.log.skipped
	r.cur.log.close()
	func() {
		defer func() { _ = recover() }()
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
			var ce *CorruptError
			if err != nil && !errors.As(err, &ce) {
				return
			}
		}
	}
}

// Next returns the next selected batch, or io.EOF at the end. The batch and
// its events' Raw bytes are valid until the next call of Next or Close (buffers are
// reused). A *CorruptError names damaged data and is not terminal: call Next
// again to go on with the intact data after it.
func (r *Reader) Next() (*Batch, error) {
	defer panicOnFault()()
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
					ce.Seq, ce.Last = s.FirstSeq, s.LastSeq
					r.lastSeq, r.known = s.LastSeq, true
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

// startSegment prepares the sequence check for reading segment si from its
// start: if the last record is not known from the previous segment, the
// segment's summary or the recording's start say where it begins.
func (r *Reader) startSegment(si *SegmentInfo) {
	if r.known && r.prevIndex != 0 && si.Index > r.prevIndex+1 {
		r.gapSeg = r.prevIndex + 1
	}
	r.prevIndex = si.Index
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
		why = fmt.Sprintf("segment %06d missing or unreadable", r.gapSeg)
		if r.gapSeg != seg-1 {
			why = fmt.Sprintf("segments %06d-%06d missing or unreadable", r.gapSeg, seg-1)
		}
		seg = r.gapSeg
	} else if sk := r.cur.log.skipped; sk != nil {
		why = fmt.Sprintf("%v; skipped", sk)
	}
	msg := fmt.Sprintf("missing before batch %d (%s)", seq, why)
	return &CorruptError{Segment: seg, Seq: r.lastSeq + 1, Last: seq - 1, Err: errors.New(msg)}
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
			return &CorruptError{Segment: si.Index, Err: errors.New("deleted while reading (retention?)")}
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
		if recover() != nil {
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

// corrupt reports damage in the current segment and skips the rest of it.
func (r *Reader) corrupt(err error) error {
	ce := &CorruptError{Segment: r.cur.info.Index, Err: err}
	r.closeCur()
	return ce
}

// nextInSegment reads records until one is selected: it returns the batch,
// (nil, nil) to go on, io.EOF at the segment's end, or a *CorruptError.
func (r *Reader) nextInSegment() (b *Batch, err error) {
	s := r.cur
	defer func() {
		if p := recover(); p != nil {
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
		r.dec.crcVerified = s.log.verified
		h, derr := r.dec.decodeRecord(rec, &r.batch, &r.loss)
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

var errCRC = errors.New("crc mismatch")

// errTooSmall: a segment file smaller than two pages (a garbage file, or a
// writer killed while creating the segment).
var errTooSmall = errors.New("not a complete bbolt file")

// skipDamage repositions after bbolt panicked on a damaged page: it tries
// chunks further and further after the last one read until bbolt can seek
// there. It returns false if the rest of the segment is unreadable.
func (r *Reader) skipDamage() bool {
	s := r.cur
	base := s.log.chunk
	for step := uint64(1); step < 1<<62 && base+step > base; {
		ok, eof := func() (ok, eof bool) {
			defer func() {
				if recover() != nil {
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

// kvCursor walks the log bucket: a bbolt cursor or a chunkCursor.
type kvCursor interface {
	Seek(key []byte) (k, v []byte)
	Next() (k, v []byte)
}

// logStream reads the record log of a segment across its chunks.
type logStream struct {
	c        kvCursor
	maxValue int    // the largest chunk value of the segment's format
	chunk    uint64 // current chunk number
	data     []byte // its log bytes
	pos      int    // read position in data
	have     bool
	inPlace  bool // the last record read is returned in place, not in dst
	verified bool // and its checksum was verified by the readahead
	// skipped is the first damaged chunk toStart skipped (nil: none),
	// until the reader reports the records lost with it.
	skipped error
}

// close stops the cursor's readahead, if any.
func (s *logStream) close() {
	if c, ok := s.c.(*chunkCursor); ok {
		c.close()
	}
}

// load makes k/v the current chunk.
func (s *logStream) load(k, v []byte) error {
	if k == nil {
		s.have = false
		return io.EOF
	}
	if len(k) != 8 {
		return fmt.Errorf("bad chunk key %x", k)
	}
	s.chunk = binary.BigEndian.Uint64(k)
	s.have = true
	if c, ok := s.c.(*chunkCursor); ok && c.err != nil {
		s.data, s.pos = nil, 0
		return fmt.Errorf("chunk %d: %v", s.chunk, c.err)
	}
	if len(v) < 4 || len(v) > s.maxValue {
		s.data, s.pos = nil, 0
		return fmt.Errorf("chunk %d: bad size %d", s.chunk, len(v))
	}
	s.data, s.pos = v[4:], 0
	return nil
}

// first positions at the first record of the log.
func (s *logStream) first() error {
	s.chunk = 0
	return s.toStart()
}

// toStart positions at the first record starting in the current chunk or
// a later one.
func (s *logStream) toStart() error {
	k, v := s.c.Seek(u64key(s.chunk))
	for ; k != nil; k, v = s.c.Next() {
		if err := s.load(k, v); err != nil {
			if s.skipped == nil {
				s.skipped = err
			}
			continue // a damaged chunk: try the next
		}
		off := binary.LittleEndian.Uint32(v[:4])
		if off != noStart && int(off) < len(s.data) {
			s.pos = int(off)
			return nil
		}
		if off != noStart && s.skipped == nil {
			s.skipped = fmt.Errorf("chunk %d: bad first-record offset %d", s.chunk, off)
		}
	}
	s.have = false
	return io.EOF
}

// seekRecord positions at the record at chunk/off (from the index).
func (s *logStream) seekRecord(chunk uint64, off uint32) error {
	k, v := s.c.Seek(u64key(chunk))
	if err := s.load(k, v); err != nil {
		return err
	}
	if s.chunk != chunk || int(off) > len(s.data) {
		return fmt.Errorf("index points to chunk %d offset %d, which does not exist", chunk, off)
	}
	s.pos = int(off)
	return nil
}

// resyncFrom positions at the first record that starts in a chunk after
// chunk.
func (s *logStream) resyncFrom(chunk uint64) error {
	s.chunk = chunk + 1
	return s.toStart()
}

// plausibleNext says whether the log at the current position ends or holds
// a record header that follows the last good record or the damaged one.
// The position is kept.
func (s *logStream) plausibleNext(lastGood, damaged uint64) (next uint64, ok bool) {
	if !s.have {
		return 0, true
	}
	chunk, pos := s.chunk, s.pos
	var tmp [headerSize]byte
	b, err := s.read(tmp[:0], headerSize)
	defer func() {
		if s.seekRecord(chunk, uint32(pos)) != nil {
			s.have = false
		}
	}()
	if err == io.ErrUnexpectedEOF && len(b) == 0 {
		return 0, true // end of the log
	}
	if err != nil {
		return 0, false
	}
	h, err := parseHeader(b)
	if err != nil {
		return 0, false
	}
	return h.seq, h.seq == lastGood+2 || h.seq == damaged+1
}

// read appends n bytes of the log to dst.
func (s *logStream) read(dst []byte, n int) ([]byte, error) {
	for n > 0 {
		if !s.have {
			return dst, io.ErrUnexpectedEOF
		}
		if s.pos >= len(s.data) {
			want := s.chunk + 1
			k, v := s.c.Next()
			if k == nil {
				s.have = false
				return dst, io.ErrUnexpectedEOF
			}
			if err := s.load(k, v); err != nil {
				return dst, err
			}
			if s.chunk != want {
				return dst, fmt.Errorf("chunk %d missing", want)
			}
			continue
		}
		m := min(n, len(s.data)-s.pos)
		dst = append(dst, s.data[s.pos:s.pos+m]...)
		s.pos += m
		n -= m
	}
	return dst, nil
}

// readRecord returns the next whole record, in place if it lies inside one
// chunk, else appended to dst, and says in which chunk it starts; io.EOF at
// the end.
func (s *logStream) readRecord(dst []byte) ([]byte, uint64, error) {
	if !s.have {
		return dst, s.chunk, io.EOF
	}
	if s.pos >= len(s.data) {
		// At a chunk end: is there more?
		k, v := s.c.Next()
		if k == nil {
			s.have = false
			return dst, s.chunk, io.EOF
		}
		want := s.chunk + 1
		if err := s.load(k, v); err != nil {
			return dst, s.chunk, err
		}
		if s.chunk != want {
			return dst, s.chunk - 1, fmt.Errorf("chunk %d missing", want)
		}
		if s.pos >= len(s.data) {
			return dst, s.chunk, fmt.Errorf("chunk %d: empty", s.chunk)
		}
	}
	start := s.chunk
	s.inPlace, s.verified = false, false
	// Most records lie inside one chunk: return them in place, without
	// copying (the copy was a third of the reader's own time). A record
	// that spans chunks is gathered into dst.
	if rest := s.data[s.pos:]; len(rest) >= headerSize {
		if n := int(binary.LittleEndian.Uint32(rest)); n >= headerSize && n <= len(rest) {
			if _, err := parseHeader(rest[:headerSize]); err == nil {
				if c, ok := s.c.(*chunkCursor); ok {
					s.verified = c.verified(s.pos)
				}
				s.pos, s.inPlace = s.pos+n, true
				return rest[:n:n], start, nil
			}
		}
	}
	dst, err := s.read(dst, headerSize)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errors.New("truncated record header")
		}
		return dst, start, err
	}
	h, err := parseHeader(dst)
	if err != nil {
		return dst, start, err
	}
	dst, err = s.read(dst, int(h.length)-headerSize)
	if err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("record of %d bytes truncated (end of segment)", h.length)
	}
	return dst, start, err
}
