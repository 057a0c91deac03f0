package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// pageSize is the bbolt page size of every segment.
	pageSize = 4096
	// leafPages is the bbolt pages of one full log leaf in format 2: two
	// full chunks fill it exactly, so that bbolt writes each leaf as one
	// contiguous overflow run (one write, not thirty-two page writes:
	// fdatasync of many small writes is what made commits slow). Larger
	// leaves make each commit rewrite more of its last leaf and lose more
	// records after a damaged header; 128 KiB was the best balance in
	// BenchmarkAppend (figures in the commit history and the README).
	leafPages = 32
	// leafSize is the bytes of a full log leaf in the current format.
	leafSize = leafPages * pageSize
	// chunkValue is the size of a full chunk value in the current format:
	// two of them, with their 16-byte element headers and 8-byte keys,
	// fill one leaf after its 16-byte header exactly. bbolt never splits a
	// leaf below two elements, so a leaf of two chunks stays whole.
	chunkValue = (leafSize-16)/2 - 16 - 8
	// chunkValueV1 is the full chunk value of format 1: two chunks a 4 KiB
	// page.
	chunkValueV1 = (pageSize-16)/2 - 16 - 8
	// noStart marks a chunk in which no record starts.
	noStart = math.MaxUint32

	// indexEvery is the log bytes between two index entries.
	indexEvery = 256 << 10
	// indexValueSize: chunk u64, offset u32, min time i64, max time i64.
	indexValueSize = 28

	segSuffix = ".seg"
	// creatingSuffix names a segment file while the writer creates it
	// (000007.seg.creating); readers never list it as a segment.
	creatingSuffix = ".creating"
)

var (
	bucketMeta  = []byte("meta")
	bucketLog   = []byte("log")
	bucketIndex = []byte("index")

	keyFormat  = []byte("format")
	keyMeta    = []byte("meta")
	keySummary = []byte("summary")
	keyDeleted = []byte("deleted")
)

// errNoMeta: a bbolt file without the segment metadata (not a segment, or
// a writer killed while creating it).
var errNoMeta = errors.New("not an ebpfrec segment (no meta bucket)")

// ErrNewerFormat is wrapped by the error for a segment written in a newer
// format version than this package reads.
var ErrNewerFormat = errors.New("newer format version")

// chunkValueOf returns the largest chunk value of a segment of the given
// format version (which readSegMeta has checked); the reader takes the
// chunk size of each segment from its version.
func chunkValueOf(format uint32) int {
	if format == 1 {
		return chunkValueV1
	}
	return chunkValue
}

// maxChunkValue is the largest chunk value of any format version.
const maxChunkValue = max(chunkValue, chunkValueV1)

// segFile is a segment file found in a recording directory.
type segFile struct {
	index int
	path  string
	// bad says why the entry cannot be a segment (a symbolic link, a
	// FIFO, a device): it is reported as damage and never opened.
	bad error
	// live says path is a copy of a segment its writer still holds, as
	// of its last commit (liveFiles).
	live bool
}

// errNotRegular: a segment name on something other than a regular file.
// Following a link could read any file of the host (or /dev/zero for
// ever), and opening a FIFO blocks.
var errNotRegular = errors.New("not a regular file: refused")

// listSegments lists the segment files of dir in order.
func listSegments(dir string) ([]segFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: reading recording directory: %w", err)
	}
	var segs []segFile
	for _, e := range ents {
		name := e.Name()
		n, ok := segmentIndex(name)
		if !ok || e.IsDir() {
			continue
		}
		sf := segFile{index: n, path: filepath.Join(dir, name)}
		if t := e.Type(); !t.IsRegular() {
			sf.bad = fmt.Errorf("%w (%s)", errNotRegular, fileKind(t))
		}
		segs = append(segs, sf)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].index < segs[j].index })
	return segs, nil
}

// creatingLeftovers names the files in dir that a writer left while
// creating a segment (it stopped before naming it): not segments, and
// holding nothing committed, for Verify and Info to mention.
func creatingLeftovers(dir string) []string {
	if writerActive(dir) {
		return nil // its writer is creating it now
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix+creatingSuffix) {
			out = append(out, e.Name()+": a segment whose creation was interrupted (the writer stopped before naming it); nothing committed is in it")
		}
	}
	return out
}

// fileKind names a non-regular file type for errors.
func fileKind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + t.String()
}

func u64key(v uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], v)
	return k[:]
}

// errBeingWritten says a segment is locked by its writer.
var errBeingWritten = errors.New("open, skipped (being written by another process)")

// openSegmentRO opens a segment read-only without waiting for a writer's
// lock: a locked segment gives errBeingWritten.
func openSegmentRO(path string) (db *bolt.DB, err error) {
	defer recoverTo(&err, "opening")
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		ReadOnly: true,
		Timeout:  50 * time.Millisecond,
		PageSize: pageSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, errBeingWritten
	}
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, fmt.Errorf("not a valid segment (bbolt: %w)", err)
	}
	return db, err
}

// Panics. bbolt trusts its pages and panics on damaged ones (its own
// assertions, index errors in its page code), and a file truncated under
// a mapping faults, which panicOnFault makes a panic. This package
// recovers exactly those, at two boundaries: around its calls into bbolt
// (recoverBolt, checking boltPanic), and around the page check's reads of a
// file that changes while it is read (errShortRead, structure.go). Any
// other panic is a bug of this package, and goes on.

// recoverTo turns a panic of bbolt's (boltPanic) into an error; callers
// defer it first thing. Any other panic goes on.
func recoverTo(err *error, what string) {
	if r := recover(); r != nil {
		if !boltPanic(r) {
			panic(r)
		}
		*err = fmt.Errorf("corrupted file (bbolt failed while %s: %v)", what, r)
	}
}

// boltPanic says whether the panic p, recovered by the deferred function
// that calls it, came from bbolt's code or from a memory fault on a
// mapping: the function that panicked (the first one past the runtime's
// panic frames) is bbolt's.
func boltPanic(p any) bool {
	if e, ok := p.(runtime.Error); ok && strings.Contains(e.Error(), "fault") {
		return true // SetPanicOnFault: "unexpected fault address"
	}
	var pcs [64]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	panicking := false
	for {
		f, more := frames.Next()
		if panicking && !strings.HasPrefix(f.Function, "runtime.") {
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		panicking = panicking || f.Function == "runtime.gopanic"
		if !more {
			return false
		}
	}
}

// panicOnFault makes faults on the mmap (a file truncated under us)
// recoverable panics for the current goroutine and returns the previous
// setting; call as defer debug.SetPanicOnFault(panicOnFault()), which,
// unlike a returned closure, allocates nothing (Reader.Next runs it per
// batch).
func panicOnFault() bool {
	return debug.SetPanicOnFault(true)
}

// segMeta is what a segment's meta bucket holds.
type segMeta struct {
	format  uint32
	meta    Meta
	summary *SegmentSummary
	deleted *Deleted
}

// readSegMeta reads the meta bucket of a segment and checks its version.
func readSegMeta(tx *bolt.Tx) (sm segMeta, err error) {
	defer recoverTo(&err, "reading metadata")
	mb := tx.Bucket(bucketMeta)
	if mb == nil {
		return sm, errNoMeta
	}
	f := mb.Get(keyFormat)
	if len(f) != 4 {
		return sm, errors.New("not an ebpfrec segment (no format version)")
	}
	sm.format = binary.BigEndian.Uint32(f)
	if sm.format > FormatVersion {
		return sm, fmt.Errorf("format version %d is newer than this reader's version %d (upgrade ebpfrec): %w", sm.format, FormatVersion, ErrNewerFormat)
	}
	if sm.format == 0 {
		return sm, errors.New("bad format version 0")
	}
	if err := json.Unmarshal(mb.Get(keyMeta), &sm.meta); err != nil {
		return sm, fmt.Errorf("bad metadata: %v", err)
	}
	if v := mb.Get(keySummary); v != nil {
		sm.summary = new(SegmentSummary)
		if err := json.Unmarshal(v, sm.summary); err != nil {
			return sm, fmt.Errorf("bad summary: %v", err)
		}
	}
	if v := mb.Get(keyDeleted); v != nil {
		sm.deleted = new(Deleted)
		if err := json.Unmarshal(v, sm.deleted); err != nil {
			return sm, fmt.Errorf("bad deletion record: %v", err)
		}
	}
	if tx.Bucket(bucketLog) == nil || tx.Bucket(bucketIndex) == nil {
		return sm, errors.New("missing log or index bucket")
	}
	return sm, nil
}

// indexEntry is one entry of a segment's time index.
type indexEntry struct {
	seq        uint64
	chunk      uint64
	off        uint32
	minT, maxT int64 // minT > maxT: no events in the group
	rel        bool  // writer only: off is relative to the pending buffer
}

func (e *indexEntry) value(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, e.chunk)
	b = binary.BigEndian.AppendUint32(b, e.off)
	b = binary.BigEndian.AppendUint64(b, uint64(e.minT))
	b = binary.BigEndian.AppendUint64(b, uint64(e.maxT))
	return b
}

func parseIndexEntry(k, v []byte) (indexEntry, bool) {
	if len(k) != 8 || len(v) != indexValueSize {
		return indexEntry{}, false
	}
	return indexEntry{
		seq:   binary.BigEndian.Uint64(k),
		chunk: binary.BigEndian.Uint64(v[0:]),
		off:   binary.BigEndian.Uint32(v[8:]),
		minT:  int64(binary.BigEndian.Uint64(v[12:])),
		maxT:  int64(binary.BigEndian.Uint64(v[20:])),
	}, true
}

// segName names a segment in messages: "segment 000003".
func segName(index int) string { return fmt.Sprintf("segment %06d", index) }

// syncDir fsyncs a directory so that created and removed names are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
