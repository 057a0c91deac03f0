package store

// Finding and inspecting a recording's segments before reading them.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

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
	// BeingWritten says a writer holds the segment open and it could not
	// be read (it has no commit yet, or changed during every copy).
	BeingWritten bool `json:"being_written,omitempty"`
	// Live says a writer holds the segment open and it is read as of its
	// last commit, from a copy: Path names the copy, which Close removes.
	Live bool `json:"live,omitempty"`

	deleted *Deleted
	err     error // why the segment cannot be read (also in Skipped)
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
	files, tmp, err := liveFiles(files, "")
	if err != nil {
		return Meta{}, err
	}
	if tmp != "" {
		defer os.RemoveAll(tmp)
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
	si = SegmentInfo{Index: f.index, Path: f.path, Live: f.live}
	if f.bad != nil {
		si.err = f.bad
		si.Skipped = f.bad.Error()
		return si
	}
	if fi, err := os.Lstat(f.path); err == nil {
		si.Size = fi.Size()
	} else if os.IsNotExist(err) {
		si.err = errVanished
		si.Skipped = si.err.Error()
		return si
	}
	defer debug.SetPanicOnFault(panicOnFault())
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
	if errors.Is(err, os.ErrNotExist) {
		// Deleted since the Lstat above: as vanished as before it.
		si.err = errVanished
		si.Skipped = si.err.Error()
		return si
	}
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

// errVanished: a segment file deleted since the directory was listed, as
// the recording was opened (by a running writer's retention, when it is
// among the oldest).
var errVanished = fmt.Errorf("%w as the recording was opened", ErrSegmentDeleted)

// errTooSmall: a segment file smaller than two pages (a garbage file, or a
// writer killed while creating the segment).
var errTooSmall = errors.New("not a complete bbolt file")
