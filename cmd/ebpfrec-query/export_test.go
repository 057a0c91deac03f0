package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
)

// TestExportArrow: `ebpfrec export --format arrow`, run as users run it
// (the lean ebpfrec, which writes no Arrow itself and runs
// `ebpfrec-query export` from its folder), writes an Arrow export that
// DuckDB reads with the rows of each table that DuckDB counts in the
// Parquet export of the same recording, values included. Without the
// companion it fails saying what to install, and writes nothing.
func TestExportArrow(t *testing.T) {
	demo := cmdtest.Fixture(t, "demo")
	dir := t.TempDir()
	arrowOut, pqOut := filepath.Join(dir, "arrow"), filepath.Join(dir, "parquet")
	stdout, stderr, code := runEbpfrec(t, "", nil, "export", demo, "--format", "arrow", "-o", arrowOut)
	if code != 0 || !strings.Contains(stdout, "(arrow)") || !strings.Contains(stdout, "exec 8") {
		t.Fatalf("export --format arrow: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "-o", pqOut, demo); code != 0 {
		t.Fatal(stderr)
	}
	m, err := manifest.Read(arrowOut)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != manifest.FormatArrow {
		t.Fatalf("format %s", m.Format)
	}
	db := arrowDB(t)
	// The number of rows and a digest of every value of each table, by
	// DuckDB, over the Arrow files and over the Parquet files.
	checked := 0
	for _, tb := range m.Tables {
		if len(tb.Files) != 1 || !strings.HasSuffix(tb.Files[0], ".arrow") {
			t.Errorf("table %s: files %v", tb.Name, tb.Files)
			continue
		}
		var n uint64
		if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM read_arrow_ipc(?)", filepath.Join(arrowOut, tb.Files[0])).Scan(&n); err != nil {
			t.Fatalf("table %s: %v", tb.Name, err)
		}
		out, stderr, code := runEbpfrec(t, "", nil, "query", "--format", "csv", pqOut, "SELECT count(*) FROM "+tb.Name)
		if code != 0 {
			t.Fatalf("count of %s in the Parquet export: %s", tb.Name, stderr)
		}
		if want := fmt.Sprintf("count_star()\n%d\n", n); out != want || n != tb.Rows {
			t.Errorf("table %s: DuckDB reads %d rows of Arrow, manifest %d, Parquet export %q", tb.Name, n, tb.Rows, out)
		}
		if n > 0 {
			checked++
		}
	}
	if checked < 5 {
		t.Errorf("only %d tables with rows", checked)
	}
	// Values: the exec table's, as text, in time order.
	var got string
	q := "SELECT string_agg(comm || ' ' || filename || ' ' || pid, ';' ORDER BY time, pid) FROM read_arrow_ipc(?)"
	if err := db.QueryRowContext(context.Background(), q, filepath.Join(arrowOut, "exec.arrow")).Scan(&got); err != nil {
		t.Fatal(err)
	}
	want, stderr, code := runEbpfrec(t, "", nil, "query", "--format", "csv", pqOut, "SELECT string_agg(comm || ' ' || filename || ' ' || pid, ';' ORDER BY time, pid) AS v FROM exec")
	if code != 0 || want != "v\n"+got+"\n" || !strings.Contains(got, "/tmp/ebpfrec-demo") {
		t.Errorf("exec values: Arrow %q, Parquet %q (%s)", got, want, stderr)
	}

	// No companion: an ebpfrec alone in its folder, nothing on PATH.
	alone := filepath.Join(t.TempDir(), "ebpfrec")
	if err := os.Link(filepath.Join(bins, "ebpfrec"), alone); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none")
	stdout, stderr, code = runEbpfrec(t, alone, nil, "export", "--format", "arrow", "-o", none, demo)
	for _, w := range []string{"export: Arrow is not written by ebpfrec", "companion program ebpfrec-query", "neither in " + filepath.Dir(alone), "make install", "go build ./cmd/ebpfrec-query"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("export --format arrow without a companion: stderr lacks %q: %s", w, stderr)
		}
	}
	if code != clireport.Failure || stdout != "" {
		t.Errorf("without a companion: exit %d, stdout %q", code, stdout)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("without a companion, %s: %v", none, err)
	}
	// Parquet needs no companion.
	if _, stderr, code := runEbpfrec(t, alone, nil, "export", "-q", "-o", none, demo); code != 0 {
		t.Errorf("Parquet export without a companion: exit %d: %s", code, stderr)
	}
}

// arrowDB returns a DuckDB with the table function read_arrow_ipc(PATH):
// the rows of an Arrow IPC file, each column as text. DuckDB has no Arrow
// IPC reader of its own in this build (that is a community extension,
// and duckdb-go's Arrow interface needs the duckdb_arrow build tag): the
// file is decoded by arrow-go, and DuckDB scans its rows.
func arrowDB(t *testing.T) *sql.Conn {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	varchar, err := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	if err != nil {
		t.Fatal(err)
	}
	err = duckdb.RegisterTableUDF(conn, "read_arrow_ipc", duckdb.RowTableFunction{
		Config: duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{varchar}},
		BindArguments: func(_ map[string]any, args ...any) (duckdb.RowTableSource, error) {
			return openArrowIPC(args[0].(string), varchar)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// arrowIPC is the rows of an Arrow IPC file for DuckDB.
type arrowIPC struct {
	cols []duckdb.ColumnInfo
	recs []arrow.RecordBatch
	rec  int // the record batch of the next row
	row  int // the next row in it
}

func openArrowIPC(path string, varchar duckdb.TypeInfo) (*arrowIPC, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	a := &arrowIPC{}
	for _, fd := range r.Schema().Fields() {
		a.cols = append(a.cols, duckdb.ColumnInfo{Name: fd.Name, T: varchar})
	}
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		if err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, i, err)
		}
		rec.Retain() // the reader releases its own at Close
		a.recs = append(a.recs, rec)
	}
	return a, nil
}

func (a *arrowIPC) ColumnInfos() []duckdb.ColumnInfo { return a.cols }

func (a *arrowIPC) Cardinality() *duckdb.CardinalityInfo { return nil }

func (a *arrowIPC) Init() {}

func (a *arrowIPC) FillRow(row duckdb.Row) (bool, error) {
	for a.rec < len(a.recs) && a.row == int(a.recs[a.rec].NumRows()) {
		a.recs[a.rec].Release()
		a.rec, a.row = a.rec+1, 0
	}
	if a.rec == len(a.recs) {
		return false, nil
	}
	rec := a.recs[a.rec]
	for i := range a.cols {
		var v driver.Value
		if col := rec.Column(i); !col.IsNull(a.row) {
			v = col.ValueStr(a.row)
		}
		if err := row.SetRowValue(i, v); err != nil {
			return false, err
		}
	}
	a.row++
	return true, nil
}
