package analyze

import (
	"slices"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestEveryTracerHasATable: every registered built-in tracer has its entry
// in builtins, which export and summary take every stream of it to (its
// table; the proc tracer's events make the processes table), and every
// entry is a registered tracer's, once; Tables lists the entries' tables
// in their order.
func TestEveryTracerHasATable(t *testing.T) {
	names := tracers.Names()
	if len(names) == 0 {
		t.Fatal("no tracer registered")
	}
	for _, name := range names {
		b := builtinOf(name)
		if b == nil {
			t.Errorf("tracer %s has no entry in builtins: its events would not reach a table of export nor the summary's counts", name)
			continue
		}
		if b.tableName() == "" && name != proc.Name {
			t.Errorf("tracer %s has no table", name)
		}
		tr, err := tracers.New(name, tracers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tr.Streams() {
			d := decoderOf(store.StreamInfo{Name: st.Name, Tracer: name, Kind: store.KindRingbuf, EventType: st.EventType})
			if d.dec != decBuiltin || d.builtin != b {
				t.Errorf("tracer %s, stream %s: decoded as %v by %v, want its entry", name, st.Name, d.dec, d.builtin)
			}
		}
	}
	var tables []string
	seen := map[string]bool{}
	for _, b := range builtins {
		if !slices.Contains(names, b.tracerName()) {
			t.Errorf("builtins has an entry of %s, which is not a registered tracer", b.tracerName())
		}
		if seen[b.tracerName()] {
			t.Errorf("builtins has two entries of %s", b.tracerName())
		}
		seen[b.tracerName()] = true
		if n := b.tableName(); n != "" {
			tables = append(tables, n)
		}
	}
	tables = append(tables, TableProcesses, TableRaw, TableLosses, TableRecording)
	if !slices.Equal(Tables, tables) {
		t.Errorf("Tables = %v, want %v", Tables, tables)
	}
}
