package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// testMeta declares a ring buffer stream and a perf buffer stream.
func testMeta() Meta {
	return Meta{
		RecordingID:   "test-recording",
		Hostname:      "testhost",
		KernelRelease: "6.1.0-test",
		BootID:        "00000000-0000-0000-0000-000000000001",
		MonoToWall:    1700000000000000000,
		BTFID:         "sha256:abc",
		ToolVersion:   "test",
		CommandLine:   []string{"ebpfrec", "record", "--test"},
		Streams: []StreamInfo{
			{Name: "exec", Tracer: "exec", Map: "events", Kind: KindRingbuf, EventType: "exec_event"},
			{Name: "sys", Tracer: "syscalls", Map: "perf_events", Kind: KindPerfbuf, EventType: "syscall_event"},
		},
	}
}

var testBase = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// genBatch makes a batch of realistic-looking events: a fixed struct with
// pids, timestamps, small ints, zero padding and a comm string. seq
// determines everything, so the same call gives the same batch.
func genBatch(rng *rand.Rand, i int, t time.Time) *Batch {
	stream, kind := "exec", KindRingbuf
	if i%3 == 2 {
		stream, kind = "sys", KindPerfbuf
	}
	n := 1 + rng.IntN(40)
	b := &Batch{Stream: stream, Kind: kind, Events: make([]Event, n)}
	b.Loss = Loss{KernelLost: uint64(i / 7), RingbufDropped: uint64(i / 11), UserDropped: uint64(i / 13)}
	oneTime := rng.IntN(2) == 0
	for j := range b.Events {
		e := &b.Events[j]
		e.Raw = genEvent(rng, i, j)
		if oneTime {
			e.Timestamp = t
		} else {
			e.Timestamp = t.Add(time.Duration(j) * time.Microsecond)
		}
		e.CPU = -1
		if kind == KindPerfbuf {
			e.CPU = rng.IntN(4)
			if rng.IntN(10) == 0 {
				e.Lost = uint64(rng.IntN(1000))
			}
		}
	}
	return b
}

var comms = []string{"bash", "systemd", "sshd", "kworker/0:1", "containerd-shim", "python3", "go"}

func genEvent(rng *rand.Rand, i, j int) []byte {
	size := 64 + 8*rng.IntN(24)
	if rng.IntN(200) == 0 {
		size = 5000 + rng.IntN(20000) // now and then a large one
	}
	e := make([]byte, size)
	binary.LittleEndian.PutUint64(e[0:], uint64(testBase.UnixNano())+uint64(i*1000+j))
	binary.LittleEndian.PutUint32(e[8:], uint32(1000+rng.IntN(50)))
	binary.LittleEndian.PutUint32(e[12:], uint32(1000+rng.IntN(50)))
	binary.LittleEndian.PutUint32(e[16:], uint32(rng.IntN(4)))
	binary.LittleEndian.PutUint64(e[24:], uint64(rng.IntN(300)))
	copy(e[32:48], comms[rng.IntN(len(comms))])
	if size > 96 {
		copy(e[64:], fmt.Sprintf("/usr/bin/%s --flag=%d", comms[rng.IntN(len(comms))], rng.IntN(100)))
	}
	return e
}

// cloneBatch deep-copies b (the reader reuses its buffers).
func cloneBatch(b *Batch) *Batch {
	c := *b
	c.Events = make([]Event, len(b.Events))
	for i, e := range b.Events {
		e.Raw = bytes.Clone(e.Raw)
		c.Events[i] = e
	}
	if b.Ringbuf != nil {
		c.Ringbuf = make([]RingbufEvent, len(b.Ringbuf))
		for i, e := range b.Ringbuf {
			e.Raw = bytes.Clone(e.Raw)
			c.Ringbuf[i] = e
		}
	}
	return &c
}

func batchesEqual(t testing.TB, got, want *Batch) {
	t.Helper()
	if got.Seq != want.Seq || got.Stream != want.Stream || got.Kind != want.Kind || got.Loss != want.Loss || len(got.Events) != len(want.Events) {
		t.Fatalf("batch %d: got seq %d stream %q kind %v loss %+v %d events, want seq %d stream %q kind %v loss %+v %d events",
			want.Seq, got.Seq, got.Stream, got.Kind, got.Loss, len(got.Events), want.Seq, want.Stream, want.Kind, want.Loss, len(want.Events))
	}
	for i := range got.Events {
		g, w := &got.Events[i], &want.Events[i]
		if !bytes.Equal(g.Raw, w.Raw) || !g.Timestamp.Equal(w.Timestamp) || g.CPU != w.CPU || g.Lost != w.Lost {
			t.Fatalf("batch %d event %d differs: got ts %v cpu %d lost %d %d bytes, want ts %v cpu %d lost %d %d bytes",
				want.Seq, i, g.Timestamp, g.CPU, g.Lost, len(g.Raw), w.Timestamp, w.CPU, w.Lost, len(w.Raw))
		}
	}
}

func strconvU(v uint64) string { return fmt.Sprint(v) }

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashChild); dir != "" {
		crashChild(dir)
	}
	if cfg := os.Getenv(envPowerChild); cfg != "" {
		powerCutChild(cfg)
	}
	if dir := os.Getenv(envReadOnlyChild); dir != "" {
		if err := createIn(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if templateDir != "" {
		os.RemoveAll(templateDir)
	}
	os.Exit(code)
}

// openSegmentEmpty says whether no record was appended to the segment that
// new records go to.
func (w *Writer) openSegmentEmpty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.summary.Records == 0
}
