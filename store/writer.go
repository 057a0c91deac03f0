package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	// SyncInterval (the default) commits every FlushInterval or FlushBytes,
	// with bbolt's fdatasync ordering (data pages, then the meta page): a
	// crash or power loss loses at most the last flush interval.
	SyncInterval SyncPolicy = iota
	// SyncAlways commits and syncs every Append before it returns.
	SyncAlways
	// SyncNever commits like SyncInterval but never syncs (bbolt NoSync)
	// except when a segment is closed: a process crash loses at most one
	// interval, a power loss may lose more.
	SyncNever
)

// Writer appends batches to a recording. Its methods are safe for
// concurrent use.
//
// Append only encodes the batch into a pending buffer; a committer goroutine
// writes the buffers to bbolt (one transaction per buffer) every
// FlushInterval or when FlushBytes are pending, so that the caller (a BPF
// buffer reader) is not held up by disk I/O. At most one buffer is being
// committed and one waits while a third fills: Append blocks when the disk
// falls behind that far, which bounds memory to about 3 x FlushBytes.
type Writer struct {
	dir  string
	opts WriterOptions
	// The log chunk layout of the format written: full chunk value, log
	// bytes in a full chunk, and bytes of a leaf of two full chunks.
	cvalue, cdata, leaf int

	// Append side, under mu.
	mu        sync.Mutex
	cond      *sync.Cond // signalled when a job is done
	meta      Meta
	streamIDs map[string]uint16
	seq       uint64 // last assigned sequence number
	pending   []byte // encoded records of the open buffer
	starts    []int  // where each record starts in pending
	scratch   []byte
	groups    []indexEntry // index groups completed in pending
	group     indexEntry   // the current index group (seq 0: none yet)
	groupLen  int          // log bytes in the current group
	ratio     float64      // stored/raw bytes of the last commit (compression)
	appendSeg int          // the segment new records go to
	segData   int64        // estimated file bytes of the records in appendSeg
	segOpened time.Time    // when appendSeg started
	summary   SegmentSummary
	queue     []*job // detached buffers, in order
	free      [][]byte
	err       error // sticky: the writer stopped
	stopping  bool

	committed atomic.Uint64 // last committed sequence number
	wake      chan struct{}
	wg        sync.WaitGroup

	// Commit side: the committer goroutine only (and Create before it runs).
	db        *bolt.DB
	seg       int // index of the open segment
	segPath   string
	segFile   os.FileInfo
	segSize   int64 // bytes used in the open segment after the last commit
	nextChunk uint64
	cgroup    indexEntry // the last index group placed in the open segment
	zbuf      []byte     // records after compression
	zstarts   []int
	valbuf    []byte
	keybuf    []byte
	closed    []closedSeg
	deleted   *Deleted
	// dirLock holds the recording directory's lock while the writer
	// lives (lockDir), under mu.
	dirLock *os.File
	// deletedCopy is deleted as of the last retention, for Deleted (under mu).
	deletedCopy *Deleted
	cerr        error // commit side failed: only closing is left
}

// Create starts a new recording in dir (created 0700 if missing, an
// existing directory's mode is left alone; it must not already hold
// segments) and opens its first segment.
func Create(dir string, meta Meta, opts WriterOptions) (*Writer, error) {
	opts.fill()
	// A directory Create makes is private (0700, whatever the umask); an
	// existing one (record -o .) keeps its mode: it is the user's, and
	// the segment files in it are private anyway.
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: creating recording directory: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: recording directory: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("store: recording directory: %w", err)
	}
	if err := opts.checkRetention(); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if len(segs) > 0 {
		lock.Close()
		return nil, fmt.Errorf("store: %s already holds a recording (%d segments); choose a new directory", dir, len(segs))
	}
	names := map[string]bool{}
	for _, s := range meta.Streams {
		if s.Name == "" || names[s.Name] {
			return nil, fmt.Errorf("store: stream name %q empty or declared twice", s.Name)
		}
		if len(s.Layout) > MaxLayoutSize {
			lock.Close()
			return nil, fmt.Errorf("store: stream %s: layout of %d bytes, more than %d", s.Name, len(s.Layout), MaxLayoutSize)
		}
		names[s.Name] = true
	}
	if len(meta.Streams) > math.MaxUint16 {
		return nil, errors.New("store: too many streams")
	}
	meta.FormatVersion = int(opts.format)
	if meta.Started.IsZero() {
		meta.Started = time.Now()
	}
	w := &Writer{dir: dir, opts: opts, meta: meta, wake: make(chan struct{}, 1), dirLock: lock}
	w.cvalue = chunkValueOf(opts.format)
	w.cdata = w.cvalue - 4
	w.leaf = 16 + 2*(16+8+w.cvalue)
	w.cond = sync.NewCond(&w.mu)
	w.streamIDs = make(map[string]uint16, len(meta.Streams))
	for i, s := range meta.Streams {
		w.streamIDs[s.Name] = uint16(i)
	}
	if err := w.openSegment(1); err != nil {
		lock.Close()
		return nil, err
	}
	w.appendSeg = 1
	w.resetAppendSegment()
	// The first buffer at its full size: growing it by appends would copy
	// it about twice over while the caller waits.
	w.pending = make([]byte, 0, opts.FlushBytes+opts.FlushBytes/8)
	w.wg.Add(1)
	go w.committer()
	return w, nil
}

// resetAppendSegment starts the append-side state of a new segment.
func (w *Writer) resetAppendSegment() {
	w.summary = SegmentSummary{}
	w.segData = 0
	w.segOpened = time.Now()
	w.groupLen = indexEvery // the first record starts a group
	w.group = indexEntry{}
	w.groups = w.groups[:0]
}

// Meta returns the recording's metadata (streams included).
func (w *Writer) Meta() Meta {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.meta
	m.Segment = w.appendSeg
	m.Streams = append([]StreamInfo(nil), w.meta.Streams...)
	return m
}

// AddStream declares a new stream; it is recorded in the open segment's
// metadata before any record of it, and in every later segment.
func (w *Writer) AddStream(s StreamInfo) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stoppedLocked(); err != nil {
		return err
	}
	if _, ok := w.streamIDs[s.Name]; ok || s.Name == "" {
		return fmt.Errorf("store: stream name %q empty or declared twice", s.Name)
	}
	if len(s.Layout) > MaxLayoutSize {
		return fmt.Errorf("store: stream %s: layout of %d bytes, more than %d", s.Name, len(s.Layout), MaxLayoutSize)
	}
	if len(w.meta.Streams) >= math.MaxUint16 {
		return errors.New("store: too many streams")
	}
	w.meta.Streams = append(w.meta.Streams, s)
	w.streamIDs[s.Name] = uint16(len(w.meta.Streams) - 1)
	meta := w.meta
	meta.Segment = w.appendSeg
	mj, err := json.Marshal(&meta)
	if err != nil {
		return err
	}
	// Records appended so far go first, then the new metadata.
	j := w.detachLocked(false, false)
	j.meta = mj
	w.enqueueLocked(j)
	return nil
}

// Append assigns b the next sequence number (b.Seq) and adds it to the
// recording. It is committed at the next flush (before Append returns under
// SyncAlways). Append does not keep b or its events. It stores b.Events:
// a batch with Ringbuf events (read with ReaderOptions.RingbufEvents) is
// refused.
func (w *Writer) Append(b *Batch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stoppedLocked(); err != nil {
		return err
	}
	id, ok := w.streamIDs[b.Stream]
	if !ok {
		return fmt.Errorf("store: batch of undeclared stream %q (declare it in Meta.Streams or with AddStream)", b.Stream)
	}
	if k := w.meta.Streams[id].Kind; b.Kind != k {
		return fmt.Errorf("store: batch of kind %s for stream %q, which is declared %s", b.Kind, b.Stream, k)
	}
	if len(b.Ringbuf) > 0 {
		return fmt.Errorf("store: batch of stream %q has its events in Ringbuf: Append stores Events (read without ReaderOptions.RingbufEvents to copy a recording)", b.Stream)
	}
	if err := w.checkMissed(b.Stream, b.Loss); err != nil {
		return err
	}
	b.Seq = w.seq + 1
	start := len(w.pending)
	var st batchStats
	var err error
	w.pending, w.scratch, st, err = appendBatchRecord(w.pending, w.scratch, b, id, false) // compressed by the committer
	if err != nil {
		w.pending = w.pending[:start]
		b.Seq = 0
		return err
	}
	w.seq++
	w.added(start, st.minT, st.maxT)
	w.summary.addBatch(b, st.payload, st.minT, st.maxT, st.perfLost)
	return w.afterAppend()
}

// checkMissed refuses a KernelMissed count in a format that cannot hold
// it (the writer of an older format, which tests use).
func (w *Writer) checkMissed(stream string, l Loss) error {
	if l.KernelMissed != 0 && w.opts.format < 3 {
		return fmt.Errorf("store: stream %q: format %d cannot hold kernel_missed (format 3 can)", stream, w.opts.format)
	}
	return nil
}

// AppendLoss records a point of a stream's loss-counter time series (the
// recorder calls it periodically, also when no batch arrives).
func (w *Writer) AppendLoss(stream string, t time.Time, l Loss) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stoppedLocked(); err != nil {
		return err
	}
	id, ok := w.streamIDs[stream]
	if !ok {
		return fmt.Errorf("store: loss point of undeclared stream %q", stream)
	}
	if err := w.checkMissed(stream, l); err != nil {
		return err
	}
	w.seq++
	p := LossPoint{Seq: w.seq, Stream: stream, Time: t, Loss: l}
	start := len(w.pending)
	w.pending = appendLossRecord(w.pending, &p, id)
	w.added(start, math.MaxInt64, math.MinInt64)
	w.summary.addLoss(&p)
	return w.afterAppend()
}

// added notes a record appended to pending at start.
func (w *Writer) added(start int, minT, maxT int64) {
	w.starts = append(w.starts, start)
	if w.groupLen >= indexEvery {
		if w.group.seq != 0 {
			w.groups = append(w.groups, w.group)
		}
		// off is the record's index in pending until the commit places it.
		w.group = indexEntry{seq: w.seq, off: uint32(len(w.starts) - 1), rel: true, minT: math.MaxInt64, maxT: math.MinInt64}
		w.groupLen = 0
	}
	w.groupLen += len(w.pending) - start
	w.group.minT = min(w.group.minT, minT)
	w.group.maxT = max(w.group.maxT, maxT)
}

// Chunk layout of a commit of n log bytes: full chunks of w.cdata bytes
// while that much is left, then the rest in small chunks of at most
// smallData bytes (format 1's chunk). bbolt rewrites the last leaf of the
// log, which holds the last two to four chunks, at every commit: small
// chunks at the end keep that rewrite to a few KiB whatever the leaf size,
// while the full chunks fill whole leaves, each written as one contiguous
// run.
const smallData = chunkValueV1 - 4

// chunkCount returns the number of chunks of a commit of n bytes.
func (w *Writer) chunkCount(n int) int {
	full := n / w.cdata
	return full + (n-full*w.cdata+smallData-1)/smallData
}

// chunkSpan returns the log bytes [lo, hi) of chunk c (counted from the
// commit's first) of a commit of n bytes.
func (w *Writer) chunkSpan(c, n int) (lo, hi int) {
	full := n / w.cdata
	if c < full {
		return c * w.cdata, (c + 1) * w.cdata
	}
	lo = full*w.cdata + (c-full)*smallData
	return lo, min(lo+smallData, n)
}

// chunkOf returns the chunk (counted from the commit's first) and offset of
// log byte pos of a commit of n bytes.
func (w *Writer) chunkOf(pos, n int) (c, off int) {
	full := n / w.cdata
	if pos < full*w.cdata {
		return pos / w.cdata, pos % w.cdata
	}
	rel := pos - full*w.cdata
	return full + rel/smallData, rel % smallData
}

// estimate estimates the file bytes that n pending bytes will take, after
// compression as good as at the last commit: half a leaf for each full
// chunk (two fill a leaf), and the last, partial chunk rounded up to half
// a page.
func (w *Writer) estimate(n int) int64 {
	if !w.opts.Uncompressed && w.ratio > 0 {
		n = int(float64(n) * w.ratio)
	}
	if n <= 0 {
		return 0
	}
	full, rest := n/w.cdata, n%w.cdata
	est := int64(full) * int64(w.leaf/2)
	if rest > 0 {
		const half = pageSize / 2
		est += int64((rest + 4 + 16 + 8 + half - 1) / half * half)
	}
	return est
}

func (w *Writer) afterAppend() error {
	switch {
	case w.opts.Sync == SyncAlways:
		j := w.detachLocked(false, false)
		j.done = make(chan error, 1)
		w.enqueueLocked(j)
		w.mu.Unlock()
		err := <-j.done
		w.mu.Lock()
		return err
	case len(w.pending) >= w.opts.FlushBytes || w.segData+w.estimate(len(w.pending)) >= w.segDataLimit():
		// Backpressure: one buffer committing, one waiting at most.
		for len(w.queue) > 0 && w.err == nil {
			w.cond.Wait()
		}
		if w.err != nil {
			return w.err
		}
		if w.stopping {
			return nil // Close took the pending records and commits them
		}
		w.enqueueLocked(w.detachLocked(false, false))
	}
	return nil
}

// segOverhead is the file size of a segment without records: two meta
// pages, the freelist and the root, meta, log and index pages.
const segOverhead = 4 * pageSize

// segDataLimit is the estimated file bytes of records after which the open
// segment is full: what MaxSegmentBytes leaves after the empty segment's
// overhead, but at least half of MaxSegmentBytes, so that a limit at or
// below the overhead does not rotate at every record.
func (w *Writer) segDataLimit() int64 {
	return max(w.opts.MaxSegmentBytes-segOverhead, w.opts.MaxSegmentBytes/2)
}

// detachLocked hands the pending records to a job, assigning their chunk
// numbers and index positions, and decides rotation: the job closes the
// segment (and opens the next unless closing) when the segment is full,
// too old, or closing is set.
func (w *Writer) detachLocked(closing, tick bool) *job {
	j := &job{}
	if len(w.starts) > 0 {
		j.groups = append(append(j.groups, w.groups...), w.group)
		w.group.rel = false // continues in later jobs, placed by this one
		j.data, j.starts = w.pending, w.starts
		j.first, j.last = w.seq-uint64(len(w.starts))+1, w.seq
		w.segData += w.estimate(len(w.pending))
		w.groups = w.groups[:0]
		w.pending, w.starts = nil, nil
		if k := len(w.free); k > 0 {
			w.pending, w.free = w.free[k-1][:0], w.free[:k-1]
		} else {
			// At its full size at once, as Create makes the first: grown
			// by appends, it would be copied about twice over, on the
			// appending (reader's) goroutine, and leave garbage behind.
			w.pending = make([]byte, 0, w.opts.FlushBytes+w.opts.FlushBytes/8)
		}
	}
	full := w.segData > 0 && w.segData >= w.segDataLimit()
	old := tick && w.opts.MaxSegmentAge > 0 && time.Since(w.segOpened) >= w.opts.MaxSegmentAge && w.summary.Records > 0
	if closing || full || old {
		sum := w.summary
		j.closeSeg = &sum
		j.openNext = !closing
		if !closing {
			w.appendSeg++
			w.resetAppendSegment()
		}
	}
	return j
}

// enqueueLocked queues j for the committer (if there is anything to do).
func (w *Writer) enqueueLocked(j *job) {
	if j.data == nil && j.meta == nil && j.closeSeg == nil && j.done == nil && !j.sync {
		return
	}
	w.queue = append(w.queue, j)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush commits everything appended so far and makes it durable (also
// under SyncNever), and returns when that is done.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if err := w.stoppedLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	j := w.detachLocked(false, false)
	j.sync = true
	j.done = make(chan error, 1)
	w.enqueueLocked(j)
	w.mu.Unlock()
	return <-j.done
}

// stoppedLocked returns why the writer takes no more records, or nil.
func (w *Writer) stoppedLocked() error {
	if w.err != nil {
		return w.err
	}
	if w.stopping {
		return errClosed
	}
	return nil
}

// Committed returns the sequence number of the last committed record: every
// record up to it survives a crash of the process (and, unless SyncNever, of
// the machine).
func (w *Writer) Committed() uint64 { return w.committed.Load() }

// Segment returns the index of the segment that new records go to.
func (w *Writer) Segment() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appendSeg
}

// Err returns the error that stopped the writer, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == errClosed {
		return nil
	}
	return w.err
}

// Close commits what is pending, closes the open segment with its summary
// and stops the writer. It returns the error that stopped the writer, if
// any; what was committed before stays readable.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.stopping {
		defer w.mu.Unlock()
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	w.stopping = true
	j := w.detachLocked(true, false)
	j.done = make(chan error, 1)
	w.enqueueLocked(j)
	w.mu.Unlock()
	err := <-j.done
	w.wg.Wait()
	if w.db != nil {
		w.db.Close()
		w.db = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirLock != nil {
		w.dirLock.Close() // readers now see a finished recording
		w.dirLock = nil
	}
	if w.err == nil {
		w.err = errClosed
	}
	if w.err == errClosed {
		return nil
	}
	if err == nil {
		err = w.err
	}
	return err
}

var errClosed = errors.New("store: writer is closed")
