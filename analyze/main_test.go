package analyze

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/analyze/query"
	"github.com/ebpfrec/ebpfrec/replay"
)

var shared struct {
	dir  string
	once sync.Once
	rec  string
	want *synth.Want
	err  error
}

// envHangExport makes the test binary a helper process (see
// startHangingExport): it exports the recording it names into the folder
// envHangOut names, and once every event is read, with rows written and no
// manifest yet, says "exporting" on stdout and waits to be killed.
const (
	envHangExport = "ANALYZE_TEST_HANG_EXPORT"
	envHangOut    = "ANALYZE_TEST_HANG_OUT"
)

func TestMain(m *testing.M) {
	if rec := os.Getenv(envHangExport); rec != "" {
		// A window of 1 ns passes rows on to the files as they are read
		// (the mixed recording spans less than the default window).
		_, err := Export(context.Background(), rec, os.Getenv(envHangOut), Options{Order: replay.OrderOptions{Window: 1}, Progress: func(p Progress) {
			if p.Events > 0 && p.Events == p.TotalEvents {
				fmt.Println("exporting")
				for {
					time.Sleep(time.Hour) // (a sleeping timer: no deadlock report)
				}
			}
		}})
		fmt.Fprintln(os.Stderr, "export returned:", err)
		os.Exit(3)
	}
	dir, err := os.MkdirTemp("", "analyze-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const mixedRounds = 50

// mixed returns the shared mixed recording (made once, never modified).
func mixed(t testing.TB) (string, *synth.Want) {
	t.Helper()
	shared.once.Do(func() {
		shared.rec = filepath.Join(shared.dir, "mixed")
		shared.want, shared.err = synth.Mixed(shared.rec, mixedRounds)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.rec, shared.want
}

func export(t testing.TB, rec string, opts Options) (string, *Manifest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	m, err := Export(context.Background(), rec, out, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out, m
}

func openDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, _, err := query.OpenDB(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// one returns the single value of a query.
func one[T any](t testing.TB, db *sql.DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// describe returns column name -> DuckDB type of a view.
func describe(t testing.TB, db *sql.DB, view string) (map[string]string, []string) {
	t.Helper()
	rows, err := db.Query("DESCRIBE " + view)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := map[string]string{}
	var order []string
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		name, typ := fmt.Sprint(vals[0]), fmt.Sprint(vals[1])
		types[name] = typ
		order = append(order, name)
	}
	return types, order
}

func timeNs(ns int64) time.Time { return time.Unix(0, ns).UTC() }
