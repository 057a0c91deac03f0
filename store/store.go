// Package store is the recording format of ebpfrec: a directory of bbolt
// segment files holding the raw event batches of eBPF ring and perf buffers,
// in the order they were read, with the loss counters of their streams.
//
// The package knows nothing about BPF: a batch is opaque bytes with a kind
// tag. It is the only package that imports bbolt.
//
// # Layout
//
// A recording is a directory (mode 0700) of segment files (mode 0600) named
// 000001.seg, 000002.seg, ... so that ls sorts them in order. Exactly one
// segment is open (written) at a time; a closed segment is never written
// again. Each segment is a bbolt database with three buckets:
//
//   - "meta": key "format" (uint32 big endian, the format version), key
//     "meta" (JSON [Meta]: recording ID, segment index, host, kernel, clocks,
//     BTF identity, tool, command line, streams; a stream may carry its
//     event layout, opaque bytes of at most [MaxLayoutSize], base64 in the
//     JSON: see [StreamInfo].Layout. Readers of format 2 that predate
//     layouts ignore the field and a stream without one decodes as before,
//     so the format version stays 2), key "deleted" (JSON
//     [Deleted], what retention removed before this segment), and, once the
//     segment is closed, key "summary" (JSON [SegmentSummary]). A segment
//     without a summary was not closed (the writer crashed or is still
//     writing); its committed content is still valid.
//   - "log": the record log, split into chunks under big-endian chunk
//     numbers. Each chunk value is a 4-byte little-endian offset of the first
//     record that starts in it (0xFFFFFFFF: none) followed by up to the
//     format's chunk size of log bytes. The chunk size depends on the format
//     version, and a reader takes it from each segment's version:
//     formats 2 and 3 (3 written now): chunk values of up to 65504 bytes (65500 log
//     bytes), so that two full chunks fill one 128 KiB (32-page) bbolt leaf
//     exactly and bbolt writes each leaf as one contiguous write; format 1:
//     values of up to 2016 bytes (2012 log bytes), two chunks a 4 KiB page.
//     bbolt keeps a page size of 4 KiB in both; the log bucket is written
//     with FillPercent 1.0 and sequential keys, and bbolt never splits a
//     leaf below two elements, so full leaves hold two chunks and space
//     overhead stays near 2%. Each commit starts a new chunk. A chunk may
//     be shorter than the maximum: from format 2 a commit writes full chunks
//     while at least one full chunk of its data is left, then the rest in
//     chunks of at most 2012 log bytes, so that the last leaf, which bbolt
//     rewrites at the next commit, stays small. Readers accept any chunk
//     size up to the segment's format maximum.
//   - "index": sparse time index: key big-endian sequence number of the first
//     record of a group, value the chunk and offset where the group starts
//     and the smallest and largest event timestamp in the group. A group
//     spans about [indexEvery] bytes of log.
//
// A record in the log is a 32-byte header (length, CRC-32C, type, flags,
// kind, sequence, stream, event count, body length; see format.go) and a
// body, optionally zstd-compressed. Records are batches (the events of one
// read from one stream) or loss points (the cumulative loss counters of a
// stream at one moment). All records share one global sequence, so the
// interleaving of streams is kept exactly.
//
// # Writing
//
// Writer.Append encodes a batch into a pending buffer and returns; a
// committer goroutine writes each buffer in one bbolt transaction (so bbolt
// rewrites its last leaf page once per flush, not per batch) every
// FlushInterval or FlushBytes, compressing batches first if asked. With the
// default sync policy each commit is fdatasync'ed by bbolt (data pages, then
// the meta page): a crash, power loss or full disk loses at most what was
// appended since the last commit. Memory stays near 4 x FlushBytes (one
// buffer filling, one queued, one committing and its chunk copy), plus the
// largest batch. Segments rotate by size and age; a closed segment gets its
// summary, is synced, trimmed to its used size and never opened for writing
// again. Retention deletes the oldest closed segments and records what it
// deleted in the next segment.
//
// # Reading
//
// A segment is opened read-only with a short lock timeout: the open segment
// of a running writer is locked, so it is skipped and said so. Before
// reading, its page structure is checked (checkPages), reading the pages
// with pread (of a log leaf only its first page); the log's chunks are then
// read with pread, in 1 MiB windows that a Reader reuses, every record's
// CRC and lengths checked, and damage is reported as a *CorruptError
// naming segment and batch, after which reading goes on with the intact
// records. With more than one core, a Reader reads the next window and
// checks its checksums, and loads the next closed segment, on other
// goroutines while the caller handles the current batch; its memory is
// three windows and the chunk lists of two segments, whatever the size of
// the recording.
package store

import (
	"fmt"
	"math"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/event"
)

// FormatVersion is the version of the segment format this package writes
// and the newest it reads. A segment with a newer version is refused, with
// both versions in the message. Version 2 (128 KiB log leaves) replaced
// version 1 (4 KiB log leaves); version 3 added Loss.KernelMissed to batch
// and loss records (flagMissed, in records where it is not 0), which a
// reader of version 2 would take for damage. Segments of versions 1 and 2
// are still read (their KernelMissed is 0, and their streams'
// StreamInfo.KernelMissedCounted false: not counted).
const FormatVersion = 3

// Kind says which kind of BPF buffer a stream was read from.
type Kind uint8

const (
	// KindRingbuf is a BPF ring buffer (BPF_MAP_TYPE_RINGBUF).
	KindRingbuf Kind = 1
	// KindPerfbuf is a perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY).
	KindPerfbuf Kind = 2
)

// String returns "ringbuf", "perfbuf" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindRingbuf:
		return "ringbuf"
	case KindPerfbuf:
		return "perfbuf"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText encodes the kind by name, for JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ringbuf":
		*k = KindRingbuf
	case "perfbuf":
		*k = KindPerfbuf
	default:
		var n uint8
		if _, err := fmt.Sscanf(string(b), "kind(%d)", &n); err != nil {
			return fmt.Errorf("store: unknown stream kind %q", b)
		}
		*k = Kind(n)
	}
	return nil
}

// Event is one raw record read from a BPF buffer: Raw, the sample exactly
// as the kernel wrote it; CPU, the CPU whose perf buffer held it (for ring
// buffers the reader's convention, -1, is stored as given); Timestamp,
// when user space read it (wall clock); and Lost, for perf buffers, the
// samples the kernel lost on that CPU just before it.
//
// It is bpf.PerfbufEvent (the same type), so that replay hands the events
// of perf buffer batches to handlers as they are.
type Event = event.Perfbuf

// Loss holds the cumulative loss counters of one stream at one moment.
type Loss struct {
	// KernelLost counts samples the kernel reported lost (perf buffers);
	// every output of ebpfrec calls it kernel_lost_perfbuf.
	KernelLost uint64 `json:"kernel_lost"`
	// RingbufDropped counts failed bpf_ringbuf_reserve/output calls, from
	// the tracer's per-CPU counter map: events lost in the kernel, the ring
	// buffer full (kernel_lost_ringbuf in every output).
	RingbufDropped uint64 `json:"ringbuf_dropped"`
	// UserDropped counts events dropped in user space (queues full;
	// ebpfrec_dropped in every output).
	UserDropped uint64 `json:"user_dropped"`
	// KernelMissed counts the runs of the stream's programs that the
	// kernel skipped because another BPF program was running on the CPU
	// (the programs' recursion_misses; kernel_missed in every output).
	// A skipped run emitted nothing, so these are not part of what the
	// program counts as emitted; each could have cost the stream an event.
	// It is meaningful only where StreamInfo.KernelMissedCounted says so.
	KernelMissed uint64 `json:"kernel_missed"`
}

// Total is the sum of all counters: every event of the stream not
// recorded, as far as the counters know, a skipped program run counted as
// one event (the one definition replay, export and summary share).
func (l Loss) Total() uint64 {
	return l.KernelLost + l.RingbufDropped + l.UserDropped + l.KernelMissed
}

// Max returns each counter's larger value of l and o.
func (l Loss) Max(o Loss) Loss {
	return Loss{KernelLost: max(l.KernelLost, o.KernelLost), RingbufDropped: max(l.RingbufDropped, o.RingbufDropped),
		UserDropped: max(l.UserDropped, o.UserDropped), KernelMissed: max(l.KernelMissed, o.KernelMissed)}
}

// Rise raises the counters l (high-water marks) to o where o is higher,
// and returns by how much each rose. The counters are cumulative: a value
// below the mark, which a recording made before they were stored in
// order can hold, is an older sample, not a reset.
func (l *Loss) Rise(o Loss) Loss {
	hw := l.Max(o)
	d := Loss{KernelLost: hw.KernelLost - l.KernelLost, RingbufDropped: hw.RingbufDropped - l.RingbufDropped,
		UserDropped: hw.UserDropped - l.UserDropped, KernelMissed: hw.KernelMissed - l.KernelMissed}
	*l = hw
	return d
}

// Batch is the unit of recording and replay: the events that one read of one
// stream delivered, in order.
type Batch struct {
	// Seq is the global sequence number, assigned by Writer.Append.
	Seq uint64
	// Stream names the stream; it must be declared in Meta.Streams or with
	// Writer.AddStream.
	Stream string
	// Kind is the kind of buffer the batch was read from.
	Kind Kind
	// Events are the events of the batch in read order (empty for a ring
	// buffer batch read with ReaderOptions.RingbufEvents: see Ringbuf).
	Events []Event
	// Ringbuf holds the events of a ring buffer batch instead of Events
	// when the Reader was opened with ReaderOptions.RingbufEvents.
	Ringbuf []RingbufEvent
	// Loss holds the stream's cumulative loss counters when the batch was read.
	Loss Loss
}

// RingbufEvent is bpf.RingbufEvent (the same type): an event's raw bytes
// and read time, without the CPU and Lost that ring buffer events do not
// have. A Reader decodes ring buffer batches into it on request
// (ReaderOptions.RingbufEvents), so that replay hands them to handlers
// without copying each event.
type RingbufEvent = event.Ringbuf

// Len returns the number of events of b (in Events, or in Ringbuf).
func (b *Batch) Len() int { return len(b.Events) + len(b.Ringbuf) }

// TimeSpan returns the earliest and the latest event timestamp of b, in
// Unix nanoseconds, where a zero time.Time counts as math.MinInt64; ok is
// false if b has no events.
func (b *Batch) TimeSpan() (first, last int64, ok bool) {
	first, last = math.MaxInt64, math.MinInt64
	for i := range b.Events {
		t := timeNS(b.Events[i].Timestamp)
		first, last = min(first, t), max(last, t)
	}
	for i := range b.Ringbuf {
		t := timeNS(b.Ringbuf[i].Timestamp)
		first, last = min(first, t), max(last, t)
	}
	return first, last, b.Len() > 0
}

// LossPoint is one point of a stream's loss-counter time series.
type LossPoint struct {
	// Seq is the global sequence number of the point.
	Seq uint64 `json:"seq"`
	// Stream names the stream.
	Stream string `json:"stream"`
	// Time is when the counters were read.
	Time time.Time `json:"time"`
	// Loss holds the cumulative counters.
	Loss Loss `json:"loss"`
}

// StreamInfo describes one recorded stream.
type StreamInfo struct {
	// Name identifies the stream in the recording (unique).
	Name string `json:"name"`
	// Tracer is the name of the tracer that produced it.
	Tracer string `json:"tracer,omitempty"`
	// Map is the name of the BPF map read.
	Map string `json:"map,omitempty"`
	// Kind is the kind of the map.
	Kind Kind `json:"kind"`
	// EventType names the event type that the tracer's decoder knows.
	EventType string `json:"event_type,omitempty"`
	// Object identifies a user-supplied BPF object, so that its decoder can
	// be found again; empty for built-in tracers.
	Object *ObjectInfo `json:"object,omitempty"`
	// Layout is the layout of the stream's events (bpf/btflayout: the BTF
	// of the C struct its programs write, its name and the byte order),
	// opaque to this package and at most MaxLayoutSize bytes; empty in
	// recordings made before layouts were stored and for streams whose
	// struct was not named. It is in every segment's metadata, once per
	// stream.
	Layout []byte `json:"layout,omitempty"`
	// KernelLossUncounted says the events this stream lost in the kernel
	// are not counted: a ring buffer (which reports no loss of its own)
	// whose program keeps no drop counter. Its RingbufDropped 0 then means
	// "unknown", not "none".
	KernelLossUncounted bool `json:"kernel_loss_uncounted,omitempty"`
	// KernelMissedCounted says the recorder sampled the recursion misses
	// of the stream's programs (Loss.KernelMissed) on a kernel that counts
	// them for every one of those programs. False (a kernel that does not
	// count them for some program type, or a recording older than format
	// 3): Loss.KernelMissed 0 then means "unknown", not "none".
	KernelMissedCounted bool `json:"kernel_missed_counted,omitempty"`
}

// MaxLayoutSize bounds StreamInfo.Layout: Create refuses a longer one.
const MaxLayoutSize = 1 << 20

// ObjectInfo identifies a user-supplied BPF object file.
type ObjectInfo struct {
	// Path is the object's path when recorded.
	Path string `json:"path,omitempty"`
	// SHA256 is the hex digest of the object file.
	SHA256 string `json:"sha256,omitempty"`
	// BTFType names the BTF type of the event in the object.
	BTFType string `json:"btf_type,omitempty"`
}

// Meta is the metadata stored in every segment.
type Meta struct {
	// FormatVersion is set by the writer to the package's FormatVersion.
	FormatVersion int `json:"format_version"`
	// RecordingID identifies the recording; every segment carries it.
	RecordingID string `json:"recording_id"`
	// Segment is the index of the segment (1-based), set by the writer.
	Segment int `json:"segment"`
	// Hostname is the recording host's name.
	Hostname string `json:"hostname,omitempty"`
	// KernelRelease is uname -r.
	KernelRelease string `json:"kernel_release,omitempty"`
	// BootID is /proc/sys/kernel/random/boot_id.
	BootID string `json:"boot_id,omitempty"`
	// MonoToWall is wall time minus CLOCK_MONOTONIC at recording start, in
	// nanoseconds: wall = bpf_ktime_get_ns() + MonoToWall.
	MonoToWall int64 `json:"mono_to_wall_ns"`
	// BTFID identifies the kernel's BTF (for example a hash of
	// /sys/kernel/btf/vmlinux).
	BTFID string `json:"btf_id,omitempty"`
	// ToolVersion is the version of the recording tool.
	ToolVersion string `json:"tool_version,omitempty"`
	// CommandLine is the command line of the recording tool.
	CommandLine []string `json:"command_line,omitempty"`
	// Started is when the recording started.
	Started time.Time `json:"started"`
	// Streams describes every stream; a batch's stream must be among them.
	Streams []StreamInfo `json:"streams"`
}

// Stream returns the stream named name, if declared.
func (m *Meta) Stream(name string) (StreamInfo, bool) {
	for _, s := range m.Streams {
		if s.Name == name {
			return s, true
		}
	}
	return StreamInfo{}, false
}

// StreamSummary holds counts for one stream.
type StreamSummary struct {
	// Batches, Events and Bytes (raw payload) recorded.
	Batches uint64 `json:"batches"`
	Events  uint64 `json:"events"`
	Bytes   uint64 `json:"bytes"`
	// PerfLost is the sum of Event.Lost over the recorded events.
	PerfLost uint64 `json:"perf_lost"`
	// Loss is the latest cumulative loss counters seen.
	Loss Loss `json:"loss"`
	// LossPoints counts stored loss-counter points.
	LossPoints uint64 `json:"loss_points"`
}

// SegmentSummary is written into a segment when it is closed.
type SegmentSummary struct {
	// FirstSeq and LastSeq bound the records in the segment (0,0 if empty).
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Records counts batches and loss points.
	Records uint64 `json:"records"`
	// Batches, Events, Bytes count batches, events and raw payload bytes.
	Batches uint64 `json:"batches"`
	Events  uint64 `json:"events"`
	Bytes   uint64 `json:"bytes"`
	// MinTime and MaxTime bound the event timestamps (zero if no events).
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	// Streams holds per-stream counts, by stream name.
	Streams map[string]*StreamSummary `json:"streams"`
	// Closed is when the segment was closed.
	Closed time.Time `json:"closed"`
}

// WallTime returns the wall-clock time, in Unix nanoseconds, of an
// event's kernel time kt (bpf_ktime_get_ns, CLOCK_MONOTONIC), through
// MonoToWall; readTime (the time the event was read, Event.Timestamp) if
// the recording has no offset or kt is not a time. Replay, export and
// summary all place events in time through it.
func (m *Meta) WallTime(kt uint64, readTime time.Time) int64 {
	if m.MonoToWall == 0 || kt == 0 || kt >= 1<<63 {
		return readTime.UnixNano()
	}
	return int64(kt) + m.MonoToWall
}

// Deleted describes the history that retention removed: the oldest
// segments, always a contiguous prefix of the recording.
type Deleted struct {
	// Segments is the number of segments deleted; LastSegment the newest one.
	Segments    int `json:"segments"`
	LastSegment int `json:"last_segment"`
	// FirstSeq..LastSeq is the deleted sequence range.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// From..To is the deleted time range of events.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Batches, Events and Bytes deleted.
	Batches uint64 `json:"batches"`
	Events  uint64 `json:"events"`
	Bytes   uint64 `json:"bytes"`
}

func (s *SegmentSummary) addBatch(b *Batch, payload uint64, minT, maxT int64, perfLost uint64) {
	s.note(b.Seq)
	s.Batches++
	s.Events += uint64(len(b.Events))
	s.Bytes += payload
	if len(b.Events) > 0 {
		mn, mx := time.Unix(0, minT), time.Unix(0, maxT)
		if s.MinTime.IsZero() || mn.Before(s.MinTime) {
			s.MinTime = mn
		}
		if s.MaxTime.IsZero() || mx.After(s.MaxTime) {
			s.MaxTime = mx
		}
	}
	ss := s.stream(b.Stream)
	ss.Batches++
	ss.Events += uint64(len(b.Events))
	ss.Bytes += payload
	ss.PerfLost += perfLost
	ss.Loss = b.Loss
}

func (s *SegmentSummary) addLoss(p *LossPoint) {
	s.note(p.Seq)
	ss := s.stream(p.Stream)
	ss.LossPoints++
	ss.Loss = p.Loss
}

func (s *SegmentSummary) note(seq uint64) {
	if s.Records == 0 {
		s.FirstSeq = seq
	}
	s.LastSeq = seq
	s.Records++
}

func (s *SegmentSummary) stream(name string) *StreamSummary {
	if s.Streams == nil {
		s.Streams = make(map[string]*StreamSummary)
	}
	ss := s.Streams[name]
	if ss == nil {
		ss = &StreamSummary{}
		s.Streams[name] = ss
	}
	return ss
}

func segmentName(i int) string { return fmt.Sprintf("%06d.seg", i) }
