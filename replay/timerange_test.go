package replay

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestTimeRangeDecodedEvents: a ring buffer batch is stamped when it was
// read, after its events happened, so its span overlaps a range that none
// of its events is in. The decoded handlers (what replay --from/--to
// prints) get only the events in [From, To), by their own time, in either
// order; a batch handler still gets the batch whole, as recorded. Before,
// ebpfrec replay --from +2s --to +2.001s printed 256 events of 54.696 s to
// 54.752 s for a range starting at 54.810 s.
func TestTimeRangeDecodedEvents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := replaytest.Meta()
	w, err := store.Create(dir, meta, store.WriterOptions{FlushInterval: time.Hour, Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return replaytest.Start.Add(d) }
	kt := func(d time.Duration) uint64 { return uint64(replaytest.Mono + int64(d)) }
	// Events at 1.00, 1.05 and 1.10 s, read at 1.20 s; then events at 2.0
	// and 2.1 s, read at 2.2 s.
	var evs []store.Event
	for i, d := range []time.Duration{1000, 1050, 1100} {
		evs = append(evs, store.Event{Raw: replaytest.ExecRaw(kt(d*time.Millisecond), uint32(100+i), 1, 0, "a", "/bin/a"), Timestamp: at(1200 * time.Millisecond), CPU: -1})
	}
	b2 := []store.Event{
		{Raw: replaytest.ExecRaw(kt(2000*time.Millisecond), 200, 1, 0, "b", "/bin/b"), Timestamp: at(2200 * time.Millisecond), CPU: -1},
		{Raw: replaytest.ExecRaw(kt(2100*time.Millisecond), 201, 1, 0, "b", "/bin/b"), Timestamp: at(2200 * time.Millisecond), CPU: -1},
	}
	for _, b := range []*store.Batch{{Stream: "exec", Kind: store.KindRingbuf, Events: evs}, {Stream: "exec", Kind: store.KindRingbuf, Events: b2}} {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		from, to time.Duration
		want     []uint32
	}{
		{1150 * time.Millisecond, 1250 * time.Millisecond, nil}, // overlaps the first batch's span, after its events
		{1040 * time.Millisecond, 1100 * time.Millisecond, []uint32{101}},
		{1000 * time.Millisecond, 2050 * time.Millisecond, []uint32{100, 101, 102, 200}},
		{1100 * time.Millisecond, 3000 * time.Millisecond, []uint32{102, 200, 201}},
	} {
		for _, ordered := range []bool{false, true} {
			r, err := Open(dir, Options{FromStart: c.from, ToStart: c.to})
			if err != nil {
				t.Fatal(err)
			}
			var got []uint32
			fn := func(d *Decoded) error {
				got = append(got, d.Event.PID())
				return nil
			}
			if ordered {
				r.HandleDecodedInOrder(OrderOptions{}, fn)
			} else {
				r.HandleDecoded(fn)
			}
			stats, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("[+%v, +%v) ordered %v: events of %v, want %v", c.from, c.to, ordered, got, c.want)
			}
			// The figures count what was delivered, not what was read.
			if stats.Events != uint64(len(c.want)) || stats.Streams["exec"] == nil && len(c.want) > 0 ||
				stats.Streams["exec"] != nil && stats.Streams["exec"].Events != uint64(len(c.want)) {
				t.Errorf("[+%v, +%v) ordered %v: stats count %d events delivered, want %d", c.from, c.to, ordered, stats.Events, len(c.want))
			}
		}
	}

	// A batch handler gets the batches whose span overlaps the range, as
	// before: the first one whole, and not the second, which the store
	// reads for decoded handlers (RangeSlack) when there are some.
	r, err := Open(dir, Options{FromStart: 1150 * time.Millisecond, ToStart: 1250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var batches, events, decoded int
	r.HandleDecoded(func(*Decoded) error { decoded++; return nil })
	r.HandleRingbuf("exec", func(_ context.Context, evs []bpf.RingbufEvent) error {
		batches++
		events += len(evs)
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if batches != 1 || events != 3 || decoded != 0 {
		t.Errorf("batch handler: %d batches, %d events (%d decoded); want the first batch whole (1, 3, 0)", batches, events, decoded)
	}
}
