package analyze

import (
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestRoundTrip checks that the rows of every event table equal the events
// that the tracers' own Decode gives for the same recording, field by field
// (by json name), in order, with the time, stream, cpu and seq columns.
func TestRoundTrip(t *testing.T) {
	rec, _ := mixed(t)
	roundTrip(t, rec, []WriterPath{ParquetGo, ArrowParquet})
}

// TestRoundTripDemo does the same on the demo fixture (every tracer, real
// kernel events). Its exec events have an older layout that the tracer's
// Decode refuses: that table is checked in TestFixtureDemo.
func TestRoundTripDemo(t *testing.T) {
	roundTrip(t, fixture(t, "demo"), []WriterPath{ParquetGo})
}

func roundTrip(t *testing.T, rec string, paths []WriterPath) {
	// Decode the recording with the tracers' registry decoders.
	r, err := store.Open(rec, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meta := r.Meta()
	type decoded struct {
		fields map[string]any
		seq    uint64
		stream string
		cpu    any
		time   int64
	}
	want := map[string][]decoded{}
	builtins := map[string]tracers.Builtin{}
	skip := map[string]bool{}
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		si, _ := meta.Stream(b.Stream)
		if si.Tracer == "" {
			continue
		}
		tr := builtins[si.Tracer]
		if tr == nil {
			if tr, err = tracers.New(si.Tracer, tracers.Options{}); err != nil {
				t.Fatal(err)
			}
			builtins[si.Tracer] = tr
		}
		for _, e := range b.Events {
			ev, err := tr.Decode(tr.Streams()[0].Name, e.Raw)
			if err != nil {
				if !skip[si.Tracer] {
					t.Logf("%s: %v: table not compared", si.Tracer, err)
				}
				skip[si.Tracer] = true
				continue
			}
			var cpu any
			if e.CPU >= 0 {
				cpu = int32(e.CPU)
			}
			want[si.Tracer] = append(want[si.Tracer], decoded{tracers.FieldValues(ev), b.Seq, b.Stream, cpu, int64(ev.KernelTime()) + meta.MonoToWall})
		}
	}
	r.Close()

	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			out, _ := export(t, rec, Options{WriterPath: path})
			db := openDB(t, out)
			for _, table := range []string{TableExec, TableExit, TableOpen, TableTCP, TableSyscalls} {
				if skip[table] {
					continue
				}
				// File order is recording order (DuckDB keeps insertion order).
				res, err := Query(t.Context(), db, "SELECT * FROM "+table)
				if err != nil {
					t.Fatal(err)
				}
				evs := want[table]
				if len(res.Rows) != len(evs) {
					t.Fatalf("%s: %d rows, %d decoded events", table, len(res.Rows), len(evs))
				}
				for i, row := range res.Rows {
					got := map[string]any{}
					for j, c := range res.Columns {
						got[c] = row[j]
					}
					w := evs[i]
					for k, v := range w.fields {
						if l, ok := got[k].([]any); ok { // DuckDB lists
							var ss []string
							for _, x := range l {
								ss = append(ss, x.(string))
							}
							got[k] = ss
						}
						if !reflect.DeepEqual(got[k], v) {
							t.Fatalf("%s row %d: %s = %#v, decoded %#v", table, i, k, got[k], v)
						}
					}
					if got["seq"] != w.seq || got["stream"] != w.stream || !reflect.DeepEqual(got["cpu"], w.cpu) {
						t.Fatalf("%s row %d: seq %v stream %v cpu %v, want %v %v %v", table, i, got["seq"], got["stream"], got["cpu"], w.seq, w.stream, w.cpu)
					}
					if ts := fmt.Sprint(got["time"]); ts != fmt.Sprint(timeNs(w.time)) {
						t.Fatalf("%s row %d: time %s, want %s", table, i, ts, fmt.Sprint(timeNs(w.time)))
					}
					if len(got) != len(w.fields)+4 {
						t.Fatalf("%s: columns %v, event fields %v", table, res.Columns, w.fields)
					}
				}
			}
		})
	}
}
