package proctable

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/store"
)

func write(t *testing.T, streams []store.StreamInfo, batches ...*store.Batch) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, store.Meta{RecordingID: "t", Started: time.Now(), Streams: streams}, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Load reads every proc stream (by event type, whatever its name), counts
// the events that do not decode, and reads nothing else.
func TestLoad(t *testing.T) {
	procInfo := store.StreamInfo{Name: "procs", Tracer: proc.Name, Kind: store.KindRingbuf, EventType: proc.EventType}
	other := store.StreamInfo{Name: "other", Kind: store.KindRingbuf, EventType: proc.EventType + "/old"}
	ev := func(raw []byte) store.Event { return store.Event{Raw: raw, Timestamp: time.Now(), CPU: -1} }
	snap := proc.AppendRecord(nil, proc.KindSnapshot, &proc.Event{KtimeNs: 100, Pid: 7, Command: "init", StartNs: 1})
	dir := write(t, []store.StreamInfo{procInfo, other},
		&store.Batch{Stream: "procs", Kind: store.KindRingbuf, Events: []store.Event{ev(snap), ev([]byte{1, 2, 3})}},
		&store.Batch{Stream: "other", Kind: store.KindRingbuf, Events: []store.Event{
			ev(proc.AppendRecord(nil, proc.KindSnapshot, &proc.Event{KtimeNs: 100, Pid: 8, Command: "other", StartNs: 1}))}},
	)
	table, bad, err := Load(dir)
	if err != nil || bad != 1 {
		t.Fatalf("Load: %v, %d bad events (want 1)", err, bad)
	}
	if p := table.Resolve(7, 200); p == nil || p.Comm != "init" {
		t.Errorf("pid 7: %+v", p)
	}
	if p := table.Resolve(8, 200); p != nil || table.Len() != 1 {
		t.Errorf("a stream of another event type was read: %+v, %d lives", p, table.Len())
	}
	// A recording without a proc stream: an empty table.
	table, bad, err = Load(write(t, []store.StreamInfo{other}))
	if err != nil || bad != 0 || table.Len() != 0 {
		t.Errorf("no proc stream: %v, %d bad, %d lives", err, bad, table.Len())
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing recording loads")
	}
}
