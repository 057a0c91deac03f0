package analyze

// Rows: each recorded event decoded into the row of its table.

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/ebpfrec/ebpfrec/store"
)

// cpuVals backs the cpu column's pointers (no allocation per row). The
// cpu of a row is the buffer's (perf) or else the event's own (ring buffer
// tracers record it: tracers.EventCPU); NULL only for events of an earlier
// layout without it.
var cpuVals = func() (v [1024]int32) {
	for i := range v {
		v[i] = int32(i)
	}
	return v
}()

func cpuPtr(c int) *int32 {
	if c < 0 {
		return nil
	}
	if c < len(cpuVals) {
		return &cpuVals[c]
	}
	v := int32(c)
	return &v
}

// ownerPID is a tcp event's owner pid for the pid column: NULL (nil) for
// pid 0, the tracer's word for an owner it could not know.
func ownerPID(pid uint32) *uint32 {
	if pid == 0 {
		return nil
	}
	return &pid
}

// ownerComm is the comm column of a tcp event: NULL with an unknown owner.
func ownerComm(pid uint32, comm string) *string {
	if pid == 0 {
		return nil
	}
	return &comm
}

func (x *exporter) onLoss(lp store.LossPoint) {
	s := x.stream(lp.Stream)
	x.counters(s, lp.Time.UnixNano(), lp.Seq, lp.Loss)
}

// counters emits a losses row for the increase of s's cumulative counters
// over the highest values seen. Batches and loss points carry snapshots
// taken by different goroutines of the recorder, so in a recording made
// before the recorder logged them in order one may be older than the one
// before it: a lower value is stale, not a reset (store.Loss.Rise).
func (x *exporter) counters(s *streamState, t int64, seq uint64, l store.Loss) {
	d := s.loss.Rise(l)
	if d.Total() == 0 {
		return
	}
	r := x.losses.add(t)
	// The high-water marks are the running totals: the sums of the rows'
	// increments so far.
	*r = LossRow{Time: t, Stream: s.name, Seq: seq, Source: LossCounters,
		KernelLostPerfbuf: d.KernelLost, KernelLostRingbuf: d.RingbufDropped, EbpfrecDropped: d.UserDropped,
		KernelLostPerfbufTotal: s.loss.KernelLost, KernelLostRingbufTotal: s.loss.RingbufDropped, EbpfrecDroppedTotal: s.loss.UserDropped,
		KernelMissed: d.KernelMissed, KernelMissedTotal: s.loss.KernelMissed}
}

func (x *exporter) batch(b *store.Batch) {
	s := x.stream(b.Stream)
	x.batches++
	x.events += uint64(len(b.Events))
	seq := b.Seq
	name := s.name
	switch s.dec {
	case decBuiltin:
		for i := range b.Events {
			if err := s.add(s, b, i); err != nil {
				x.undecodable(s, b, i, err)
			}
		}
	case decLayout:
		for i := range b.Events {
			s.user.add(s, b, i)
		}
	default:
		for i := range b.Events {
			x.rawRow(s, b, i, nil)
		}
	}
	for i := range b.Events {
		e := &b.Events[i]
		x.rawBytes += uint64(len(e.Raw))
		if e.Lost > 0 {
			t := e.Timestamp.UnixNano()
			s.perfSample += e.Lost
			*x.losses.add(t) = LossRow{Time: t, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Source: LossPerfSample, KernelLostPerfbuf: e.Lost, KernelLostPerfbufTotal: s.perfSample}
		}
	}
	if n := len(b.Events); n > 0 {
		x.lastTime = b.Events[n-1].Timestamp.UnixNano()
	}
	if b.Loss != s.loss {
		x.counters(s, x.lastTime, seq, b.Loss)
	}
}

// text returns s as valid UTF-8 for a string column: Parquet and Arrow
// strings must be UTF-8, and DuckDB refuses to read a file holding a value
// that is not (the whole table then cannot be queried). Each byte that is
// not UTF-8 becomes U+FFFD, as in replay's JSON, and is counted for a
// warning; names on Linux are bytes, so this happens.
func (x *exporter) text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	x.notUTF8++
	b := make([]byte, 0, len(s)+8)
	for _, r := range s { // an invalid byte ranges as one RuneError
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// texts is text over a list; the list is copied only if a value changes.
func (x *exporter) texts(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := slices.Clone(ss)
			for j := i; j < len(out); j++ {
				out[j] = x.text(out[j])
			}
			return out
		}
	}
	return ss
}

func (x *exporter) undecodable(s *streamState, b *store.Batch, i int, err error) {
	x.decodeErrs++
	msg := x.text(err.Error())
	where := fmt.Sprintf("stream %s, batch %d, event %d: %v", s.name, b.Seq, i, err)
	if x.firstDecodeErr == "" {
		x.firstDecodeErr = where
	}
	x.warn("%s: exported to the raw table", where)
	x.rawRow(s, b, i, &msg)
}

func (x *exporter) rawRow(s *streamState, b *store.Batch, i int, msg *string) {
	e := &b.Events[i]
	t := e.Timestamp.UnixNano()
	x.seenTime(t)
	*x.raw.add(t) = RawRow{Time: t, Stream: s.name, CPU: cpuPtr(e.CPU), Seq: b.Seq, Index: uint32(i),
		Length: uint32(len(e.Raw)), Bytes: bytes.Clone(e.Raw), Error: msg}
}

// resolved holds the process columns of an event's row (rows.go): the
// process as it was at the event's time, each nil (NULL in the tcp table,
// values' zero in the others) when the table does not know it. They point into the table's processes, whose strings
// textProcesses made UTF-8 once, so a row costs no allocation.
type resolved struct {
	comm, containerID, exe *string
	ppid                   *uint32
	cgroupID               *uint64
}

// values are the columns of the tables whose columns are plain: "" and 0
// for a process the table does not know.
func (r resolved) values() (comm string, ppid uint32, cgroupID uint64, containerID, exe string) {
	if r.comm == nil {
		return
	}
	return *r.comm, *r.ppid, *r.cgroupID, *r.containerID, *r.exe
}

// process returns the columns of process pid as it was at ktime kt; every
// event table fills its columns from here.
func (x *exporter) process(pid uint32, kt uint64) resolved {
	p := x.procs.Resolve(pid, kt)
	if p == nil {
		return resolved{}
	}
	return resolved{comm: &p.Comm, containerID: &p.ContainerID, exe: &p.Exe, ppid: &p.Ppid, cgroupID: &p.CgroupID}
}

// textProcesses makes the strings of the table's processes UTF-8 (text),
// once for every row that resolves to them.
func (x *exporter) textProcesses() {
	for _, p := range x.procs.Processes() {
		p.Comm, p.Exe, p.ContainerID, p.CgroupPath = x.text(p.Comm), x.text(p.Exe), x.text(p.ContainerID), x.text(p.CgroupPath)
		p.Args = x.texts(p.Args)
	}
}

// addProcesses writes the processes table: every process life (its
// strings made UTF-8 by textProcesses).
func (x *exporter) addProcesses() {
	for _, p := range x.procs.Processes() {
		t := x.meta.WallTime(p.Begin, x.meta.Started)
		*x.processes.add(t) = ProcessRow{Time: t, Pid: p.Pid, Ppid: p.Ppid, UID: p.UID, Comm: p.Comm, Exe: p.Exe,
			Args: p.Args, ArgsTruncated: p.ArgsTruncated, CgroupID: p.CgroupID, CgroupPath: p.CgroupPath,
			ContainerID: p.ContainerID, StartKtimeNs: p.StartNs, BeginKtimeNs: p.Begin, EndKtimeNs: p.End,
			Exited: p.Exited, ExitStatus: p.ExitCode, Origin: p.Origin}
	}
}

func (x *exporter) addRecording(r *store.Reader, dir string) {
	m := x.meta
	var tracerNames, streamNames, missedUncounted []string
	for _, si := range m.Streams {
		streamNames = append(streamNames, si.Name)
		if !si.KernelMissedCounted {
			missedUncounted = append(missedUncounted, si.Name)
		}
		if si.Tracer != "" && !slices.Contains(tracerNames, si.Tracer) {
			tracerNames = append(tracerNames, si.Tracer)
		}
	}
	sort.Strings(tracerNames)
	row := RecordingRow{
		RecordingID: x.text(m.RecordingID), Host: x.text(m.Hostname), Kernel: x.text(m.KernelRelease), BootID: x.text(m.BootID),
		BTFID: x.text(m.BTFID), ToolVersion: x.text(m.ToolVersion), CommandLine: x.texts(m.CommandLine),
		Started: m.Started.UnixNano(), MonoToWallNs: m.MonoToWall,
		Tracers: x.texts(tracerNames), Streams: x.texts(streamNames), KernelMissedUncounted: x.texts(missedUncounted), Segments: uint32(len(r.Segments())),
		Batches: x.batches, Events: x.events, RawBytes: x.rawBytes,
		DamagedBatches: x.damaged, DecodeErrors: x.decodeErrs, ExportedAt: time.Now().UnixNano(),
	}
	if abs, err := filepath.Abs(dir); err == nil {
		row.Source = x.text(abs)
	}
	t := m.Started.UnixNano()
	if x.anyT {
		lo, hi := x.minT, x.maxT
		row.FirstEvent, row.LastEvent = &lo, &hi
		t = lo
	}
	*x.recording.add(t) = row
}
