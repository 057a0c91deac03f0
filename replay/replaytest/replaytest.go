// Package replaytest makes synthetic recordings for tests of replay and of
// the commands built on it, and fingerprints batches so that what a handler
// received can be compared, batch by batch, with what was recorded.
package replaytest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/store"
)

// The synthetic recordings of these tests: three streams as the recorder
// declares them (two built-in tracers, one of them a perf buffer, and a
// user object's stream), realistic raw events, several segments, loss
// counters that move, in batches and in loss points.

// Start is the start of every synthetic recording; Mono is
// CLOCK_MONOTONIC then.
var (
	Start = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	Mono  = int64(5_000_000_000_000) // 5000 s after boot
)

// Meta is the metadata of the synthetic recordings: the streams exec (ring
// buffer), exit (perf buffer) and custom (a user object's ring buffer).
func Meta() store.Meta {
	return store.Meta{
		RecordingID:   "replay-test",
		Hostname:      "testhost",
		KernelRelease: "6.1.0-test",
		MonoToWall:    Start.UnixNano() - Mono,
		ToolVersion:   "test",
		Started:       Start,
		Streams: []store.StreamInfo{
			{Name: "exec", Tracer: "exec", Map: "exec_events", Kind: store.KindRingbuf, EventType: "exec.Event"},
			{Name: "exit", Tracer: "exit", Map: "exit_events", Kind: store.KindPerfbuf, EventType: "exit.Event"},
			{Name: "custom", Tracer: "myobj", Map: "events", Kind: store.KindRingbuf, EventType: "my_event",
				Object: &store.ObjectInfo{Path: "/opt/myobj.o", SHA256: "00", BTFType: "my_event"}},
		},
	}
}

// ExecRaw builds a struct exec_event of its 560-byte layout, before the
// cpu field (see bpf/tracers/exec, whose Decode still reads it), argv
// NUL-separated in the last 256: what the recordings of the golden tests
// hold.
func ExecRaw(ktime uint64, pid, ppid, uid uint32, comm, filename string, args ...string) []byte {
	b := make([]byte, 560)
	binary.NativeEndian.PutUint64(b[0:], ktime)
	binary.NativeEndian.PutUint32(b[8:], pid)
	binary.NativeEndian.PutUint32(b[12:], ppid)
	binary.NativeEndian.PutUint32(b[16:], uid)
	binary.NativeEndian.PutUint32(b[20:], pid)
	copy(b[24:39], comm)
	copy(b[40:295], filename)
	var argv []byte
	for _, a := range args {
		argv = append(append(argv, a...), 0)
	}
	binary.NativeEndian.PutUint32(b[300:], uint32(len(argv)))
	copy(b[304:], argv)
	return b
}

// ExitRaw builds a struct exit_event (see bpf/tracers/exit) with the 4
// bytes of padding a perf sample carries.
func ExitRaw(ktime, lifetime uint64, pid, ppid uint32, status uint32, comm string) []byte {
	b := make([]byte, 52)
	binary.NativeEndian.PutUint64(b[0:], ktime)
	binary.NativeEndian.PutUint64(b[8:], lifetime)
	binary.NativeEndian.PutUint32(b[16:], pid)
	binary.NativeEndian.PutUint32(b[20:], ppid)
	binary.NativeEndian.PutUint32(b[24:], pid)
	binary.NativeEndian.PutUint32(b[28:], status)
	copy(b[32:47], comm)
	return b
}

// OpenRaw builds a struct open_event of its 320-byte layout, before the cpu
// field (see bpf/tracers/open, whose Decode still reads it), of
// syscall number nr (e.g. open.NROpenat), relative to the working
// directory.
func OpenRaw(ktime, latency uint64, pid uint32, nr uint32, ret int32, comm, path string) []byte {
	b := make([]byte, 320)
	binary.NativeEndian.PutUint64(b[0:], ktime)
	binary.NativeEndian.PutUint64(b[8:], latency)
	binary.NativeEndian.PutUint32(b[24:], pid)
	binary.NativeEndian.PutUint32(b[28:], pid)
	binary.NativeEndian.PutUint32(b[32:], uint32(ret))
	binary.NativeEndian.PutUint32(b[36:], 0xffffff9c) // AT_FDCWD
	binary.NativeEndian.PutUint32(b[44:], nr)
	copy(b[48:63], comm)
	copy(b[64:319], path)
	return b
}

var (
	comms = []string{"bash", "ls", "make", "go", "sh", "cc1", "ld", "git"}
	args  = []string{"-v", "some file"}
)

// Generate writes a synthetic recording of n batches into dir and
// returns the fingerprints of its batches and its loss points in order
// (loss points as "LOSS ..." lines). Everything depends on n only.
func Generate(t TB, dir string, n int, wopts store.WriterOptions) []string {
	t.Helper()
	return GenerateStep(t, dir, n, wopts, nil)
}

// TB is the part of [testing.TB] that Generate uses, so that a helper
// process started by a test (outside any test function) can call it too.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// GenerateStep is Generate calling step after each batch (and its
// loss point), before the writer is closed.
func GenerateStep(t TB, dir string, n int, wopts store.WriterOptions, step func(i int, w *store.Writer, fps []string)) []string {
	t.Helper()
	if wopts.Sync == 0 {
		wopts.Sync = store.SyncNever
	}
	w, err := store.Create(dir, Meta(), wopts)
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	var loss [3]store.Loss
	prev := map[string]store.Loss{}
	now := Start.Add(10 * time.Millisecond)
	pid := uint32(1000)
	for i := range n {
		now = now.Add(time.Duration(1+i%5) * time.Millisecond)
		b := &store.Batch{}
		ev := 1 + (i*7)%9
		switch i % 4 {
		case 0, 1:
			b.Stream, b.Kind = "exec", store.KindRingbuf
			if i%10 == 9 {
				loss[0].RingbufDropped += uint64(i)
			}
			b.Loss = loss[0]
			for j := range ev {
				pid++
				kt := uint64(now.UnixNano()-Start.UnixNano()+Mono) - uint64(ev-j)*1000
				c := comms[(i+j)%len(comms)]
				b.Events = append(b.Events, store.Event{
					Raw:       ExecRaw(kt, pid, pid-1-uint32(j%3), uint32(j%2)*1000, c, "/usr/bin/"+c, append([]string{c}, args[:j%3]...)...),
					Timestamp: now, CPU: -1})
			}
		case 2:
			b.Stream, b.Kind = "exit", store.KindPerfbuf
			b.Loss = loss[1]
			for j := range ev {
				kt := uint64(now.UnixNano()-Start.UnixNano()+Mono) - uint64(ev-j)*1000
				e := store.Event{
					Raw:       ExitRaw(kt, uint64(j+1)*1_000_000, pid-uint32(j), 1, uint32(j%3)<<8|uint32(j%5/4*9), comms[j%len(comms)]),
					Timestamp: now, CPU: j % 4}
				if i%6 == 2 && j == 0 {
					e.Lost = uint64(i)
					loss[1].KernelLost += e.Lost
					b.Loss = loss[1]
				}
				b.Events = append(b.Events, e)
			}
		case 3:
			b.Stream, b.Kind = "custom", store.KindRingbuf
			b.Loss = loss[2]
			for j := range ev {
				raw := make([]byte, 8+j)
				binary.NativeEndian.PutUint64(raw, uint64(i*100+j))
				b.Events = append(b.Events, store.Event{Raw: raw, Timestamp: now, CPU: -1})
			}
		}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		if b.Loss != prev[b.Stream] {
			prev[b.Stream] = b.Loss
			fps = append(fps, fmt.Sprintf("LOSS %s %+v", b.Stream, b.Loss))
		}
		fps = append(fps, FingerprintBatch(b))
		if i%8 == 7 {
			loss[2].UserDropped += 3
			if err := w.AppendLoss("custom", now, loss[2]); err != nil {
				t.Fatal(err)
			}
			prev["custom"] = loss[2]
			fps = append(fps, fmt.Sprintf("LOSS custom %+v", loss[2]))
		}
		if step != nil {
			step(i, w, fps)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return fps
}

// FingerprintBatch fingerprints a batch as written.
func FingerprintBatch(b *store.Batch) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s %s n=%d", b.Stream, b.Kind, len(b.Events))
	for _, e := range b.Events {
		cpu := e.CPU
		if b.Kind == store.KindRingbuf {
			cpu = -1 // ring buffer events carry no CPU
		}
		fmt.Fprintf(&s, " [%s t=%d cpu=%d lost=%d]", hex.EncodeToString(e.Raw), e.Timestamp.UnixNano(), cpu, e.Lost)
	}
	return s.String()
}

// FingerprintRing fingerprints a ring buffer batch as a handler received
// it, comparable with FingerprintBatch of the batch as written.
func FingerprintRing(stream string, evs []bpf.RingbufEvent) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s ringbuf n=%d", stream, len(evs))
	for _, e := range evs {
		fmt.Fprintf(&s, " [%s t=%d cpu=-1 lost=0]", hex.EncodeToString(e.Raw), e.Timestamp.UnixNano())
	}
	return s.String()
}

// FingerprintPerf fingerprints a perf buffer batch as a handler received
// it, comparable with FingerprintBatch of the batch as written.
func FingerprintPerf(stream string, evs []bpf.PerfbufEvent) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s perfbuf n=%d", stream, len(evs))
	for _, e := range evs {
		fmt.Fprintf(&s, " [%s t=%d cpu=%d lost=%d]", hex.EncodeToString(e.Raw), e.Timestamp.UnixNano(), e.CPU, e.Lost)
	}
	return s.String()
}

// Running writes the recording of Generate(t, dir, n, wopts) and commits
// every batch, but keeps its writer open, as a recorder still running
// would: readers see a live recording until the returned function closes
// the writer (call it once, at the end of the test).
func Running(t TB, dir string, n int, wopts store.WriterOptions) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	release := make(chan struct{})
	go func() {
		defer close(done)
		GenerateStep(t, dir, n, wopts, func(i int, w *store.Writer, _ []string) {
			if i == n-1 {
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				release <- struct{}{}
				<-release // the writer stays open until stop
			}
		})
	}()
	<-release
	return func() { release <- struct{}{}; <-done }
}

// Interleaved describes the recording that GenerateInterleaved writes.
type Interleaved struct {
	// Events is the number of events recorded; LatePID the pid of the one
	// event recorded later than the default time-order window (an open);
	// MaxBehind how far behind (kernel time) the latest event already
	// recorded any other event is, at most (within the window).
	Events    int
	LatePID   uint32
	MaxBehind time.Duration
}

// GenerateInterleaved writes into dir a recording whose streams overlap
// in time as a recorder's do: spans of 100 ms, each with an exec batch
// (ring buffer, in time order) and an exit batch (perf buffer, 4 CPUs read
// one after the other, so out of order within the batch) that is recorded
// after the next span's exec batch, as a reader handing it over at its
// flush deadline would. After the last span comes one open event stamped
// 800 ms before the end (a syscall blocked that long: later than the
// default window). Times are kernel times; the events carry distinct pids.
func GenerateInterleaved(t TB, dir string, spans int) Interleaved {
	t.Helper()
	meta := Meta()
	meta.Streams = append(meta.Streams[:2:2], store.StreamInfo{Name: "open", Tracer: "open", Map: "open_events", Kind: store.KindRingbuf, EventType: "open.Event"})
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever, FlushBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const span = 100 * time.Millisecond
	kt := func(d time.Duration) uint64 { return uint64(Mono + int64(d)) }
	read := func(d time.Duration) time.Time { return Start.Add(d + 5*time.Millisecond) }
	var info Interleaved
	pid := uint32(2000)
	var pendingExit *store.Batch
	appendB := func(b *store.Batch) {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		info.Events += len(b.Events)
	}
	for k := range spans {
		base := time.Duration(k) * span
		ex := &store.Batch{Stream: "exec", Kind: store.KindRingbuf}
		for j := range 5 {
			pid++
			at := base + time.Duration(j)*20*time.Millisecond + time.Millisecond
			ex.Events = append(ex.Events, store.Event{Raw: ExecRaw(kt(at), pid, 1, 0, "sh", "/bin/sh", "sh", "-c", "true"), Timestamp: read(base + span), CPU: -1})
		}
		appendB(ex)
		if pendingExit != nil {
			appendB(pendingExit)
		}
		pendingExit = &store.Batch{Stream: "exit", Kind: store.KindPerfbuf}
		for c := range 4 {
			for _, off := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond} {
				pid++
				at := base + time.Duration(c)*5*time.Millisecond + off
				pendingExit.Events = append(pendingExit.Events, store.Event{Raw: ExitRaw(kt(at), 1000, pid, 1, 0, "true"), Timestamp: read(base + span), CPU: c})
			}
		}
	}
	appendB(pendingExit)
	// The exit batch of the last span follows events up to 80 ms after its
	// span started, behind which its earliest event (10 ms) is 190 ms at
	// most (an exit batch follows the next span's exec batch).
	info.MaxBehind = 2*span - 10*time.Millisecond
	end := time.Duration(spans) * span
	pid++
	info.LatePID = pid
	appendB(&store.Batch{Stream: "open", Kind: store.KindRingbuf, Events: []store.Event{
		{Raw: OpenRaw(kt(end-800*time.Millisecond), uint64(800*time.Millisecond), pid, 257, -2, "cat", "/fifo"), Timestamp: read(end), CPU: -1}}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return info
}
