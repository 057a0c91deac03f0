package analyze

import (
	"context"
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

// BenchmarkExportExec exports the exec recording (default writer path) and,
// in the same loop, decodes it without writing: each iteration times both,
// so that load from other processes hits both alike. Rates are of the
// fastest iteration of each.
func BenchmarkExportExec(b *testing.B) {
	rec := execRecording(b)
	dir := b.TempDir()
	var m *Manifest
	var out string
	bestExport, bestDecode := time.Duration(1<<62), time.Duration(1<<62)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
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
// recording: parquet-go's GenericWriter and arrow-go builders + pqarrow.
func BenchmarkWriterPath(b *testing.B) {
	rec := execRecording(b)
	for _, p := range []WriterPath{ParquetGo, ArrowParquet} {
		b.Run(p.String(), func(b *testing.B) {
			start := time.Now()
			m, out := benchExport(b, rec, Options{WriterPath: p})
			st, err := os.Stat(filepath.Join(out, "exec.parquet"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(m.Events)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(st.Size())/float64(m.Events), "parquet-B/event")
		})
	}
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
