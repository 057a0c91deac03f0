package analyze

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/store"
)

// Benchmarks. Goals (issue 6):
//   - export rows/s against decoding the same events without writing, same
//     run: ratio >= 0.5 (metric "export/decode");
//   - exec table: >= 2 M rows/s (metric "rows/s");
//   - Parquet bytes per event against the recording's raw bytes per event:
//     <= 0.5 (metric "parquet/raw").

const benchEvents = 500_000

var benchRec struct {
	once sync.Once
	dir  string
	err  error
}

// execRecording is a recording of benchEvents exec events, batches of 64.
func execRecording(b *testing.B) string {
	benchRec.once.Do(func() {
		benchRec.dir = filepath.Join(shared.dir, "bench-exec")
		benchRec.err = synth.ExecOnly(benchRec.dir, benchEvents, 64)
	})
	if benchRec.err != nil {
		b.Fatal(benchRec.err)
	}
	return benchRec.dir
}

// decodeOnly reads and decodes every event of rec, writing nothing, and
// returns the number of events.
func decodeOnly(b *testing.B, rec string) int {
	r, err := store.Open(rec, store.ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var ev exec.Event
	n := 0
	for {
		bt, err := r.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range bt.Events {
			if err := exec.Decode(e.Raw, &ev); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
}

// readOnly reads every batch of rec without decoding (the store's share).
func readOnly(b *testing.B, rec string) {
	r, err := store.Open(rec, store.ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for {
		if _, err := r.Next(); err == io.EOF {
			return
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExportExec exports the exec recording (default writer path) and,
// in the same loop, decodes it without writing: each iteration times both,
// so that load from other processes hits both alike. Rates are of the
// fastest iteration of each.
func BenchmarkExportExec(b *testing.B) {
	rec := execRecording(b)
	dir := b.TempDir()
	var m *Manifest
	var out string
	bestExport, bestDecode, bestRead := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		tr := time.Now()
		readOnly(b, rec)
		bestRead = min(bestRead, time.Since(tr))
		t0 := time.Now()
		n := decodeOnly(b, rec)
		t1 := time.Now()
		out = filepath.Join(dir, "out", string(rune('a'+i%26)))
		os.RemoveAll(out)
		var err error
		if m, err = Export(context.Background(), rec, out, Options{}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if n != int(m.Events) {
			b.Fatalf("decoded %d, exported %d", n, m.Events)
		}
		bestDecode, bestExport = min(bestDecode, t1.Sub(t0)), min(bestExport, t2.Sub(t1))
		total += t2.Sub(t1)
	}
	b.StopTimer()
	st, err := os.Stat(filepath.Join(out, "exec.parquet"))
	if err != nil {
		b.Fatal(err)
	}
	ev := float64(m.Events)
	b.ReportMetric(ev/bestExport.Seconds(), "rows/s")
	b.ReportMetric(ev*float64(b.N)/total.Seconds(), "mean-rows/s")
	b.ReportMetric(ev/bestDecode.Seconds(), "decode-rows/s")
	b.ReportMetric(bestDecode.Seconds()/bestExport.Seconds(), "export/decode")
	b.ReportMetric(ev/bestRead.Seconds(), "store-read-rows/s")
	b.ReportMetric(float64(st.Size())/ev, "parquet-B/event")
	b.ReportMetric(float64(st.Size())/ev/exec.EventSize, "parquet/raw")
}

// BenchmarkExportMixed exports the mixed recording (every tracer) and
// reports Parquet bytes per event (all tables) against raw bytes per event.
func BenchmarkExportMixed(b *testing.B) {
	rec, _ := mixed(b)
	m, out := benchExport(b, rec, Options{})
	var size int64
	for _, t := range m.Tables {
		for _, f := range t.Files {
			st, err := os.Stat(filepath.Join(out, f))
			if err != nil {
				b.Fatal(err)
			}
			size += st.Size()
		}
	}
	raw := one[uint64](b, openDB(b, out), "SELECT raw_bytes FROM recording")
	b.ReportMetric(float64(size)/float64(m.Events), "parquet-B/event")
	b.ReportMetric(float64(size)/float64(raw), "parquet/raw")
}

// BenchmarkWriterPath compares the two Parquet writer paths on the exec
// recording, interleaved in each iteration (so that load from other
// processes hits both alike): parquet-go's GenericWriter and arrow-go
// builders + pqarrow. Rates are of the fastest iteration of each.
func BenchmarkWriterPath(b *testing.B) {
	rec := execRecording(b)
	dir := b.TempDir()
	paths := []WriterPath{ParquetGo, ArrowParquet}
	best := []time.Duration{1 << 62, 1 << 62}
	size := make([]int64, 2)
	var events uint64
	b.ResetTimer()
	for i := range b.N {
		for j, p := range paths {
			out := filepath.Join(dir, fmt.Sprint(p, i))
			start := time.Now()
			m, err := Export(context.Background(), rec, out, Options{WriterPath: p})
			if err != nil {
				b.Fatal(err)
			}
			best[j] = min(best[j], time.Since(start))
			events = m.Events
			st, err := os.Stat(filepath.Join(out, "exec.parquet"))
			if err != nil {
				b.Fatal(err)
			}
			size[j] = st.Size()
			os.RemoveAll(out)
		}
	}
	b.StopTimer()
	ev := float64(events)
	b.ReportMetric(ev/best[0].Seconds(), "parquet-go-rows/s")
	b.ReportMetric(ev/best[1].Seconds(), "pqarrow-rows/s")
	b.ReportMetric(best[1].Seconds()/best[0].Seconds(), "parquet-go-speedup")
	b.ReportMetric(float64(size[0])/ev, "parquet-go-B/event")
	b.ReportMetric(float64(size[1])/ev, "pqarrow-B/event")
}

// BenchmarkExportArrowIPC exports the exec recording as Arrow IPC.
func BenchmarkExportArrowIPC(b *testing.B) {
	rec := execRecording(b)
	start := time.Now()
	m, _ := benchExport(b, rec, Options{Format: FormatArrow})
	b.ReportMetric(float64(m.Events)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

// benchExport exports rec b.N times and returns the last manifest and
// folder.
func benchExport(b *testing.B, rec string, opts Options) (*Manifest, string) {
	b.Helper()
	dir := b.TempDir()
	var m *Manifest
	var out string
	b.ResetTimer()
	for i := range b.N {
		out = filepath.Join(dir, "out", string(rune('a'+i%26)))
		os.RemoveAll(out)
		var err error
		if m, err = Export(context.Background(), rec, out, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	return m, out
}
