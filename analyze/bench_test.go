package analyze

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
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
	paths := []writerPath{parquetGo, arrowParquet}
	best := []time.Duration{1 << 62, 1 << 62}
	size := make([]int64, 2)
	var events uint64
	b.ResetTimer()
	for i := range b.N {
		for j, p := range paths {
			out := filepath.Join(dir, fmt.Sprint(p, i))
			start := time.Now()
			m, err := Export(context.Background(), rec, out, Options{writerPath: p})
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

// BenchmarkExportOrder times the export with each table's rows put in
// time order (the default) against writing them as read (the export
// before time order), alternately in each iteration so that load from
// other processes hits both alike, on the exec recording and the mixed one
// (every tracer). ratio is the best time-order rate over the best
// recorded-order rate.
func BenchmarkExportOrder(b *testing.B) {
	for _, name := range []string{"exec", "mixed"} {
		b.Run(name, func(b *testing.B) {
			var rec string
			if name == "exec" {
				rec = execRecording(b)
			} else {
				rec, _ = mixed(b)
			}
			dir := b.TempDir()
			best := []time.Duration{1 << 62, 1 << 62}
			var events uint64
			for i := 0; b.Loop(); i++ {
				for j, recorded := range []bool{false, true} {
					out := filepath.Join(dir, fmt.Sprint(j, i))
					start := time.Now()
					m, err := Export(context.Background(), rec, out, Options{recordedOrder: recorded})
					if err != nil {
						b.Fatal(err)
					}
					best[j] = min(best[j], time.Since(start))
					events = m.Events
					os.RemoveAll(out)
				}
			}
			ev := float64(events)
			b.ReportMetric(ev/best[0].Seconds(), "time-order-rows/s")
			b.ReportMetric(ev/best[1].Seconds(), "recorded-order-rows/s")
			b.ReportMetric(best[1].Seconds()/best[0].Seconds(), "ratio")
		})
	}
}

// procBenchRecording holds syscalls events of 2000 processes, each known
// from the proc stream (a snapshot, then an exec halfway through: two
// lives), for BenchmarkExportProcessJoin.
func procBenchRecording(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "rec")
	procInfo := store.StreamInfo{Name: proc.StreamProc, Tracer: proc.Name, Map: proc.MapEvents, Kind: store.KindRingbuf, EventType: proc.EventType}
	w, err := store.Create(dir, synth.Meta("host", synth.Builtin(syscalls.Name), procInfo), store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	const (
		B      = synth.Boot
		nProcs = 2000
		nEv    = 200_000
	)
	at := func(kt uint64) time.Time { return synth.Start.Add(time.Duration(kt - B)) }
	var procs []store.Event
	for i := range uint32(nProcs) {
		pid := 1000 + i
		for _, ev := range []struct {
			kind uint32
			e    proc.Event
		}{
			{proc.KindSnapshot, proc.Event{KtimeNs: B, Pid: pid, Ppid: 1, Command: "sh", Exe: "/bin/sh", Args: []string{"sh"}, CgroupID: 7}},
			{proc.KindExec, proc.Event{KtimeNs: B + nEv/2*1000, Pid: pid, Ppid: 1, Command: "worker", Exe: "/bin/worker", Args: []string{"worker"}, CgroupID: 7}},
		} {
			procs = append(procs, store.Event{Raw: proc.AppendRecord(nil, ev.kind, &ev.e), Timestamp: at(ev.e.KtimeNs), CPU: -1})
		}
	}
	if err := w.Append(&store.Batch{Stream: proc.StreamProc, Kind: store.KindRingbuf, Events: procs}); err != nil {
		b.Fatal(err)
	}
	var sys []store.Event
	for i := range uint64(nEv) {
		kt := B + 1 + i*1000
		sys = append(sys, store.Event{Raw: synth.Syscall(kt, 10, 0, 1000+uint32(i*7919%nProcs), 39), Timestamp: at(kt), CPU: -1})
		if len(sys) == 4096 || i == nEv-1 {
			if err := w.Append(&store.Batch{Stream: syscalls.StreamSyscalls, Kind: store.KindRingbuf, Events: sys}); err != nil {
				b.Fatal(err)
			}
			sys = sys[:0]
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkExportProcessJoin exports a recording whose every event
// resolves to one of 2000 processes, with the process table and without
// it (noProcesses: the columns left NULL), interleaved in each iteration
// so that load from other processes hits both alike. join/plain is the
// ratio of the fastest iterations' rows/s, join/plain-median the median
// of the pairs' ratios (goal: at least 0.8).
func BenchmarkExportProcessJoin(b *testing.B) {
	rec := procBenchRecording(b)
	dir := b.TempDir()
	best := [2]time.Duration{1 << 62, 1 << 62}
	var ratios []float64
	var events uint64
	b.ResetTimer()
	for i := range b.N {
		var took [2]time.Duration
		// Alternate which goes first, so that neither always follows
		// the other's garbage.
		for j := range 2 {
			k := (i + j) % 2
			out := filepath.Join(dir, fmt.Sprintf("%d-%d", i, k))
			t0 := time.Now()
			m, err := Export(context.Background(), rec, out, Options{noProcesses: k == 1})
			if err != nil {
				b.Fatal(err)
			}
			took[k] = time.Since(t0)
			best[k] = min(best[k], took[k])
			events = m.Events
			os.RemoveAll(out)
		}
		ratios = append(ratios, took[1].Seconds()/took[0].Seconds())
	}
	b.StopTimer()
	ev := float64(events)
	b.ReportMetric(ev/best[0].Seconds(), "join-rows/s")
	b.ReportMetric(ev/best[1].Seconds(), "plain-rows/s")
	b.ReportMetric(best[1].Seconds()/best[0].Seconds(), "join/plain")
	// The host's noise moves single iterations by 10 % and more: the
	// median of the pairs' ratios says more than the best of each.
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "join/plain-median")
}
