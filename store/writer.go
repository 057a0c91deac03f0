package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SyncPolicy says when the writer makes committed data durable.
type SyncPolicy int

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

// String returns "interval", "always" or "never".
func (p SyncPolicy) String() string {
	switch p {
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "interval", "always" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("store: unknown sync policy %q (want interval, always or never)", s)
}

// Defaults of WriterOptions.
const (
	DefaultFlushInterval   = time.Second
	DefaultFlushBytes      = 4 << 20
	DefaultMaxSegmentBytes = 64 << 20
	DefaultMaxSegmentAge   = time.Hour
)

// DefaultCompress is whether batches are zstd-compressed by default.
//
// Measured on this project's machines (2 cores, virtio disk, ext4) by
// BenchmarkCompression and BenchmarkAppend on synthetic exec/syscall-like
// events (64-256 byte structs: timestamps, pids, small ints, zero padding,
// comm and library path strings; 128 events, about 21 KB, a batch), with
// zstd SpeedFastest per batch:
//
//	                       none            zstd
//	stored / raw bytes     1.018           0.177 (5.7x smaller)
//	encode, one core       2.3-4.0 GB/s    131-196 MB/s
//	decode, one core       2.4-5.3 GB/s    386-537 MB/s
//	Append end to end      87-122 MB/s     78-126 MB/s (disk-bound: noisy)
//	disk / payload         1.04            0.18
//
// Compression saves more than four fifths of the disk and of the device
// writes at about 5-8 ns of CPU per event byte (compression runs in the
// committer goroutine, off the caller's path). Append throughput is the same
// within the noise, because bbolt's commits, not the CPU, bound it. Real
// events (pointers, hashes, payload bytes) compress less than these. The
// default stays off: a recorder must first not lose events, and on a small
// host the CPU that zstd takes at high event rates is taken from the BPF
// buffer readers; turn it on (WriterOptions.Compress, ebpfrec record
// --compress) when disk space or retention matter more, as for a flight
// recorder.
const DefaultCompress = false

// WriterOptions tune a Writer. Zero values mean the defaults.
type WriterOptions struct {
	// FlushInterval is the longest time an appended batch waits before it
	// is committed (default 1s).
	FlushInterval time.Duration
	// FlushBytes commits as soon as this many record bytes are pending
	// (default 4 MiB). It also bounds the writer's memory, with the largest
	// single batch.
	FlushBytes int
	// Sync is the sync policy (default SyncInterval).
	Sync SyncPolicy
	// MaxSegmentBytes rotates to a new segment when the open one reaches
	// this size (default 64 MiB). An empty segment already takes about
	// 16 KiB (bbolt's meta, freelist and bucket pages), so smaller limits
	// are raised to 32 KiB, and a segment is only rotated once the records
	// appended to it reach at least half the limit: a small limit never
	// rotates at every record.
	MaxSegmentBytes int64
	// MaxSegmentAge rotates to a new segment when the open one is this old
	// (default 1h; negative: never).
	MaxSegmentAge time.Duration
	// KeepSegments keeps at most this many closed segments, deleting the
	// oldest first (0: no limit).
	KeepSegments int
	// KeepBytes keeps at most this many bytes of closed segments, deleting
	// the oldest first (0: no limit).
	KeepBytes int64
	// Compress compresses each batch with zstd when that saves space.
	Compress bool

	// format is the format version to write (0: FormatVersion); tests set
	// 1 to make recordings of the previous version.
	format uint32
}

func (o *WriterOptions) fill() {
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = DefaultFlushBytes
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	o.MaxSegmentBytes = max(o.MaxSegmentBytes, minSegmentBytes)
	if o.MaxSegmentAge == 0 {
		o.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if o.format == 0 {
		o.format = FormatVersion
	}
}

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
	cerr      error // commit side failed: only closing is left
}

// job is a unit of work for the committer, in append order.
type job struct {
	data        []byte // records, uncompressed
	starts      []int
	groups      []indexEntry // index groups: rel ones start at record off
	first, last uint64       // sequence range of data
	meta        []byte       // new metadata JSON to write, if any
	sync        bool         // sync even under SyncNever (Flush)
	closeSeg    *SegmentSummary
	openNext    bool // after closing, open the next segment
	done        chan error
}

type closedSeg struct {
	index   int
	path    string
	size    int64
	summary SegmentSummary
}

// Create starts a new recording in dir (created 0700 if missing; it must
// not already hold segments) and opens its first segment.
func Create(dir string, meta Meta, opts WriterOptions) (*Writer, error) {
	opts.fill()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating recording directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: recording directory: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		return nil, fmt.Errorf("store: %s already holds a recording (%d segments); choose a new directory", dir, len(segs))
	}
	names := map[string]bool{}
	for _, s := range meta.Streams {
		if s.Name == "" || names[s.Name] {
			return nil, fmt.Errorf("store: stream name %q empty or declared twice", s.Name)
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
	w := &Writer{dir: dir, opts: opts, meta: meta, wake: make(chan struct{}, 1)}
	w.cvalue = chunkValueOf(opts.format)
	w.cdata = w.cvalue - 4
	w.leaf = 16 + 2*(16+8+w.cvalue)
	w.cond = sync.NewCond(&w.mu)
	w.streamIDs = make(map[string]uint16, len(meta.Streams))
	for i, s := range meta.Streams {
		w.streamIDs[s.Name] = uint16(i)
	}
	if err := w.openSegment(1); err != nil {
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

// openSegment creates segment index and writes its metadata.
func (w *Writer) openSegment(index int) error {
	path := filepath.Join(w.dir, segmentName(index))
	name := segName(index)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: %s: %s already exists", name, path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		PageSize:        pageSize,
		InitialMmapSize: int(w.opts.MaxSegmentBytes) + 4*w.opts.FlushBytes + (1 << 20),
		NoSync:          w.opts.Sync == SyncNever,
		// The file grows by the writes themselves: fdatasync at each commit
		// makes the new size durable with the data, so bbolt's truncate and
		// fsync at every growth step would only cost time.
		NoGrowSync: true,
	})
	if err != nil {
		return fmt.Errorf("store: %s: creating %s: %w", name, path, err)
	}
	fail := func(err error) error {
		db.Close()
		os.Remove(path)
		return fmt.Errorf("store: %s: %w", name, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	w.mu.Lock()
	meta := w.meta
	meta.Streams = append([]StreamInfo(nil), w.meta.Streams...)
	w.mu.Unlock()
	meta.Segment = index
	mj, err := json.Marshal(&meta)
	if err != nil {
		return fail(err)
	}
	var dj []byte
	if w.deleted != nil {
		dj, _ = json.Marshal(w.deleted)
	}
	var size int64
	err = db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		var f [4]byte
		binary.BigEndian.PutUint32(f[:], w.opts.format)
		if err := mb.Put(keyFormat, f[:]); err != nil {
			return err
		}
		if err := mb.Put(keyMeta, mj); err != nil {
			return err
		}
		if dj != nil {
			if err := mb.Put(keyDeleted, dj); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(bucketLog); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketIndex); err != nil {
			return err
		}
		size = tx.Size()
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("writing metadata: %w", err))
	}
	if err := syncDir(w.dir); err != nil {
		return fail(fmt.Errorf("syncing directory: %w", err))
	}
	w.db, w.seg, w.segPath, w.segFile = db, index, path, fi
	w.segSize = size
	w.nextChunk = 0
	w.cgroup = indexEntry{}
	return nil
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
	if w.opts.Compress && w.ratio > 0 {
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

// minSegmentBytes is the smallest MaxSegmentBytes: twice an empty segment.
const minSegmentBytes = 32 << 10

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

// committer runs the jobs in order, and detaches the pending buffer every
// FlushInterval.
func (w *Writer) committer() {
	defer w.wg.Done()
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			stop := w.stopping
			w.mu.Unlock()
			if stop {
				return
			}
			select {
			case <-w.wake:
			case <-t.C:
				w.mu.Lock()
				if w.err == nil && !w.stopping {
					w.enqueueLocked(w.detachLocked(false, true))
				}
				w.mu.Unlock()
			}
			continue
		}
		j := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()

		err := w.runJob(j)

		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		if err == nil {
			err = w.err
			if err == errClosed {
				err = nil
			}
		}
		if j.data != nil && len(w.free) < 2 {
			w.free = append(w.free, j.data[:0])
		}
		w.cond.Broadcast()
		w.mu.Unlock()
		if j.done != nil {
			j.done <- err
		}
	}
}

// runJob commits a job's records and does what else it asks. After a
// failure only closing the database is left.
func (w *Writer) runJob(j *job) error {
	if w.cerr != nil {
		if j.closeSeg != nil && !j.openNext && w.db != nil {
			w.db.Close()
			w.db = nil
		}
		return w.cerr
	}
	fail := func(err error) error {
		w.cerr = err
		if j.closeSeg != nil && !j.openNext && w.db != nil {
			w.db.Close()
			w.db = nil
		}
		return err
	}
	if j.data != nil {
		if err := w.commit(j); err != nil {
			return fail(err)
		}
	}
	if j.meta != nil {
		err := w.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyMeta, j.meta) })
		if err != nil {
			return fail(fmt.Errorf("store: %s: writing metadata: %w", segName(w.seg), err))
		}
	}
	if j.sync && w.opts.Sync == SyncNever {
		if err := w.db.Sync(); err != nil {
			return fail(fmt.Errorf("store: %s: sync: %w", segName(w.seg), err))
		}
	}
	if j.closeSeg != nil {
		if err := w.closeSegment(*j.closeSeg); err != nil {
			return fail(err)
		}
		if j.openNext {
			if err := w.retain(); err != nil {
				return fail(err)
			}
			if err := w.openSegment(w.seg + 1); err != nil {
				return fail(err)
			}
		}
	}
	return nil
}

// commit writes a job's records in one transaction.
func (w *Writer) commit(j *job) error {
	name := segName(w.seg)
	// A vanished directory does not stop writes to the open file: notice it.
	if fi, err := os.Stat(w.segPath); err != nil || !os.SameFile(fi, w.segFile) {
		if _, derr := os.Stat(w.dir); derr != nil {
			return fmt.Errorf("store: recording directory %s vanished (%v); records %d-%d not committed", w.dir, derr, j.first, j.last)
		}
		return fmt.Errorf("store: %s: file %s vanished or was replaced; records %d-%d not committed", name, w.segPath, j.first, j.last)
	}
	data, starts := j.data, j.starts
	if w.opts.Compress {
		// Compress here, off the caller's path: Append only encodes.
		w.zbuf, w.zstarts = w.zbuf[:0], w.zstarts[:0]
		for i, st := range starts {
			end := len(data)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			w.zstarts = append(w.zstarts, len(w.zbuf))
			w.zbuf = compressRecord(w.zbuf, data[st:end])
		}
		data, starts = w.zbuf, w.zstarts
	}
	// Place the index groups.
	groups := j.groups[:0:0]
	for _, g := range j.groups {
		if g.rel {
			c, off := w.chunkOf(starts[g.off], len(data))
			g.chunk = w.nextChunk + uint64(c)
			g.off = uint32(off)
			g.rel = false
		} else if g.seq == w.cgroup.seq {
			g.chunk, g.off = w.cgroup.chunk, w.cgroup.off
		} else {
			continue // started in an earlier segment
		}
		w.cgroup = g
		groups = append(groups, g)
	}
	// Lay out the chunks: keys and values must stay valid until the commit.
	n := w.chunkCount(len(data))
	if need := len(data) + 4*n; cap(w.valbuf) < need {
		w.valbuf = make([]byte, 0, need)
	}
	w.keybuf = w.keybuf[:0]
	w.valbuf = w.valbuf[:0]
	si := 0
	for c := 0; c < n; c++ {
		lo, hi := w.chunkSpan(c, len(data))
		for si < len(starts) && starts[si] < lo {
			si++
		}
		first := uint32(noStart)
		if si < len(starts) && starts[si] < hi {
			first = uint32(starts[si] - lo)
		}
		w.keybuf = binary.BigEndian.AppendUint64(w.keybuf, w.nextChunk+uint64(c))
		w.valbuf = binary.LittleEndian.AppendUint32(w.valbuf, first)
		w.valbuf = append(w.valbuf, data[lo:hi]...)
	}
	var size int64
	err := w.db.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bucketLog)
		lb.FillPercent = 1.0
		ib := tx.Bucket(bucketIndex)
		ib.FillPercent = 1.0
		v := w.valbuf
		for c := 0; c < n; c++ {
			lo, hi := w.chunkSpan(c, len(data))
			l := 4 + hi - lo
			if err := lb.Put(w.keybuf[c*8:c*8+8], v[:l:l]); err != nil {
				return err
			}
			v = v[l:]
		}
		for i := range groups {
			g := &groups[i]
			if err := ib.Put(u64key(g.seq), g.value(make([]byte, 0, indexValueSize))); err != nil {
				return err
			}
		}
		size = tx.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: %s: committing records %d-%d: %w", name, j.first, j.last, err)
	}
	w.segSize = size
	w.nextChunk += uint64(n)
	w.committed.Store(j.last)
	if w.opts.Compress {
		w.mu.Lock()
		w.ratio = float64(len(data)) / float64(len(j.data))
		w.mu.Unlock()
	}
	if cap(w.valbuf) > 2*w.opts.FlushBytes+(1<<20) { // after a huge batch
		w.valbuf, w.zbuf = nil, nil
	}
	return nil
}

// closeSegment writes the summary, syncs and closes the open segment and
// trims its file to the used size. Committer only.
func (w *Writer) closeSegment(sum SegmentSummary) error {
	name := segName(w.seg)
	sum.Closed = time.Now()
	sj, err := json.Marshal(&sum)
	if err != nil {
		return err
	}
	var size int64
	err = w.db.Update(func(tx *bolt.Tx) error {
		size = tx.Size()
		return tx.Bucket(bucketMeta).Put(keySummary, sj)
	})
	if err == nil {
		err = w.db.Sync()
	}
	if err != nil {
		w.db.Close()
		w.db = nil
		return fmt.Errorf("store: %s: closing: %w", name, err)
	}
	// The summary transaction may have grown the file by a page or two.
	_ = w.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	if err := w.db.Close(); err != nil {
		w.db = nil
		return fmt.Errorf("store: %s: closing: %w", name, err)
	}
	w.db = nil
	if f, err := os.OpenFile(w.segPath, os.O_WRONLY, 0); err == nil {
		if fi, err := f.Stat(); err == nil && fi.Size() > size {
			if f.Truncate(size) == nil {
				_ = f.Sync()
			}
		}
		f.Close()
	}
	w.closed = append(w.closed, closedSeg{index: w.seg, path: w.segPath, size: size, summary: sum})
	return nil
}

// retain deletes the oldest closed segments beyond KeepSegments/KeepBytes.
// Committer only.
func (w *Writer) retain() error {
	var total int64
	for _, c := range w.closed {
		total += c.size
	}
	removed := false
	for len(w.closed) > 0 &&
		((w.opts.KeepSegments > 0 && len(w.closed) > w.opts.KeepSegments) ||
			(w.opts.KeepBytes > 0 && total > w.opts.KeepBytes)) {
		c := w.closed[0]
		if err := os.Remove(c.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("store: retention: removing %s: %w", segName(c.index), err)
		}
		removed = true
		total -= c.size
		w.closed = w.closed[1:]
		d := w.deleted
		if d == nil {
			d = &Deleted{FirstSeq: c.summary.FirstSeq, From: c.summary.MinTime}
			w.deleted = d
		}
		if d.From.IsZero() {
			d.From = c.summary.MinTime
		}
		d.Segments++
		d.LastSegment = c.index
		if c.summary.Records > 0 {
			d.LastSeq = c.summary.LastSeq
		}
		if !c.summary.MaxTime.IsZero() {
			d.To = c.summary.MaxTime
		}
		d.Batches += c.summary.Batches
		d.Events += c.summary.Events
		d.Bytes += c.summary.Bytes
	}
	if removed {
		if err := syncDir(w.dir); err != nil {
			return fmt.Errorf("store: retention: syncing directory: %w", err)
		}
	}
	return nil
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
