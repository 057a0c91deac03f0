package replay

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/store"
)

// The synthetic recordings of these tests: three streams as the recorder
// declares them (two built-in tracers, one of them a perf buffer, and a
// user object's stream), realistic raw events, several segments, loss
// counters that move, in batches and in loss points.

// testStart is the start of every synthetic recording; testMono is
// CLOCK_MONOTONIC then.
var (
	testStart = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	testMono  = int64(5_000_000_000_000) // 5000 s after boot
)

func testMeta() store.Meta {
	return store.Meta{
		RecordingID:   "replay-test",
		Hostname:      "testhost",
		KernelRelease: "6.1.0-test",
		MonoToWall:    testStart.UnixNano() - testMono,
		ToolVersion:   "test",
		Started:       testStart,
		Streams: []store.StreamInfo{
			{Name: "exec", Tracer: "exec", Map: "exec_events", Kind: store.KindRingbuf, EventType: "exec.Event"},
			{Name: "exit", Tracer: "exit", Map: "exit_events", Kind: store.KindPerfbuf, EventType: "exit.Event"},
			{Name: "custom", Tracer: "myobj", Map: "events", Kind: store.KindRingbuf, EventType: "my_event",
				Object: &store.ObjectInfo{Path: "/opt/myobj.o", SHA256: "00", BTFType: "my_event"}},
		},
	}
}

// execRaw builds a struct exec_event (see bpf/tracers/exec).
func execRaw(ktime uint64, pid, ppid, uid uint32, comm, filename string) []byte {
	b := make([]byte, 304)
	binary.NativeEndian.PutUint64(b[0:], ktime)
	binary.NativeEndian.PutUint32(b[8:], pid)
	binary.NativeEndian.PutUint32(b[12:], ppid)
	binary.NativeEndian.PutUint32(b[16:], uid)
	binary.NativeEndian.PutUint32(b[20:], pid)
	copy(b[24:39], comm)
	copy(b[40:295], filename)
	return b
}

// exitRaw builds a struct exit_event (see bpf/tracers/exit) with the 4
// bytes of padding a perf sample carries.
func exitRaw(ktime, lifetime uint64, pid, ppid uint32, status uint32, comm string) []byte {
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

var comms = []string{"bash", "ls", "make", "go", "sh", "cc1", "ld", "git"}

// genRecording writes a synthetic recording of n batches into dir and
// returns the fingerprints of its batches and its loss points in order
// (loss points as "LOSS ..." lines). Everything depends on n only.
func genRecording(t testing.TB, dir string, n int, wopts store.WriterOptions) []string {
	t.Helper()
	return genRecordingStep(t, dir, n, wopts, nil)
}

// genRecordingStep is genRecording calling step after each batch (and its
// loss point), before the writer is closed.
func genRecordingStep(t testing.TB, dir string, n int, wopts store.WriterOptions, step func(i int, w *store.Writer, fps []string)) []string {
	t.Helper()
	if wopts.Sync == 0 {
		wopts.Sync = store.SyncNever
	}
	w, err := store.Create(dir, testMeta(), wopts)
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	var loss [3]store.Loss
	prev := map[string]store.Loss{}
	now := testStart.Add(10 * time.Millisecond)
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
				kt := uint64(now.UnixNano()-testStart.UnixNano()+testMono) - uint64(ev-j)*1000
				c := comms[(i+j)%len(comms)]
				b.Events = append(b.Events, store.Event{
					Raw:       execRaw(kt, pid, pid-1-uint32(j%3), uint32(j%2)*1000, c, "/usr/bin/"+c),
					Timestamp: now, CPU: -1})
			}
		case 2:
			b.Stream, b.Kind = "exit", store.KindPerfbuf
			b.Loss = loss[1]
			for j := range ev {
				kt := uint64(now.UnixNano()-testStart.UnixNano()+testMono) - uint64(ev-j)*1000
				e := store.Event{
					Raw:       exitRaw(kt, uint64(j+1)*1_000_000, pid-uint32(j), 1, uint32(j%3)<<8|uint32(j%5/4*9), comms[j%len(comms)]),
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
		fps = append(fps, fingerprintStore(b))
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

// fingerprintStore fingerprints a batch as written.
func fingerprintStore(b *store.Batch) string {
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

func fingerprintRing(stream string, evs []bpf.RingbufEvent) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s ringbuf n=%d", stream, len(evs))
	for _, e := range evs {
		fmt.Fprintf(&s, " [%s t=%d cpu=-1 lost=0]", hex.EncodeToString(e.Raw), e.Timestamp.UnixNano())
	}
	return s.String()
}

func fingerprintPerf(stream string, evs []bpf.PerfbufEvent) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s perfbuf n=%d", stream, len(evs))
	for _, e := range evs {
		fmt.Fprintf(&s, " [%s t=%d cpu=%d lost=%d]", hex.EncodeToString(e.Raw), e.Timestamp.UnixNano(), e.CPU, e.Lost)
	}
	return s.String()
}

// collector replays into fingerprints, loss points included.
type collector struct {
	r   *Replayer
	mu  sync.Mutex
	fps []string
}

func (c *collector) add(fp string) {
	c.mu.Lock()
	c.fps = append(c.fps, fp)
	c.mu.Unlock()
}

// count returns the number of batch fingerprints so far.
func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(onlyBatches(c.fps))
}

// snapshot returns the fingerprints so far.
func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.fps...)
}

// newCollector opens dir and installs fingerprinting handlers for every
// stream; OnLoss is wrapped to record loss points.
func newCollector(t testing.TB, dir string, opts Options) *collector {
	t.Helper()
	c := &collector{}
	user := opts.OnLoss
	opts.OnLoss = func(p store.LossPoint) {
		c.add(fmt.Sprintf("LOSS %s %+v", p.Stream, p.Loss))
		if user != nil {
			user(p)
		}
	}
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.r = r
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		c.add(fingerprintRing(r.Current().Stream, evs))
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		c.add(fingerprintPerf(r.Current().Stream, evs))
		return nil
	})
	return c
}

// onlyBatches drops the loss lines of fingerprints.
func onlyBatches(fps []string) []string {
	var out []string
	for _, f := range fps {
		if !strings.HasPrefix(f, "LOSS ") {
			out = append(out, f)
		}
	}
	return out
}

// compareFingerprints reports the first difference.
func compareFingerprints(t testing.TB, got, want []string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("batch %d differs:\n got %.300s\nwant %.300s", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
}

// fakeClock is a Clock whose After returns at once and advances the
// clock, recording each wait.
type fakeClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

type (
	bpfRing = bpf.RingbufEvent
	bpfPerf = bpf.PerfbufEvent
)
