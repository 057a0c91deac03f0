package analyze

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze/query"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all" // replay decodes with the registry
	"github.com/ebpfrec/ebpfrec/replay"
)

// TestRoundTrip checks that the rows of every event table equal the events
// that replay decodes (with the tracers' own Decode) from the same
// recording, field by field (by json name), in order, with the time, stream,
// cpu and seq columns; and the raw table the undecoded events.
func TestRoundTrip(t *testing.T) {
	rec, _ := mixed(t)
	roundTrip(t, rec, []writerPath{parquetGo, arrowParquet})
}

// TestRoundTripFixtures does the same on the demo fixture (every tracer,
// real kernel events) and the userobj fixture (raw events only).
func TestRoundTripFixtures(t *testing.T) {
	roundTrip(t, fixture(t, "demo"), []writerPath{parquetGo})
	roundTrip(t, fixture(t, "userobj"), []writerPath{parquetGo})
}

func roundTrip(t *testing.T, rec string, paths []writerPath) {
	// Decode the recording as replay does: every event through its stream's
	// built-in tracer's Decode, in recorded order.
	type decoded struct {
		fields map[string]any
		seq    uint64
		stream string
		cpu    any
		time   int64
	}
	want := map[string][]decoded{}
	var raw []decoded
	skip := map[string]bool{}
	rp, err := replay.Open(rec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mono := rp.Meta().MonoToWall
	rp.HandleDecoded(func(d *replay.Decoded) error {
		var cpu any
		if d.CPU >= 0 {
			cpu = int32(d.CPU)
		}
		if d.Event == nil {
			if d.Err != nil {
				// Replay could not decode what export is compared with:
				// the comparison would be incomplete.
				if !skip[d.Stream.Tracer] {
					t.Errorf("%s: replay cannot decode an event (%v): its table is not compared", d.Stream.Tracer, d.Err)
				}
				skip[d.Stream.Tracer] = true
				return nil
			}
			raw = append(raw, decoded{map[string]any{"bytes": bytes.Clone(d.Raw), "index": uint32(d.Index), "length": uint32(len(d.Raw))},
				d.Seq, d.Stream.Name, cpu, d.Timestamp.UnixNano()})
			return nil
		}
		ev := d.Event
		// The event's own cpu field is the row's cpu column where the
		// buffer gives none (tracers.EventCPU), compared below.
		fields := tracers.FieldValues(ev)
		delete(fields, "cpu")
		if c := tracers.EventCPU(ev, d.CPU); c >= 0 {
			cpu = int32(c)
		}
		want[ev.Tracer()] = append(want[ev.Tracer()], decoded{fields, d.Seq, d.Stream.Name, cpu, int64(ev.KernelTime()) + mono})
		return nil
	})
	if _, err := rp.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	want[TableRaw] = raw
	// Each table is written in time order (ties in recorded order): the
	// recording holds the events within the time-order window.
	for _, evs := range want {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].time < evs[j].time })
	}

	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			out, _ := export(t, rec, Options{writerPath: path})
			db := openDB(t, out)
			for _, table := range []string{TableExec, TableExit, TableOpen, TableTCP, TableSyscalls, TableRaw} {
				if skip[table] {
					continue
				}
				// File order is time order (DuckDB keeps insertion order).
				res, err := query.Query(t.Context(), db, "SELECT * FROM "+table)
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
					// time, stream, cpu, seq; and the resolved process columns.
					resolved := map[string]int{TableExec: 3, TableExit: 3, TableOpen: 4, TableTCP: 4, TableSyscalls: 5}[table]
					extra := map[bool]int{true: 5, false: 4}[table == TableRaw] + resolved
					if ret, ok := w.fields["ret"]; ok {
						// The errno column: the name of a negative ret, else NULL.
						extra++
						var want any
						if name := tracers.ErrnoName(reflect.ValueOf(ret).Int()); name != "" {
							want = name
						}
						if got["errno"] != want {
							t.Fatalf("%s row %d: errno %#v for ret %v, want %#v", table, i, got["errno"], ret, want)
						}
					}
					if len(got) != len(w.fields)+extra {
						t.Fatalf("%s: columns %v, event fields %v", table, res.Columns, w.fields)
					}
				}
			}
		})
	}
}
