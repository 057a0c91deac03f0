package store

// Benchmarks of the recording format. Each reports its goal metrics as
// ratios against a baseline measured in the same run (b.ReportMetric):
//
//   - BenchmarkAppend: store-MB/s and plain-MB/s (the same payload written
//     to a plain file with the same sync policy: a write per FlushBytes and
//     fdatasync every FlushInterval), speed-ratio (goal >= 0.7), disk/payload
//     (bytes of the segment files per raw event byte, goal <= 1.10),
//     devwrite/payload (sectors written by the device backing the temp
//     directory, from /sys/dev/block/M:m/stat, per raw event byte, goal <=
//     1.3; device-wide, so other writers on the machine add noise) and
//     procwrite/payload (this process's write_bytes from /proc/self/io).
//   - BenchmarkRead: store-events/s reading a recording sequentially against
//     mem-events/s iterating the same batches held in memory, both through
//     the same handler; read-ratio (goal >= 0.8).
//   - BenchmarkCompression: what per-batch zstd costs and saves on
//     synthetic exec/syscall-like events.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/filecopy"
)

// benchBatches makes batches the size a ring buffer reader delivers when
// woken every few hundred events: 128 events of 64-256 bytes.
func benchBatches(n int) ([]*Batch, uint64, uint64) {
	rng := rand.New(rand.NewPCG(11, 12))
	var out []*Batch
	var payload, events uint64
	t := testBase
	for i := 0; i < n; i++ {
		b := &Batch{Stream: "exec", Kind: KindRingbuf, Loss: Loss{RingbufDropped: uint64(i / 100)}}
		if i%4 == 3 {
			b.Stream, b.Kind = "sys", KindPerfbuf
		}
		for j := 0; j < 128; j++ {
			raw := benchEvent(rng, i*128+j)
			e := Event{Raw: raw, Timestamp: t, CPU: -1}
			if b.Kind == KindPerfbuf {
				e.CPU = j % 2
				e.Timestamp = t.Add(time.Duration(j) * time.Microsecond)
			}
			b.Events = append(b.Events, e)
			payload += uint64(len(raw))
		}
		events += 128
		t = t.Add(time.Millisecond)
		out = append(out, b)
	}
	return out, payload, events
}

// benchEvent is an exec- or syscall-like event struct: timestamp, pid, tid,
// uid, a syscall number and arguments (small ints), return value, comm and
// filename strings, zero padding.
func benchEvent(rng *rand.Rand, i int) []byte {
	size := 64 + 64*rng.IntN(4) // 64, 128, 192, 256
	e := make([]byte, size)
	binary.LittleEndian.PutUint64(e[0:], uint64(1_000_000_000+i*1733))
	binary.LittleEndian.PutUint32(e[8:], uint32(1000+rng.IntN(200)))
	binary.LittleEndian.PutUint32(e[12:], uint32(1000+rng.IntN(200)))
	binary.LittleEndian.PutUint32(e[16:], uint32(rng.IntN(3)*1000))
	binary.LittleEndian.PutUint32(e[20:], uint32(rng.IntN(330)))
	binary.LittleEndian.PutUint64(e[24:], uint64(rng.IntN(64)))
	binary.LittleEndian.PutUint64(e[32:], uint64(0x7ffd_0000_0000+rng.IntN(1<<20)))
	copy(e[48:64], comms[rng.IntN(len(comms))])
	if size > 64 {
		copy(e[64:], fmt.Sprintf("/usr/lib/x86_64-linux-gnu/lib%s.so.%d", comms[rng.IntN(len(comms))], rng.IntN(9)))
	}
	return e
}

// devSectorsWritten returns the sectors written by the block device that
// holds dir, or -1 if it cannot be found.
func devSectorsWritten(dir string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) != nil {
		return -1
	}
	major, minor := (st.Dev>>8)&0xfff, (st.Dev&0xff)|((st.Dev>>12)&0xfff00)
	data, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", major, minor))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) < 7 {
		return -1
	}
	v, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// procWriteBytes returns this process's write_bytes from /proc/self/io.
func procWriteBytes() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func dirBytes(dir string) (size, alloc int64) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, e.Name()), &st) == nil {
			size += st.Size
			alloc += st.Blocks * 512
		}
	}
	return size, alloc
}

// plainWrite writes the same payload to a plain file with the same sync
// policy as the writer's default: the data is written and fdatasync'ed
// whenever FlushBytes are pending or FlushInterval has passed (the points
// where the writer commits), and at the end.
func plainWrite(b *testing.B, path string, batches []*Batch, n int) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, DefaultFlushBytes)
	lastSync := time.Now()
	for i := 0; i < n; i++ {
		for _, e := range batches[i%len(batches)].Events {
			buf = append(buf, e.Raw...)
		}
		if len(buf) >= DefaultFlushBytes || time.Since(lastSync) >= DefaultFlushInterval {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
			syscall.Fdatasync(int(f.Fd()))
			lastSync = time.Now()
		}
	}
	f.Write(buf)
	syscall.Fdatasync(int(f.Fd()))
	f.Close()
}

func BenchmarkAppend(b *testing.B) {
	for _, compress := range []bool{false, true} {
		name := "defaults"
		if compress {
			name = "zstd"
		}
		b.Run(name, func(b *testing.B) { benchAppend(b, compress) })
	}
}

func benchAppend(b *testing.B, compress bool) {
	batches, payload, _ := benchBatches(512)
	per := payload / uint64(len(batches))
	b.SetBytes(int64(per))
	root := b.TempDir()
	dir := filepath.Join(root, "rec")
	syscall.Sync()
	dev0, proc0 := devSectorsWritten(root), procWriteBytes()
	b.ResetTimer()
	start := time.Now()
	w, err := Create(dir, testMeta(), WriterOptions{Uncompressed: !compress})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := w.Append(batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	storeDur := time.Since(start)
	b.StopTimer()
	syscall.Sync()
	dev1, proc1 := devSectorsWritten(root), procWriteBytes()
	total := float64(per) * float64(b.N)
	size, alloc := dirBytes(dir)

	start = time.Now()
	plainWrite(b, filepath.Join(root, "plain"), batches, b.N)
	plainDur := time.Since(start)

	storeMBs := total / storeDur.Seconds() / 1e6
	plainMBs := total / plainDur.Seconds() / 1e6
	b.ReportMetric(storeMBs, "store-MB/s")
	b.ReportMetric(plainMBs, "plain-MB/s")
	b.ReportMetric(storeMBs/plainMBs, "speed-ratio")
	b.ReportMetric(float64(size)/total, "disk/payload")
	b.ReportMetric(float64(alloc)/total, "alloc/payload")
	if dev0 >= 0 && dev1 >= 0 {
		b.ReportMetric(float64(dev1-dev0)*512/total, "devwrite/payload")
	}
	if proc0 >= 0 && proc1 >= 0 {
		b.ReportMetric(float64(proc1-proc0)/total, "procwrite/payload")
	}
}

// benchHandler stands for a tracer's handler: it reads a few fields of
// every event, as a decoder does.
type benchHandler struct{ sum uint64 }

func (h *benchHandler) handle(b *Batch) {
	for i := range b.Events {
		e := &b.Events[i]
		h.sum += binary.LittleEndian.Uint64(e.Raw) + uint64(binary.LittleEndian.Uint32(e.Raw[8:])) +
			uint64(e.CPU) + uint64(len(e.Raw)) + uint64(e.Timestamp.UnixNano())
	}
}

// benchEventDecoded is what a tracer's decoder makes of a benchEvent.
type benchEventDecoded struct {
	TS             uint64
	PID, TID, UID  uint32
	Syscall        uint32
	Arg, Addr      uint64
	Comm, Filename string
}

// decodeHandler stands for a tracer's handler that decodes every event
// into a Go struct, as the built-in tracers do.
type decodeHandler struct {
	sum  uint64
	last benchEventDecoded
}

func (h *decodeHandler) handle(b *Batch) {
	for i := range b.Events {
		raw := b.Events[i].Raw
		if len(raw) < 64 {
			continue
		}
		d := benchEventDecoded{
			TS:      binary.LittleEndian.Uint64(raw[0:]),
			PID:     binary.LittleEndian.Uint32(raw[8:]),
			TID:     binary.LittleEndian.Uint32(raw[12:]),
			UID:     binary.LittleEndian.Uint32(raw[16:]),
			Syscall: binary.LittleEndian.Uint32(raw[20:]),
			Arg:     binary.LittleEndian.Uint64(raw[24:]),
			Addr:    binary.LittleEndian.Uint64(raw[32:]),
			Comm:    cstring(raw[48:64]),
		}
		if len(raw) > 64 {
			d.Filename = cstring(raw[64:])
		}
		h.sum += d.TS + uint64(d.PID) + uint64(len(d.Comm)+len(d.Filename))
		h.last = d
	}
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// BenchmarkRead reads a recording sequentially and iterates the same
// batches in memory, through the same handler: "iterate" touches a few
// fields of every event (the bare cost of iteration), "decode" decodes every
// event into a struct as a tracer does.
func BenchmarkRead(b *testing.B) {
	b.Run("iterate", func(b *testing.B) {
		var h benchHandler
		benchRead(b, h.handle)
	})
	b.Run("decode", func(b *testing.B) {
		var h decodeHandler
		benchRead(b, h.handle)
	})
}

func benchRead(b *testing.B, handle func(*Batch)) {
	batches, _, events := benchBatches(2048)
	dir := filepath.Join(b.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{Sync: SyncNever, MaxSegmentBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for _, bt := range batches {
		if err := w.Append(bt); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	// Write back what this and earlier benchmarks left dirty, so that the
	// kernel's writeback does not take a core during the passes.
	syscall.Sync()
	// Alternate the two passes so that noise from other processes on the
	// machine hits both alike.
	b.ResetTimer()
	var storeDur, memDur, copyDur time.Duration
	copyBuf := make([]byte, 64<<10)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := Open(dir, ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			bt, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			handle(bt)
		}
		r.Close()
		storeDur += time.Since(start)
		start = time.Now()
		for _, bt := range batches {
			handle(bt)
		}
		memDur += time.Since(start)
		start = time.Now()
		if _, err := filecopy.ReadDir(dir, copyBuf); err != nil {
			b.Fatal(err)
		}
		copyDur += time.Since(start)
	}
	b.StopTimer()
	// copy/mem is a floor: only moving the recording's bytes from the page
	// cache, with nothing checked or decoded, takes this share of the time
	// the in-memory iteration takes.
	b.ReportMetric(copyDur.Seconds()/memDur.Seconds(), "copy/mem")
	n := float64(events) * float64(b.N)
	b.ReportMetric(n/storeDur.Seconds(), "store-events/s")
	b.ReportMetric(n/memDur.Seconds(), "mem-events/s")
	b.ReportMetric(memDur.Seconds()/storeDur.Seconds(), "read-ratio")
}

// BenchmarkCompression measures per-batch zstd (encoderZstd's settings)
// on the synthetic events: ratio (stored/raw), and encode and decode speed with
// and without compression.
func BenchmarkCompression(b *testing.B) {
	batches, payload, _ := benchBatches(256)
	for _, compress := range []bool{false, true} {
		name := "none"
		if compress {
			name = "zstd"
		}
		b.Run(name, func(b *testing.B) {
			var recs [][]byte
			var stored int
			var scratch []byte
			for _, bt := range batches {
				var rec []byte
				rec, scratch, _, _ = appendBatchRecord(nil, scratch, bt, 0, compress)
				recs = append(recs, rec)
				stored += len(rec)
			}
			b.SetBytes(int64(payload) / int64(len(batches)))
			b.ResetTimer()
			start := time.Now()
			var buf []byte
			for i := 0; i < b.N; i++ {
				buf, scratch, _, _ = appendBatchRecord(buf[:0], scratch, batches[i%len(batches)], 0, compress)
			}
			enc := time.Since(start)
			var d decoder
			var out Batch
			start = time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := d.decodeRecord(recs[i%len(recs)], &out, nil); err != nil {
					b.Fatal(err)
				}
			}
			dec := time.Since(start)
			b.StopTimer()
			per := float64(payload) / float64(len(batches)) * float64(b.N)
			b.ReportMetric(float64(stored)/float64(payload), "stored/raw")
			b.ReportMetric(per/enc.Seconds()/1e6, "encode-MB/s")
			b.ReportMetric(per/dec.Seconds()/1e6, "decode-MB/s")
		})
	}
}
