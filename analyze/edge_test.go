package analyze

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/analyze/query"
	execTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	tcpTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// copyRecording copies a recording directory.
func copyRecording(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "rec")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// leftovers lists what is in dir besides the names given.
func leftovers(t *testing.T, dir string, except ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
outer:
	for _, e := range ents {
		for _, x := range except {
			if e.Name() == x {
				continue outer
			}
		}
		out = append(out, e.Name())
	}
	return out
}

func rows(t *testing.T, m *Manifest) map[string]uint64 {
	t.Helper()
	r := map[string]uint64{}
	for _, tb := range m.Tables {
		if len(tb.Files) == 0 {
			t.Errorf("table %s has no file", tb.Name)
		}
		r[tb.Name] = tb.Rows
	}
	return r
}

func TestEmptyRecording(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "empty")
	w, err := store.Create(rec, synth.Meta("idle", synth.Builtin("exec"), synth.Builtin("exit")), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, m := export(t, rec, Options{})
	for name, n := range rows(t, m) {
		if want := uint64(0); name == TableRecording {
			if n != 1 {
				t.Errorf("recording rows %d", n)
			}
		} else if n != want {
			t.Errorf("%s: %d rows", name, n)
		}
	}
	db := openDB(t, out)
	for _, table := range Tables {
		if got, _ := describe(t, db, table); len(got) != len(wantTypes[table]) {
			t.Errorf("%s: columns %v", table, got)
		}
	}
	if n := one[int](t, db, "SELECT count(*) FROM exec"); n != 0 {
		t.Errorf("exec rows %d", n)
	}
	if ok := one[bool](t, db, "SELECT first_event IS NULL AND events = 0 AND host = 'idle' FROM recording"); !ok {
		t.Error("recording row of an empty recording")
	}
	// The partitioned layout too: the one partition is the start's.
	out, m = export(t, rec, Options{Partition: true})
	if tb, _ := m.Table(TableExec); len(tb.Files) != 1 || tb.Files[0] != "host=idle/date=2026-11-25/exec.parquet" {
		t.Errorf("partitioned empty exec files %v", tb.Files)
	}
	if n := one[int](t, openDB(t, out), "SELECT count(*) FROM recording WHERE host = 'idle' AND date = DATE '2026-11-25'"); n != 1 {
		t.Errorf("recording in the partition: %d", n)
	}
}

func TestOnlyUnknownStreams(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "unknown")
	w, err := store.Create(rec, synth.Meta("h", synth.Unknown), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		ev := store.Event{Raw: bytes.Repeat([]byte{byte(i)}, i+1), Timestamp: synth.Start.Add(time.Duration(i) * time.Millisecond), CPU: -1}
		if err := w.Append(&store.Batch{Stream: synth.Unknown.Name, Kind: store.KindRingbuf, Events: []store.Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, m := export(t, rec, Options{})
	r := rows(t, m)
	if r[TableRaw] != 10 || r[TableExec] != 0 || r[TableSyscalls] != 0 || len(m.Warnings) != 0 {
		t.Errorf("rows %v, warnings %q", r, m.Warnings)
	}
	db := openDB(t, out)
	if n := one[int](t, db, "SELECT sum(length) FROM raw WHERE octet_length(bytes) = length"); n != 55 {
		t.Errorf("raw lengths sum %d", n)
	}
	if s := one[string](t, db, "SELECT hex(bytes) FROM raw WHERE length = 4"); s != "03030303" {
		t.Errorf("raw bytes of length 4: %s", s)
	}
	if ts := one[time.Time](t, db, "SELECT max(time) FROM raw"); !ts.Equal(synth.Start.Add(9 * time.Millisecond)) {
		t.Errorf("raw time %v", ts)
	}
}

// damage flips a byte inside the payload "opaque-25" of the mixed recording.
func damage(t *testing.T, rec string) {
	t.Helper()
	seg := filepath.Join(rec, "000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("opaque-25"))
	if i < 0 {
		t.Fatal("payload not found in the segment")
	}
	b[i+3] ^= 0xff
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedRecording(t *testing.T) {
	src, want := mixed(t)
	rec := copyRecording(t, src)
	damage(t, rec)

	// Default: exported around the damage, with a warning.
	out, m := export(t, rec, Options{})
	if m.DamagedBatches == 0 || len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "damaged") {
		t.Fatalf("damaged %d, warnings %q", m.DamagedBatches, m.Warnings)
	}
	if m.Events >= uint64(want.Events) || m.Events == 0 {
		t.Errorf("events %d of %d", m.Events, want.Events)
	}
	db := openDB(t, out)
	// Data after the damage is there: the last round's raw payload.
	if n := one[int](t, db, "SELECT count(*) FROM raw WHERE bytes = 'opaque-49'::BLOB"); n != 1 {
		t.Errorf("raw rows after the damage: %d", n)
	}
	if n := one[uint64](t, db, "SELECT damaged_batches FROM recording"); n != m.DamagedBatches {
		t.Errorf("recording.damaged_batches %d", n)
	}

	// Strict: refused, nothing written.
	parent := t.TempDir()
	out = filepath.Join(parent, "strict")
	_, err := Export(context.Background(), rec, out, Options{Strict: true})
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("strict: %v", err)
	}
	if left := leftovers(t, parent); len(left) != 0 {
		t.Errorf("strict export left %v", left)
	}
}

func TestUndecodableEvent(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "short")
	w, err := store.Create(rec, synth.Meta("h", synth.Builtin("exec")), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev := execTracer.Event{KtimeNs: synth.Boot, Pid: 1, Command: "init", Filename: "/sbin/init"}
	good := synth.Exec(&ev)
	evs := []store.Event{{Raw: good, Timestamp: synth.Start, CPU: -1}, {Raw: good[:20], Timestamp: synth.Start, CPU: -1}}
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, m := export(t, rec, Options{})
	if r := rows(t, m); r[TableExec] != 1 || r[TableRaw] != 1 || m.DecodeErrors != 1 {
		t.Errorf("rows %v, decode errors %d", r, m.DecodeErrors)
	}
	if n := one[int](t, openDB(t, out), "SELECT count(*) FROM raw WHERE stream = 'exec' AND index = 1 AND length = 20 AND error LIKE 'exec event:%'"); n != 1 {
		t.Error("the undecodable event is not in raw with its error")
	}
	if _, err := Export(context.Background(), rec, filepath.Join(t.TempDir(), "x"), Options{Strict: true}); !errors.Is(err, ErrDamaged) {
		t.Errorf("strict: %v", err)
	}
}

func TestForceAndExisting(t *testing.T) {
	rec, _ := mixed(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	ctx := context.Background()
	if _, err := Export(ctx, rec, out, Options{Partition: true}); err != nil {
		t.Fatal(err)
	}
	// Twice: refused, the first export untouched.
	// The error names the option as well as the command's flag: a
	// library's caller has no --force.
	if _, err := Export(ctx, rec, out, Options{}); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "Options.Force") {
		t.Fatalf("second export: %v, want ErrExists naming Options.Force", err)
	}
	if !manifest.IsExport(out) {
		t.Fatal("first export gone")
	}
	// --force replaces it whole: nothing of the partitioned layout is left.
	m, err := Export(ctx, rec, out, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Partitioned {
		t.Error("manifest says partitioned")
	}
	if _, err := os.Stat(filepath.Join(out, "host=web-1")); !os.IsNotExist(err) {
		t.Errorf("old partition folder left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "exec.parquet")); err != nil {
		t.Error(err)
	}
	if left := leftovers(t, parent, "out"); len(left) != 0 {
		t.Errorf("left beside the export: %v", left)
	}
	// A folder with other files is never replaced, even with force.
	other := filepath.Join(parent, "other")
	os.MkdirAll(other, 0o700)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	if _, err := Export(ctx, rec, other, Options{Force: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("export over a folder of other files: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(other, "notes.txt")); err != nil || string(b) != "mine" {
		t.Error("other files touched")
	}
	// An empty folder is fine.
	empty := filepath.Join(parent, "empty")
	os.MkdirAll(empty, 0o700)
	if _, err := Export(ctx, rec, empty, Options{}); err != nil {
		t.Fatal(err)
	}
	// Into the recording: refused.
	if _, err := Export(ctx, rec, filepath.Join(rec, "x"), Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("export into the recording: %v", err)
	}
}

// TestExportNotARecording: a folder that holds no recording is said to be
// one, also when the output would be inside it (ebpfrec export -o
// /tmp/nu/x1 /tmp said "/tmp/nu/x1 is inside the recording /tmp" before
// the recording was opened first), and nothing is written.
func TestExportNotARecording(t *testing.T) {
	notRec := t.TempDir()
	for _, out := range []string{filepath.Join(notRec, "out"), filepath.Join(t.TempDir(), "out")} {
		_, err := Export(context.Background(), notRec, out, Options{})
		if err == nil || !strings.Contains(err.Error(), notRec+" holds no recording") || strings.Contains(err.Error(), "inside the recording") {
			t.Errorf("export of a folder without a recording to %s: %v; want it said that it holds none", out, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %v; want nothing written", out, err)
		}
	}
}

func TestInterruptedExportLeavesNothing(t *testing.T) {
	rec, _ := mixed(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Export(ctx, rec, filepath.Join(parent, "out"), Options{Progress: func(p Progress) {
		if p.Batches > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted export: %v", err)
	}
	if left := leftovers(t, parent); len(left) != 0 {
		t.Errorf("interrupted export left %v", left)
	}
}

func TestReadOnlyOutput(t *testing.T) {
	rec, _ := mixed(t)
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o700)
	// Root ignores permission bits: a read-only mount is the real test.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro).CombinedOutput(); err != nil {
		if os.Getenv(kerneltest.EnvRequire) != "" {
			t.Fatalf("cannot mount a read-only tmpfs (%s is set): %v: %s", kerneltest.EnvRequire, err, out)
		}
		t.Skipf("cannot mount a read-only tmpfs (needs root): %v: %s", err, out)
	}
	defer exec.Command("umount", ro).Run()
	_, err := Export(context.Background(), rec, filepath.Join(ro, "out"), Options{})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), ro) {
		t.Fatalf("export into a read-only folder: %v", err)
	}
	if left := leftovers(t, ro); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestPartitionByDay(t *testing.T) {
	// Events on both sides of midnight UTC, on two hosts' recordings.
	parent := t.TempDir()
	fleet := filepath.Join(parent, "fleet")
	for _, host := range []string{"web-1", "db/2"} {
		rec := filepath.Join(parent, "rec-"+strings.ReplaceAll(host, "/", "_"))
		meta := synth.Meta(host, synth.Builtin("exec"))
		midnight := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
		meta.MonoToWall = midnight.UnixNano() - synth.Boot
		meta.Started = midnight.Add(-time.Second)
		w, err := store.Create(rec, meta, store.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range []time.Duration{-100 * time.Millisecond, -time.Millisecond, 5 * time.Millisecond} {
			ev := execTracer.Event{KtimeNs: uint64(synth.Boot + int64(d)), Pid: uint32(i + 1), Command: "cron", Filename: "/usr/sbin/cron"}
			if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: synth.Exec(&ev), Timestamp: midnight.Add(d), CPU: -1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		m, err := Export(context.Background(), rec, filepath.Join(fleet, filepath.Base(rec)), Options{Partition: true})
		if err != nil {
			t.Fatal(err)
		}
		tb, _ := m.Table(TableExec)
		esc := partValue(host)
		want := []string{"host=" + esc + "/date=2026-11-25/exec.parquet", "host=" + esc + "/date=2026-11-26/exec.parquet"}
		if strings.Join(tb.Files, " ") != strings.Join(want, " ") {
			t.Errorf("%s: exec files %v, want %v", host, tb.Files, want)
		}
	}
	// The README's fleet query: DuckDB over the whole tree with
	// hive_partitioning, pruned by host and date.
	db := openDB(t, filepath.Join(fleet, "rec-web-1"))
	q := "SELECT host, date, count(*) FROM read_parquet('" + fleet + "/*/host=*/date=*/exec.parquet', hive_partitioning = true) " +
		"WHERE date = DATE '2026-11-25' GROUP BY ALL ORDER BY host"
	res, err := query.Query(context.Background(), db, q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Rows {
		got = append(got, query.FormatValue(r[0], "")+" "+query.FormatValue(r[1], res.Types[1])+" "+query.FormatValue(r[2], ""))
	}
	if s := strings.Join(got, "; "); s != "db/2 2026-11-25 2; web-1 2026-11-25 2" {
		t.Errorf("fleet query: %s", s)
	}
	if n := one[int](t, db, "SELECT count(*) FROM exec WHERE date = DATE '2026-11-26' AND host = 'web-1'"); n != 1 {
		t.Errorf("exec view of a partitioned export: %d", n)
	}
}

func TestArrowFormat(t *testing.T) {
	rec, want := mixed(t)
	out, m := export(t, rec, Options{Format: FormatArrow})
	tb, _ := m.Table(TableExec)
	if len(tb.Files) != 1 || tb.Files[0] != "exec.arrow" {
		t.Fatalf("files %v", tb.Files)
	}
	f, err := os.Open(filepath.Join(out, "exec.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for i := range r.NumRecords() {
		rb, err := r.RecordBatch(i)
		if err != nil {
			t.Fatal(err)
		}
		n += int(rb.NumRows())
	}
	if n != len(want.Execs)*0+200 {
		t.Errorf("arrow exec rows %d", n)
	}
	if s := r.Schema().Field(0).Type.String(); s != "timestamp[ns, tz=UTC]" {
		t.Errorf("time column type %s", s)
	}
	if _, _, err := query.OpenDB(context.Background(), out); err == nil || !strings.Contains(err.Error(), "Parquet") {
		t.Errorf("query over an Arrow export: %v", err)
	}
}

// TestArrowNotLinked: without analyze/arrowexport linked (as in the lean
// recorder), an Arrow export is refused before anything is written, with
// ErrFormatNotLinked and the program that writes Arrow; Parquet is
// unaffected. (These tests link it: it is unregistered for the test.)
func TestArrowNotLinked(t *testing.T) {
	f := tablesink.Lookup(FormatArrow)
	if f == nil {
		t.Fatal("analyze/arrowexport is not linked into the tests")
	}
	tablesink.Register(FormatArrow, nil)
	defer tablesink.Register(FormatArrow, f)
	rec, _ := mixed(t)
	out := filepath.Join(t.TempDir(), "out")
	_, err := Export(context.Background(), rec, out, Options{Format: FormatArrow})
	if !errors.Is(err, ErrFormatNotLinked) || !strings.Contains(err.Error(), "ebpfrec-query") || !strings.Contains(err.Error(), "analyze/arrowexport") {
		t.Errorf("Arrow export without arrowexport: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("refused export left %s: %v", out, err)
	}
	if _, err := Export(context.Background(), rec, out, Options{}); err != nil {
		t.Errorf("Parquet export: %v", err)
	}
}

// TestExecV1Layout: exec events recorded before the tracer recorded argv
// (304 bytes) still decode, with empty args and a warning.
func TestExecV1Layout(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "v1")
	w, err := store.Create(rec, synth.Meta("h", synth.Builtin("exec")), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev := execTracer.Event{KtimeNs: synth.Boot, Pid: 7, Command: "old", Filename: "/bin/old", Args: []string{"ignored"}}
	raw := synth.Exec(&ev)[:304]
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: raw, Timestamp: synth.Start, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, m := export(t, rec, Options{})
	if m.DecodeErrors != 0 || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "older exec tracer") {
		t.Errorf("decode errors %d, warnings %q", m.DecodeErrors, m.Warnings)
	}
	if s := one[string](t, openDB(t, out), "SELECT comm || ' ' || filename || ' ' || CAST(args AS VARCHAR) FROM exec"); s != "old /bin/old []" {
		t.Errorf("v1 exec row: %q", s)
	}
}

// TestManyPartitions: more day partitions than row buffers per table.
func TestManyPartitions(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "week")
	w, err := store.Create(rec, synth.Meta("h", synth.Builtin("exec")), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const days, perDay = 9, 5000
	for i := range days * perDay {
		// Round robin over the days, so every partition stays open.
		d := time.Duration(i%days)*24*time.Hour + time.Duration(i)*time.Microsecond
		ev := execTracer.Event{KtimeNs: uint64(synth.Boot + int64(d)), Pid: uint32(i), Command: "c", Filename: "/f"}
		if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: synth.Exec(&ev), Timestamp: synth.Start.Add(d), CPU: -1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, m := export(t, rec, Options{Partition: true})
	if tb, _ := m.Table(TableExec); len(tb.Files) != days || tb.Rows != days*perDay {
		t.Fatalf("exec: %d files, %d rows", len(tb.Files), tb.Rows)
	}
	if n := one[int](t, openDB(t, out), "SELECT count(DISTINCT date) FROM exec"); n != days {
		t.Errorf("dates %d", n)
	}
}

// TestStaleLossSnapshots: a batch may carry loss counters read before the
// loss point logged ahead of it; the totals count each loss once.
func TestStaleLossSnapshots(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "stale")
	w, err := store.Create(rec, synth.Meta("h", synth.Builtin("exec")), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev := execTracer.Event{KtimeNs: synth.Boot, Pid: 1, Command: "c", Filename: "/f"}
	batch := func(l uint64) {
		if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Loss: store.Loss{RingbufDropped: l},
			Events: []store.Event{{Raw: synth.Exec(&ev), Timestamp: synth.Start, CPU: -1}}}); err != nil {
			t.Fatal(err)
		}
	}
	point := func(l uint64) {
		if err := w.AppendLoss("exec", synth.Start, store.Loss{RingbufDropped: l}); err != nil {
			t.Fatal(err)
		}
	}
	batch(3)
	point(10)
	batch(5) // stale
	point(12)
	batch(12)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := export(t, rec, Options{})
	if n := one[uint64](t, openDB(t, out), "SELECT sum(kernel_lost_ringbuf) FROM losses"); n != 12 {
		t.Errorf("ring buffer drops %d, want 12", n)
	}
	s, err := Summarize(t.Context(), rec, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Loss) != 1 || s.Loss[0].KernelLostRingbuf != 12 {
		t.Fatalf("summary loss %+v", s.Loss)
	}
	var sum uint64
	for _, b := range s.Loss[0].Series {
		sum += b.Lost
	}
	if sum != 12 {
		t.Errorf("summary loss series sums to %d", sum)
	}
}

// TestQueryFleet: a folder of exports (one per recording) is queried as one.
func TestQueryFleet(t *testing.T) {
	rec, want := mixed(t)
	fleet := t.TempDir()
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := Export(ctx, rec, filepath.Join(fleet, name), Options{Partition: true}); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(fleet, "not-an-export"), 0o700)
	db, m, err := query.OpenDB(ctx, fleet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if m.Events != 2*uint64(want.Events) {
		t.Errorf("fleet events %d", m.Events)
	}
	if n := one[int](t, db, "SELECT count(*) FROM exec WHERE host = 'web-1' AND date = DATE '2026-11-25'"); n != 400 {
		t.Errorf("fleet execs %d, want 400", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM recording"); n != 2 {
		t.Errorf("fleet recordings %d", n)
	}
	// Mixed layouts are refused.
	if _, err := Export(ctx, rec, filepath.Join(fleet, "flat"), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := query.OpenDB(ctx, fleet); err == nil || !strings.Contains(err.Error(), "mixes partitioned and flat") {
		t.Errorf("mixed fleet: %v", err)
	}
}

// TestEventTypeMismatch: a built-in tracer's stream recorded with another
// event type (layout) than the tracer now decodes goes to the raw table,
// with a warning naming both types, in the export and the summary.
func TestEventTypeMismatch(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "layout")
	si := synth.Builtin("exec")
	si.EventType = "exec.Event/0"
	w, err := store.Create(rec, synth.Meta("h", si), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev := execTracer.Event{KtimeNs: synth.Boot, Pid: 7, Command: "new", Filename: "/bin/new"}
	raw := synth.Exec(&ev)
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: raw, Timestamp: synth.Start, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, m := export(t, rec, Options{})
	r := rows(t, m)
	if r[TableExec] != 0 || r[TableRaw] != 1 || len(m.Warnings) != 1 ||
		!strings.Contains(m.Warnings[0], "recorded as event type exec.Event/0") || !strings.Contains(m.Warnings[0], "decodes exec.Event") {
		t.Errorf("rows %v, warnings %q", r, m.Warnings)
	}
	s, err := Summarize(context.Background(), rec, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(s.Warnings, "\n"), "recorded as event type exec.Event/0") {
		t.Errorf("summary warnings %q", s.Warnings)
	}
}

// TestNotUTF8Exported: names on Linux are bytes. An export of process and
// file names, arguments and metadata that are not UTF-8 is readable by
// DuckDB (which refuses a Parquet file holding a string that is not: every
// query of the table failed), each bad byte is U+FFFD, the other values are
// exact, and a warning counts the values changed.
func TestNotUTF8Exported(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "bytes")
	meta := synth.Meta("h\xff", synth.Builtin("exec"), synth.Builtin("open"))
	meta.CommandLine = []string{"ebpfrec", "--x=\xfe"}
	w, err := store.Create(rec, meta, store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ex := execTracer.Event{KtimeNs: synth.Boot, Pid: 1, Command: "a\xffb", Filename: "/bin/\xc3", Args: []string{"ok", "\xff\xfe"}}
	op := open.Event{KtimeNs: synth.Boot + 1, Pid: 1, Command: "clean", Path: "/tmp/\x80x\x1b"}
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: synth.Exec(&ex), Timestamp: synth.Start, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(&store.Batch{Stream: "open", Kind: store.KindRingbuf, Events: []store.Event{{Raw: synth.Open(&op, open.NROpenat), Timestamp: synth.Start, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatParquet, FormatArrow} {
		out, m := export(t, rec, Options{Format: f})
		// comm, filename, args, path: 4 values (the store keeps its
		// metadata as JSON, so host and command line read back as UTF-8).
		if !slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.HasPrefix(w, "4 text values ") }) {
			t.Errorf("%s: warnings %q lack the count of 4 values made UTF-8", f, m.Warnings)
		}
		if f == FormatArrow {
			continue // DuckDB reads Parquet exports
		}
		db := openDB(t, out)
		got := rowsOf(t, db, "SELECT comm, filename, args::VARCHAR FROM exec UNION ALL SELECT comm, path, '' FROM open UNION ALL SELECT host, command_line::VARCHAR, '' FROM recording")
		want := []string{"a\ufffdb /bin/\ufffd [ok, \ufffd\ufffd]", "clean /tmp/\ufffdx\x1b ", "h\ufffd [ebpfrec, '--x=\ufffd'] "}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("values read back:\n got %q\nwant %q", got, want)
		}
	}
}

// startHangingExport starts a helper process exporting rec into out, and
// returns once it has its temporary folder, with rows written; it waits
// there to be killed.
func startHangingExport(t *testing.T, rec, out string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHangExport+"="+rec, envHangOut+"="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "exporting\n" {
		t.Fatalf("helper export: %q, %v; stderr: %s", line, err, stderr.String())
	}
	return cmd
}

// TestKilledExportLeftoverRemoved: an export killed (SIGKILL) leaves its
// hidden temporary folder, which the next export to the same output
// removes; while the export runs, a concurrent export to that output
// leaves its folder alone (it is locked, not old).
func TestKilledExportLeftoverRemoved(t *testing.T) {
	rec, _ := mixed(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	running := startHangingExport(t, rec, out)
	tmps, _ := filepath.Glob(filepath.Join(parent, ".out.tmp-*"))
	if len(tmps) != 1 {
		t.Fatalf("temporary folders of the running export: %v", tmps)
	}
	if files, _ := filepath.Glob(filepath.Join(tmps[0], "*.parquet")); len(files) == 0 {
		t.Fatalf("the running export has written no file in %s", tmps[0])
	}
	// Concurrent: both finish their own export; the running one's
	// folder stays.
	if _, err := Export(context.Background(), rec, out, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmps[0]); err != nil {
		t.Fatalf("a concurrent export removed the folder of the running one: %v", err)
	}
	// Killed: the folder stays behind...
	if err := running.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := running.Wait(); err == nil {
		t.Fatal("the helper export was not killed")
	}
	if _, err := os.Stat(tmps[0]); err != nil {
		t.Fatalf("the killed export's folder is gone before any cleanup: %v", err)
	}
	// ...until the next export to out, which removes it.
	if _, err := Export(context.Background(), rec, out, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, parent, "out"); len(left) != 0 {
		t.Errorf("left after the next export: %v", left)
	}
	if !manifest.IsExport(out) {
		t.Error("no export in out")
	}
}

// TestTCPUnknownOwner: a tcp event whose owner the tracer could not know
// (pid 0, comm "") exports NULL pid and comm, not process 0, and NULL
// resolved columns even where the process table describes a pid 0; a known
// owner exports as it is, resolved; every row has the CPU its event
// recorded.
func TestTCPUnknownOwner(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "owners")
	procInfo := store.StreamInfo{Name: proc.StreamProc, Tracer: proc.Name, Map: proc.MapEvents, Kind: store.KindRingbuf, EventType: proc.EventType}
	w, err := store.Create(rec, synth.Meta("h", synth.Builtin("tcp"), procInfo), store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("127.0.0.1:80"), netip.MustParseAddrPort("127.0.0.1:40000")
	evs := []store.Event{
		{Raw: synth.TCP(synth.Boot, 1, 0, "", src, dst, tcpTracer.Established, tcpTracer.CloseWait), Timestamp: synth.Start, CPU: -1},
		{Raw: synth.TCP(synth.Boot+1, 1, 42, "srv", src, dst, tcpTracer.CloseWait, tcpTracer.LastAck), Timestamp: synth.Start, CPU: -1},
	}
	snap := func(pid uint32, comm string) store.Event {
		ev := proc.Event{KtimeNs: synth.Boot - 10, Pid: pid, Ppid: 1, Command: comm, Exe: "/bin/" + comm, CgroupID: 9}
		return store.Event{Raw: proc.AppendRecord(nil, proc.KindSnapshot, &ev), Timestamp: synth.Start, CPU: -1}
	}
	for _, b := range []*store.Batch{
		{Stream: "tcp", Kind: store.KindRingbuf, Events: evs},
		{Stream: proc.StreamProc, Kind: store.KindRingbuf, Events: []store.Event{snap(0, "swapper"), snap(42, "srv")}},
	} {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []writerPath{parquetGo, arrowParquet} {
		out, _ := export(t, rec, Options{writerPath: path})
		db := openDB(t, out)
		if s := one[string](t, db, "SELECT string_agg(coalesce(CAST(pid AS VARCHAR), 'NULL') || ' ' || coalesce(comm, 'NULL') || ' ' || coalesce(CAST(cpu AS VARCHAR), 'NULL'), ', ' ORDER BY ktime_ns) FROM tcp"); s != "NULL NULL 0, 42 srv 0" {
			t.Errorf("%s: tcp owners %q, want \"NULL NULL 0, 42 srv 0\"", path, s)
		}
		got := strs(t, queryT(t, db, "SELECT pid, ppid, cgroup_id, container_id, exe FROM tcp ORDER BY ktime_ns"))
		if want := []string{"NULL NULL NULL NULL NULL", "42 1 9  /bin/srv"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: resolved owners %q, want %q", path, got, want)
		}
	}
}

// TestNoOutputFolder: Export with out "" says that no output folder was
// given (ErrNoOutput), where it exported in full and then failed with
// "output folder exists:  (it appeared during the export)".
func TestNoOutputFolder(t *testing.T) {
	rec, _ := mixed(t)
	wd := t.TempDir()
	t.Chdir(wd)
	if _, err := Export(context.Background(), rec, "", Options{}); !errors.Is(err, ErrNoOutput) || errors.Is(err, ErrExists) {
		t.Fatalf("Export to \"\": %v, want ErrNoOutput", err)
	}
	if left, _ := os.ReadDir(wd); len(left) != 0 {
		t.Errorf("the working directory holds %d entries after the refused export", len(left))
	}
}
