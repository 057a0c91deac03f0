package store

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Problem is one defect that Verify found.
type Problem struct {
	// Segment is the segment's index (0: the recording as a whole).
	Segment int `json:"segment,omitempty"`
	// Seq is the sequence number of the batch concerned (0: none).
	Seq uint64 `json:"seq,omitempty"`
	// Message says what is wrong, naming segment and batch.
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Message }

// Report is the result of Verify.
type Report struct {
	// Dir is the recording directory.
	Dir string `json:"dir"`
	// Segments lists every segment file.
	Segments []SegmentInfo `json:"segments"`
	// Records, Batches, Events and LossPoints count what was read intact.
	Records    uint64 `json:"records"`
	Batches    uint64 `json:"batches"`
	Events     uint64 `json:"events"`
	LossPoints uint64 `json:"loss_points"`
	// Skipped lists segments not verified and why (a segment being written
	// that had no commit yet, one retention deleted while it was checked).
	Skipped []string `json:"skipped,omitempty"`
	// Notes says what else a reader should know: the segment being
	// written, checked as of its last commit.
	Notes []string `json:"notes,omitempty"`
	// Problems lists every defect found; empty means the recording is sound.
	Problems []Problem `json:"problems"`
}

// OK says whether Verify found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxProblemsPerSegment bounds the report of a badly damaged segment.
const maxProblemsPerSegment = 50

// Verify checks every segment of the recording in dir: file modes, format
// version, metadata, bbolt's page structure, every record's checksum and
// encoding, the sequence (gaps and order, across segments too), the time
// index and the closing summary. It returns an error only if dir cannot be
// read; defects are listed in the report.
func Verify(dir string) (*Report, error) {
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	rep := &Report{Dir: dir, Problems: []Problem{}}
	if len(files) == 0 {
		return nil, fmt.Errorf("store: %s holds no recording (no *.seg files)", dir)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// The user's own directory (record -o .): the segments are
		// private, only their names are not.
		rep.Notes = append(rep.Notes, fmt.Sprintf("directory %s has mode %#o: other users can list the segment files (not read them)", dir, fi.Mode().Perm()))
	}
	// A running writer's segment is checked as of its last commit.
	live := writerActive(dir)
	files, tmp, err := liveFiles(files, "")
	if err != nil {
		return nil, err
	}
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	infos := make([]SegmentInfo, len(files))
	var deleted *Deleted // the newest segment's deletion record
	for i, f := range files {
		infos[i] = inspectSegment(f)
	}
	markForeign(infos)
	for i := range infos {
		if infos[i].err == nil && infos[i].deleted != nil {
			deleted = infos[i].deleted
		}
	}
	var expect uint64 // next expected sequence number, 0: unknown
	prevIndex := 0
	for i, f := range files {
		si := infos[i]
		name := segName(f.index)
		add := func(seq uint64, format string, args ...any) {
			rep.Problems = append(rep.Problems, Problem{Segment: f.index, Seq: seq, Message: "store: " + name + ": " + fmt.Sprintf(format, args...)})
		}
		if fi, err := os.Stat(f.path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			add(0, "file mode %#o, want 0600 (recordings are private)", fi.Mode().Perm())
		}
		// The newest deletion record may be in a segment that could not
		// be read yet (being written, no commit to copy).
		gap := add
		if infos[len(infos)-1].BeingWritten {
			gap = func(_ uint64, format string, args ...any) {
				rep.Skipped = append(rep.Skipped, name+": "+fmt.Sprintf(format, args...)+": probably deleted by the running recorder's retention, whose record is in the segment being written")
			}
		}
		if i == 0 && si.err == nil {
			if deleted != nil && f.index <= deleted.LastSegment {
				// Retention recorded deleting it (in a newer segment)
				// and stopped before removing the file: still history.
				if s := si.Summary; s != nil && s.Records > 0 {
					expect = s.FirstSeq
				} else if f.index == 1 {
					expect = 1
				}
			} else if deleted != nil {
				expect = deleted.LastSeq + 1
				if deleted.LastSegment != f.index-1 {
					gap(0, "segments %06d-%06d missing (retention recorded deleting up to %06d)", deleted.LastSegment+1, f.index-1, deleted.LastSegment)
				}
			} else if f.index != 1 {
				gap(0, "segments 000001-%06d missing (no deletion recorded)", f.index-1)
			} else {
				expect = 1
			}
		} else if prevIndex != 0 && f.index != prevIndex+1 {
			if live && deletedByRetention(dir, prevIndex, f.index-1) {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s-%s: %v", segName(prevIndex+1), segName(f.index-1), errDeletedListing))
			} else {
				add(0, "segments %06d-%06d missing", prevIndex+1, f.index-1)
			}
			expect = 0
		}
		prevIndex = f.index
		if si.BeingWritten {
			rep.Skipped = append(rep.Skipped, name+": "+errBeingWritten.Error())
			rep.Segments = append(rep.Segments, si)
			expect = 0
			continue
		}
		if si.Live {
			rep.Notes = append(rep.Notes, name+": being written: checked as of its last commit")
		}
		// A running writer's retention may delete a segment while it is
		// checked: not damage, and not verified.
		deletedMeanwhile := func() bool {
			if _, err := os.Lstat(f.path); !os.IsNotExist(err) {
				return false
			}
			rep.Skipped = append(rep.Skipped, name+": deleted while being verified (retention of a running recorder)")
			rep.Segments = append(rep.Segments, si)
			expect = 0
			return true
		}
		if si.err != nil && i == len(files)-1 && interruptedCreate(&si) {
			// A writer killed while creating its next segment.
			rep.Skipped = append(rep.Skipped, name+": incomplete (the writer stopped while creating it): "+si.err.Error())
			rep.Segments = append(rep.Segments, si)
			continue
		}
		if si.err != nil {
			if deletedMeanwhile() {
				continue
			}
			add(0, "%v", si.err)
			rep.Segments = append(rep.Segments, si)
			expect = 0
			continue
		}
		before := len(rep.Problems)
		for _, msg := range checkStructure(f.path) {
			add(0, "%s", msg)
		}
		sum, problems := scanSegment(&si, &expect, rep)
		if (len(problems) > 0 || len(rep.Problems) > before) && deletedMeanwhile() {
			rep.Problems = rep.Problems[:before]
			continue
		}
		if s := si.Summary; s != nil && s.Records > 0 {
			// Damage at the end of a closed segment: its summary says
			// where it ends, so the lost records are this segment's
			// problem, not a gap at the start of the next one.
			if expect != 0 && expect <= s.LastSeq {
				problems = append(problems, Problem{Segment: f.index, Seq: expect,
					Message: fmt.Sprintf("store: %s: records %d-%d missing at the end of the segment (damaged; its summary says it ends at %d)", name, expect, s.LastSeq, s.LastSeq)})
			}
			if expect == 0 || expect <= s.LastSeq {
				expect = s.LastSeq + 1
			}
		}
		rep.Problems = append(rep.Problems, problems...)
		if si.Summary != nil && len(problems) == 0 {
			s := si.Summary
			if s.Records != sum.Records || s.Batches != sum.Batches || s.Events != sum.Events || s.Bytes != sum.Bytes ||
				s.FirstSeq != sum.FirstSeq || s.LastSeq != sum.LastSeq {
				add(0, "summary (records %d-%d: %d batches, %d events, %d bytes) does not match content (records %d-%d: %d batches, %d events, %d bytes)",
					s.FirstSeq, s.LastSeq, s.Batches, s.Events, s.Bytes, sum.FirstSeq, sum.LastSeq, sum.Batches, sum.Events, sum.Bytes)
			}
		}
		rep.Segments = append(rep.Segments, si)
	}
	rep.Skipped = append(rep.Skipped, creatingLeftovers(dir)...)
	return rep, nil
}

// interruptedCreate says whether si looks like a segment whose writer was
// killed while creating it: an empty file, or a bbolt file without the
// segment's metadata. Only the last segment of a recording can be that.
func interruptedCreate(si *SegmentInfo) bool {
	return (si.Size == 0 && errors.Is(si.err, errTooSmall)) || errors.Is(si.err, errNoMeta)
}

// checkStructure checks a segment's page structure (see checkPages).
func checkStructure(path string) []string {
	msgs, _ := checkPages(path)
	return msgs
}

// scanSegment reads every record of one segment, checking the sequence
// (expect is the next expected sequence number, 0 unknown, and is
// advanced) and the time index. It returns what the segment holds.
func scanSegment(si *SegmentInfo, expect *uint64, rep *Report) (SegmentSummary, []Problem) {
	var sum SegmentSummary
	var problems []Problem
	name := segName(si.Index)
	add := func(seq uint64, msg string) {
		if len(problems) < maxProblemsPerSegment {
			problems = append(problems, Problem{Segment: si.Index, Seq: seq, Message: msg})
		} else if len(problems) == maxProblemsPerSegment {
			problems = append(problems, Problem{Segment: si.Index, Message: "store: " + name + ": more problems not listed"})
		}
	}
	seqSeen := func(seq uint64) {
		if *expect != 0 && seq != *expect {
			if seq > *expect {
				add(seq, fmt.Sprintf("store: %s: sequence gap: records %d-%d missing before batch %d", name, *expect, seq-1, seq))
			} else {
				add(seq, fmt.Sprintf("store: %s: batch %d out of order (expected %d)", name, seq, *expect))
			}
		}
		*expect = seq + 1
	}
	r := &Reader{segs: []SegmentInfo{*si}, seek: math.MinInt64, from: math.MinInt64, to: math.MaxInt64}
	r.startBG()
	r.opts.OnLoss = func(p LossPoint) {
		seqSeen(p.Seq)
		sum.addLoss(&p)
		if rep != nil {
			rep.Records++
			rep.LossPoints++
		}
	}
	defer r.Close()
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				add(0, err.Error())
				break
			}
			add(ce.Seq, err.Error())
			if ce.Last != 0 {
				*expect = ce.Last + 1 // records Seq-Last reported lost
			} else if ce.Seq != 0 && !ce.After {
				*expect = ce.Seq + 1
			} else {
				*expect = 0 // unknown after damage
			}
			continue
		}
		seqSeen(b.Seq)
		var st batchStats
		st.minT, st.maxT = math.MaxInt64, math.MinInt64
		for i := range b.Events {
			e := &b.Events[i]
			st.payload += uint64(len(e.Raw))
			st.perfLost += e.Lost
			t := timeNS(e.Timestamp)
			st.minT, st.maxT = min(st.minT, t), max(st.maxT, t)
		}
		sum.addBatch(b, st.payload, st.minT, st.maxT, st.perfLost)
		if rep != nil {
			rep.Records++
			rep.Batches++
			rep.Events += uint64(len(b.Events))
		}
	}
	if len(problems) == 0 {
		for _, msg := range checkIndex(si) {
			add(0, "store: "+name+": "+msg)
		}
	}
	return sum, problems
}

// checkIndex checks that every index entry points at the start of the
// record it names.
func checkIndex(si *SegmentInfo) (msgs []string) {
	defer debug.SetPanicOnFault(panicOnFault())
	defer func() {
		if r := recover(); r != nil {
			if !boltPanic(r) {
				panic(r)
			}
			msgs = append(msgs, fmt.Sprintf("corrupted file (bbolt failed reading the index: %v)", r))
		}
	}()
	db, err := openSegmentRO(si.Path)
	if err != nil {
		return []string{err.Error()}
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		sm, err := readSegMeta(tx)
		if err != nil {
			msgs = append(msgs, err.Error())
			return nil
		}
		ls := logStream{c: tx.Bucket(bucketLog).Cursor(), maxValue: chunkValueOf(sm.format)}
		c := tx.Bucket(bucketIndex).Cursor()
		for k, v := c.First(); k != nil && len(msgs) < 10; k, v = c.Next() {
			e, ok := parseIndexEntry(k, v)
			if !ok {
				msgs = append(msgs, fmt.Sprintf("index: bad entry %x", k))
				continue
			}
			if err := ls.seekRecord(e.chunk, e.off); err != nil {
				msgs = append(msgs, fmt.Sprintf("index entry for batch %d: %v", e.seq, err))
				continue
			}
			hb, err := ls.read(nil, headerSize)
			if err != nil {
				msgs = append(msgs, fmt.Sprintf("index entry for batch %d: %v", e.seq, err))
				continue
			}
			if h, err := parseHeader(hb); err != nil || h.seq != e.seq {
				msgs = append(msgs, fmt.Sprintf("index entry for batch %d points at another record", e.seq))
			}
		}
		return nil
	})
	return msgs
}

// StreamTotal sums one stream over a recording.
type StreamTotal struct {
	StreamInfo
	StreamSummary
}

// Summary is what Info reports about a recording.
type Summary struct {
	// Dir is the recording directory.
	Dir string `json:"dir"`
	// Meta is the metadata of the newest readable segment.
	Meta Meta `json:"meta"`
	// Segments lists every segment file.
	Segments []SegmentInfo `json:"segments"`
	// Streams sums each stream over the readable segments; Loss holds the
	// latest cumulative loss counters.
	Streams []StreamTotal `json:"streams"`
	// Records, Batches, Events and Bytes (raw payload) sum the readable
	// segments; DiskBytes is the size of all segment files.
	Records   uint64 `json:"records"`
	Batches   uint64 `json:"batches"`
	Events    uint64 `json:"events"`
	Bytes     uint64 `json:"bytes"`
	DiskBytes int64  `json:"disk_bytes"`
	// FirstSeq..LastSeq and From..To bound what is readable.
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Deleted says what retention deleted (history starts after it).
	Deleted *Deleted `json:"deleted,omitempty"`
	// Live says a writer is still writing the recording: its open
	// segment is counted as of its last commit (or not at all if it had
	// none yet, or was being created; Notes says which).
	Live bool `json:"live,omitempty"`
	// Notes lists segments skipped or unclosed, and damage met.
	Notes []string `json:"notes,omitempty"`
}

// Info summarizes the recording in dir: streams, counts, bytes, time range,
// segments and losses. Closed segments are summarized from their closing
// summary; unclosed ones (a writer that crashed) are scanned, and so is the
// one a running writer holds, as of its last commit (Summary.Live).
func Info(dir string) (*Summary, error) {
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	s := &Summary{Dir: dir, Meta: r.Meta(), Deleted: r.Deleted(), Live: writerActive(dir)}
	streams := map[string]*StreamTotal{}
	var order []string
	for i := range r.segs {
		si := r.segs[i]
		s.DiskBytes += si.Size
		name := segName(si.Index)
		if si.BeingWritten {
			s.Notes = append(s.Notes, name+": "+errBeingWritten.Error())
			s.Segments = append(s.Segments, si)
			continue
		}
		if si.err != nil {
			s.Notes = append(s.Notes, name+": unreadable: "+si.err.Error())
			s.Segments = append(s.Segments, si)
			continue
		}
		sum := si.Summary
		if sum == nil {
			var expect uint64
			scanned, problems := scanSegment(&si, &expect, nil)
			sum = &scanned
			if si.Live {
				s.Notes = append(s.Notes, name+": being written: counted as of its last commit")
			} else {
				s.Notes = append(s.Notes, name+": not closed (the writer stopped without closing it); scanned")
			}
			for _, p := range problems {
				s.Notes = append(s.Notes, p.Message)
			}
		}
		s.Segments = append(s.Segments, si)
		if sum.Records > 0 {
			if s.Records == 0 {
				s.FirstSeq = sum.FirstSeq
			}
			s.LastSeq = sum.LastSeq
		}
		s.Records += sum.Records
		s.Batches += sum.Batches
		s.Events += sum.Events
		s.Bytes += sum.Bytes
		if !sum.MinTime.IsZero() && (s.From.IsZero() || sum.MinTime.Before(s.From)) {
			s.From = sum.MinTime
		}
		if !sum.MaxTime.IsZero() && sum.MaxTime.After(s.To) {
			s.To = sum.MaxTime
		}
		for n, ss := range sum.Streams {
			t := streams[n]
			if t == nil {
				t = &StreamTotal{}
				t.Name = n
				streams[n] = t
				order = append(order, n)
			}
			t.Batches += ss.Batches
			t.Events += ss.Events
			t.Bytes += ss.Bytes
			t.PerfLost += ss.PerfLost
			t.LossPoints += ss.LossPoints
			t.Loss = ss.Loss // cumulative: the latest wins
		}
	}
	s.Notes = append(s.Notes, creatingLeftovers(dir)...)
	for _, st := range s.Meta.Streams {
		t := streams[st.Name]
		if t == nil {
			t = &StreamTotal{}
			streams[st.Name] = t
		}
		t.StreamInfo = st
		s.Streams = append(s.Streams, *t)
		delete(streams, st.Name)
	}
	for _, n := range order {
		if t := streams[n]; t != nil {
			s.Streams = append(s.Streams, *t)
		}
	}
	return s, nil
}
