package analyze

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/replay"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
)

// backInTime counts, per table of an export, the rows whose time is
// earlier than a row's before them in the files (read by DuckDB in file
// order), and the rows of each table.
func backInTime(t *testing.T, dir string, m *Manifest) (back, rows map[string]int64) {
	t.Helper()
	db := openDB(t, dir)
	back, rows = map[string]int64{}, map[string]int64{}
	for _, tf := range m.Tables {
		if tf.Name == TableRecording {
			continue
		}
		for _, f := range tf.Files {
			path := filepath.Join(dir, filepath.FromSlash(f))
			q := `SELECT count(*) FILTER (WHERE time < high), count(*) FROM (
				SELECT time, max(time) OVER (ORDER BY file_row_number ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS high
				FROM read_parquet(?, file_row_number = true))`
			var b, n int64
			if err := db.QueryRow(q, path).Scan(&b, &n); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			back[tf.Name] += b
			rows[tf.Name] += n
		}
	}
	return back, rows
}

// TestExportTimeOrder exports recordings whose events are recorded out of
// time order (streams and perf CPUs interleaved; the demo fixture): every
// table's rows are written in time order but for a row later than the
// window (the interleaved recording's late open), which is written, and
// counted in a warning.
func TestExportTimeOrder(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, rec, 12)
	dir, m := export(t, rec, Options{})
	back, rows := backInTime(t, dir, m)
	if rows[TableExec]+rows[TableExit]+rows[TableOpen] != int64(info.Events) || rows[TableExit] == 0 {
		t.Fatalf("rows %v, want %d events", rows, info.Events)
	}
	for table, n := range back {
		if n != 0 {
			t.Errorf("table %s: %d rows back in time", table, n)
		}
	}
	fix := fixture(t, "demo")
	dir, m = export(t, fix, Options{})
	back, rows = backInTime(t, dir, m)
	for table, n := range back {
		if n != 0 {
			t.Errorf("demo fixture, table %s: %d of %d rows back in time", table, n, rows[table])
		}
	}
}

// TestExportLateRows: with a window narrower than the recording's
// disorder, the rows later than it are written where they arrive (none
// lost) and the export's warning counts them: exactly the rows back in
// time in the files.
func TestExportLateRows(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, rec, 12)
	dir, m := export(t, rec, Options{Order: replay.OrderOptions{Window: time.Millisecond, MaxItems: 3}})
	back, rows := backInTime(t, dir, m)
	if rows[TableExec]+rows[TableExit]+rows[TableOpen] != int64(info.Events) {
		t.Fatalf("rows %v, want %d events", rows, info.Events)
	}
	if back[TableExit] == 0 {
		t.Fatal("no exit row back in time with a 1 ms window: the test proves nothing")
	}
	re := regexp.MustCompile(`^table (\w+): (\d+) rows arrived after later rows were written \(more than the 1ms time-order window late\)`)
	warned := map[string]int64{}
	for _, w := range m.Warnings {
		if g := re.FindStringSubmatch(w); g != nil {
			n, _ := strconv.ParseInt(g[2], 10, 64)
			warned[g[1]] = n
		}
	}
	for table, n := range back {
		if warned[table] != n {
			t.Errorf("table %s: %d rows back in time, warned %d (warnings %q)", table, n, warned[table], m.Warnings)
		}
	}
}

// TestErrnoColumn: the open and syscalls tables name the error of every
// failed call (ret in -4095..-1) in errno, NULL otherwise (demo fixture,
// which has failed opens and syscalls).
func TestErrnoColumn(t *testing.T) {
	dir, _ := export(t, fixture(t, "demo"), Options{})
	db := openDB(t, dir)
	for _, table := range []string{TableOpen, TableSyscalls} {
		failed := one[int64](t, db, "SELECT count(*) FROM "+table+" WHERE ret BETWEEN -4095 AND -1")
		named := one[int64](t, db, "SELECT count(*) FROM "+table+" WHERE errno IS NOT NULL")
		wrong := one[int64](t, db, "SELECT count(*) FROM "+table+" WHERE (errno IS NULL) <> (ret NOT BETWEEN -4095 AND -1)")
		if failed == 0 || named != failed || wrong != 0 {
			t.Errorf("%s: %d failed calls, %d errno names, %d rows wrong", table, failed, named, wrong)
		}
		if n := one[int64](t, db, "SELECT count(*) FROM "+table+" WHERE ret = -2 AND errno <> 'ENOENT'"); n != 0 {
			t.Errorf("%s: %d rows of ret -2 not ENOENT", table, n)
		}
	}
	if n := one[int64](t, db, "SELECT count(*) FROM syscalls WHERE errno = 'ENOENT'"); n == 0 {
		t.Error("no ENOENT in the demo's syscalls")
	}
}
