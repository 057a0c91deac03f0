package replay

// Replay throughput, measured on this machine (2 cores), go test -bench
// . ./replay/, 64-byte events in ring buffer batches of 256 (what a live
// reader delivers under load), 262144 events per recording, page cache warm:
//
//	see the figures printed by make bench (events/s, mem_events/s, ratio)
//
// Goals (issue 5): replay into a no-op handler at ≥ 0.8 of the rate of
// iterating the same batches from memory, and ≥ 10 M events/s.

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/internal/filecopy"
	"github.com/ebpfrec/ebpfrec/store"
)

const (
	benchEventSize = 64
	benchBatch     = 256
	benchEvents    = 1 << 18
)

// benchRecording writes benchEvents 64-byte events in batches of
// benchBatch into dir (zstd-compressed, the default, unless uncompressed)
// and returns the batches it wrote (copied). With syscalls, the events are
// instead shaped like the syscalls tracer's under a getpid storm (see
// syscallsEvent).
func benchRecording(b testing.TB, dir string, uncompressed, syscalls bool) []store.Batch {
	b.Helper()
	meta := store.Meta{RecordingID: "bench", Started: time.Unix(1700000000, 0),
		Streams: []store.StreamInfo{{Name: "ev", Kind: store.KindRingbuf}}}
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever, Uncompressed: uncompressed})
	if err != nil {
		b.Fatal(err)
	}
	var out []store.Batch
	t := meta.Started
	rng := rand.New(rand.NewPCG(5, 6))
	ktime := uint64(576908656190)
	for i := 0; i < benchEvents/benchBatch; i++ {
		t = t.Add(time.Millisecond)
		batch := store.Batch{Stream: "ev", Kind: store.KindRingbuf}
		// The syscalls events' times: as bpf.RingbufReader stamps them,
		// from a clock read every 64 events, and at every event while it
		// drains the ring (from a point in 1 batch in 8): 29 changes a
		// batch on average, as in the recorded storm.
		drain := benchBatch
		if rng.IntN(8) == 0 {
			drain = rng.IntN(benchBatch)
		}
		var clock time.Time
		for j := range benchBatch {
			if syscalls {
				raw, ts := syscallsEvent(rng, &ktime, meta.Started)
				if j%64 == 0 || j >= drain {
					clock = ts
				}
				batch.Events = append(batch.Events, store.Event{Raw: raw, Timestamp: clock, CPU: -1})
				continue
			}
			raw := make([]byte, benchEventSize)
			binary.NativeEndian.PutUint64(raw, uint64(t.UnixNano())+uint64(j))
			binary.NativeEndian.PutUint32(raw[8:], uint32(1000+j%50))
			copy(raw[16:], "comm-name")
			batch.Events = append(batch.Events, store.Event{Raw: raw, Timestamp: t, CPU: -1})
		}
		if err := w.Append(&batch); err != nil {
			b.Fatal(err)
		}
		out = append(out, batch)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return out
}

// syscallsEvent returns a 40-byte event of the syscalls tracer's layout
// (ktime_ns, latency_ns, ret, pid, nr, cpu, pad) as a getpid storm makes
// them, and the time it happened. Calls come 1.5 to 1.9 µs apart (1 in 100
// later), in steps of about 20 ns, and last 120 to 210 ns, mostly 140 to
// 161, as in a storm recorded on this machine: compressed, the records
// have as many zstd sequences and literals as that storm's (479 and 867
// per batch, vs 470 and 899), and the previous encoder entropy-coded the
// literals of as many (12.6 %, vs 12.3 %).
func syscallsEvent(rng *rand.Rand, ktime *uint64, base time.Time) ([]byte, time.Time) {
	var d int
	switch p := rng.IntN(100); {
	case p < 60:
		d = 1543 + 20*rng.IntN(6)
	case p < 99:
		d = 1483 + 20*rng.IntN(25) + rng.IntN(2)
	default:
		d = 7483 + rng.IntN(2000)
	}
	*ktime += uint64(d)
	lat := 140 + 10*rng.IntN(3) + rng.IntN(2)
	if rng.IntN(10) == 0 {
		lat = 120 + rng.IntN(90)
	}
	raw := make([]byte, 40)
	binary.NativeEndian.PutUint64(raw, *ktime)
	binary.NativeEndian.PutUint64(raw[8:], uint64(lat))
	binary.NativeEndian.PutUint64(raw[16:], 16804)
	binary.NativeEndian.PutUint32(raw[24:], 16804)
	binary.NativeEndian.PutUint32(raw[28:], 39)
	return raw, base.Add(time.Duration(*ktime))
}

var sink int

// BenchmarkReplayNoop replays a recording of 64-byte events into a no-op
// handler: zstd-compressed (the default), uncompressed (none), and, as
// syscalls, compressed events shaped like a getpid storm's (40 bytes, see
// syscallsEvent: 1.4 times the zstd sequences per byte of the 64-byte
// ones). Each iteration replays the whole recording. It reports the
// replay's events/s, the events/s of delivering the same batches from
// memory to the same handler in the same run (mem_events/s), and their
// ratio (goal ≥ 0.8); and the store reader's own rate (reader_events/s)
// and the replay's rate relative to it (reader_ratio: the replayer's own
// overhead).
func BenchmarkReplayNoop(b *testing.B) {
	b.Run("zstd", func(b *testing.B) { benchReplayNoop(b, false, false) })
	b.Run("none", func(b *testing.B) { benchReplayNoop(b, true, false) })
	b.Run("syscalls", func(b *testing.B) { benchReplayNoop(b, false, true) })
}

func benchReplayNoop(b *testing.B, uncompressed, syscalls bool) {
	dir := filepath.Join(b.TempDir(), "rec")
	batches := benchRecording(b, dir, uncompressed, syscalls)
	// Write back what this and earlier benchmarks left dirty, so that the
	// kernel's writeback does not take a core during the passes.
	syscall.Sync()
	handler := func(_ context.Context, evs []bpf.RingbufEvent) error {
		sink += len(evs)
		return nil
	}
	ctx := context.Background()

	// From memory: the same batches, delivered as a replayer does (one
	// reused []RingbufEvent per batch), to the same handler.
	var evs []bpf.RingbufEvent
	fromMemory := func() int {
		n := 0
		for i := range batches {
			evs = evs[:0]
			for _, e := range batches[i].Events {
				evs = append(evs, bpf.RingbufEvent{Raw: e.Raw, Timestamp: e.Timestamp})
			}
			_ = handler(ctx, evs)
			n += len(evs)
		}
		return n
	}
	// The store reader alone, decoding as it does for the replayer.
	fromReader := func() int {
		sr, err := store.Open(dir, store.ReaderOptions{RingbufEvents: true})
		if err != nil {
			b.Fatal(err)
		}
		defer sr.Close()
		n := 0
		for bt, err := range sr.All() {
			if err != nil {
				b.Fatal(err)
			}
			n += bt.Len()
		}
		return n
	}
	replayOnce := func() int {
		r, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		r.HandleRingbuf("", handler)
		st, err := r.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return int(st.Events)
	}
	fromMemory()
	fromReader()
	replayOnce()

	// The three are interleaved, each timed on its own, so that noise
	// from other processes hits them alike.
	b.ReportAllocs()
	b.SetBytes(int64(benchEvents * len(batches[0].Events[0].Raw)))
	b.ResetTimer()
	var memT, readerT, copyT time.Duration
	var events, memEvents, readerEvents int
	copyBuf := make([]byte, 64<<10)
	for b.Loop() {
		events += replayOnce()
		b.StopTimer()
		start := time.Now()
		memEvents += fromMemory()
		memT += time.Since(start)
		start = time.Now()
		readerEvents += fromReader()
		readerT += time.Since(start)
		start = time.Now()
		if _, err := filecopy.ReadDir(dir, copyBuf); err != nil {
			b.Fatal(err)
		}
		copyT += time.Since(start)
		b.StartTimer()
	}
	// copy/mem is a floor for ratio: only moving the recording's bytes
	// from the page cache, nothing checked or decoded, takes this share of
	// the time the in-memory iteration takes.
	b.ReportMetric(copyT.Seconds()/memT.Seconds(), "copy/mem")
	rate := float64(events) / b.Elapsed().Seconds()
	memRate := float64(memEvents) / memT.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(memRate, "mem_events/s")
	b.ReportMetric(float64(readerEvents)/readerT.Seconds(), "reader_events/s")
	b.ReportMetric(rate/memRate, "ratio")
	b.ReportMetric(rate/(float64(readerEvents)/readerT.Seconds()), "reader_ratio")
}

// BenchmarkReplayDecoded replays the synthetic mixed recording (exec, exit
// and raw streams) through HandleDecoded: the cost per event of decoding
// with the built-in tracers, as the replay command does.
func BenchmarkReplayDecoded(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "rec")
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		b.Fatal(err)
	}
	genBench(b, dir)
	b.ReportAllocs()
	var events uint64
	for b.Loop() {
		r, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		r.HandleDecoded(func(d *Decoded) error {
			if d.Event != nil {
				sink += int(d.Event.PID())
			}
			return nil
		})
		st, err := r.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		events += st.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReplayDecodedInOrder is BenchmarkReplayDecoded through
// HandleDecodedInOrder (default window), timed alternately with the
// recorded order in the same run: ratio is the time-order rate over the
// recorded-order rate.
func BenchmarkReplayDecodedInOrder(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "rec")
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		b.Fatal(err)
	}
	genBench(b, dir)
	run := func(ordered bool) (uint64, time.Duration) {
		start := time.Now()
		r, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fn := func(d *Decoded) error {
			if d.Event != nil {
				sink += int(d.Event.PID())
			}
			return nil
		}
		if ordered {
			r.HandleDecodedInOrder(OrderOptions{}, fn)
		} else {
			r.HandleDecoded(fn)
		}
		st, err := r.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st.Events, time.Since(start)
	}
	var ev, evRec uint64
	var t, tRec time.Duration
	for b.Loop() {
		n, d := run(true)
		ev, t = ev+n, t+d
		b.StopTimer()
		n, d = run(false)
		evRec, tRec = evRec+n, tRec+d
		b.StartTimer()
	}
	rate, recRate := float64(ev)/t.Seconds(), float64(evRec)/tRec.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(recRate, "recorded_events/s")
	b.ReportMetric(rate/recRate, "ratio")
}
