package replay

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/replay/replaytest"
)

// delivered is one event as a handler got it.
type delivered struct {
	t    int64
	pid  uint32
	late bool
	seq  uint64
	idx  int
}

// replayDecoded replays dir through HandleDecoded (ordered: through
// HandleDecodedInOrder with opts) and returns the events in delivery order.
func replayDecoded(t *testing.T, dir string, ordered bool, opts OrderOptions) ([]delivered, Stats) {
	t.Helper()
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []delivered
	fn := func(d *Decoded) error {
		if d.Event == nil {
			t.Fatalf("batch %d event %d not decoded: %v", d.Seq, d.Index, d.Err)
		}
		got = append(got, delivered{t: d.Time.UnixNano(), pid: d.Event.PID(), late: d.Late, seq: d.Seq, idx: d.Index})
		return nil
	}
	if ordered {
		r.HandleDecodedInOrder(opts, fn)
	} else {
		r.HandleDecoded(fn)
	}
	st, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

// backwards counts the events delivered earlier in time than one before
// them.
func backwards(evs []delivered) int {
	n := 0
	var high int64
	for i, e := range evs {
		if i > 0 && e.t < high {
			n++
		}
		high = max(high, e.t)
	}
	return n
}

// TestTimeOrderMerge replays a recording whose streams and CPUs interleave
// out of time order: in time order every event but the one recorded later
// than the window comes in order; that one is delivered, marked late and
// counted. The recorded order is not in time order (else the test proves
// nothing), and is what HandleDecoded still delivers.
func TestTimeOrderMerge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, dir, 12)

	rec, _ := replayDecoded(t, dir, false, OrderOptions{})
	if len(rec) != info.Events {
		t.Fatalf("recorded order: %d events, want %d", len(rec), info.Events)
	}
	if n := backwards(rec); n < 12 {
		t.Fatalf("the recorded order goes back in time %d times only: the recording does not interleave", n)
	}
	for i := 1; i < len(rec); i++ {
		if a, b := rec[i-1], rec[i]; b.seq < a.seq || (b.seq == a.seq && b.idx != a.idx+1) {
			t.Fatalf("HandleDecoded: event %d is batch %d #%d after batch %d #%d: not the recorded order", i, b.seq, b.idx, a.seq, a.idx)
		}
	}

	got, st := replayDecoded(t, dir, true, OrderOptions{})
	if len(got) != info.Events {
		t.Fatalf("time order: %d events, want %d", len(got), info.Events)
	}
	seen := map[uint32]bool{}
	var last int64
	late := 0
	for i, e := range got {
		if seen[e.pid] {
			t.Fatalf("event of pid %d delivered twice", e.pid)
		}
		seen[e.pid] = true
		if e.late {
			late++
			if e.pid != info.LatePID || e.t >= last {
				t.Fatalf("event %d (pid %d, t %d) marked late; only pid %d, behind %d, should be", i, e.pid, e.t, info.LatePID, last)
			}
			continue
		}
		if e.pid == info.LatePID {
			t.Fatalf("the late event (pid %d) was not marked late", e.pid)
		}
		if e.t < last {
			t.Fatalf("event %d (pid %d) at %d after an event at %d: not in time order", i, e.pid, e.t, last)
		}
		last = e.t
	}
	if late != 1 || st.Order.Late != 1 || st.Order.Forced != 0 {
		t.Fatalf("late events delivered %d, Stats.Order %+v: want 1 late, none forced", late, st.Order)
	}
	if st.Order.MaxLate <= DefaultOrderWindow {
		t.Fatalf("MaxLate %v: the late event is more than the window (%v) late", st.Order.MaxLate, DefaultOrderWindow)
	}

	// A window wider than the lateness puts even that event in order.
	wide, st := replayDecoded(t, dir, true, OrderOptions{Window: 2 * time.Second})
	if backwards(wide) != 0 || st.Order.Late != 0 || len(wide) != info.Events {
		t.Fatalf("window 2s: %d of %d events out of order, Stats.Order %+v", backwards(wide), len(wide), st.Order)
	}
}

// TestTimeOrderMaxItems bounds the window by the number of events held:
// the earliest are delivered early (counted as forced), and what arrives
// behind them is delivered late and counted; every event is delivered
// once, and those not late in order.
func TestTimeOrderMaxItems(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, dir, 12)
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const maxItems = 4
	var got []delivered
	var ro *Reorder[orderItem]
	r.HandleDecodedInOrder(OrderOptions{MaxItems: maxItems}, func(d *Decoded) error {
		if ro == nil {
			ro = r.order.ro
		}
		if n := ro.Len(); n > maxItems {
			t.Fatalf("%d events held, MaxItems %d", n, maxItems)
		}
		got = append(got, delivered{t: d.Time.UnixNano(), pid: d.Event.PID(), late: d.Late})
		return nil
	})
	st, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != info.Events || st.Order.Forced == 0 || st.Order.Late == 0 {
		t.Fatalf("%d events of %d, Stats.Order %+v: want all, some forced and some late", len(got), info.Events, st.Order)
	}
	var last int64
	late := 0
	for _, e := range got {
		if e.late {
			late++
			continue
		}
		if e.t < last {
			t.Fatalf("pid %d out of order and not marked late", e.pid)
		}
		last = e.t
	}
	if uint64(late) != st.Order.Late {
		t.Fatalf("%d events marked late, Stats.Order.Late %d", late, st.Order.Late)
	}
}

// TestTimeOrderHandlerError: an error of the handler of a held event,
// delivered when the recording ends, is a *HandlerError of its batch.
func TestTimeOrderHandlerError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, dir, 3)
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	n := 0
	r.HandleDecodedInOrder(OrderOptions{}, func(d *Decoded) error {
		n++
		if n == info.Events {
			return boom
		}
		return nil
	})
	_, err = r.Run(context.Background())
	var he *HandlerError
	if !errors.As(err, &he) || !errors.Is(err, boom) || he.Seq == 0 || he.Stream == "" {
		t.Fatalf("Run: %v, want a *HandlerError naming the batch", err)
	}
}

// TestReorderTies: items of equal time keep their arrival order; Release
// passes on exactly those up to its time.
func TestReorderTies(t *testing.T) {
	var out []int
	o := NewReorder(OrderOptions{Window: 10}, func(v int, late bool) error {
		if late {
			v = -v
		}
		out = append(out, v)
		return nil
	})
	for i, tm := range []int64{5, 3, 5, 3, 4} {
		if err := o.Push(tm, i); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != 0 || o.Len() != 5 {
		t.Fatalf("delivered %v before the window passed", out)
	}
	if err := o.Release(4); err != nil {
		t.Fatal(err)
	}
	if err := o.Push(1, 9); err != nil { // behind what was passed on
		t.Fatal(err)
	}
	if err := o.Push(16, 5); err != nil { // passes on up to 6
		t.Fatal(err)
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []int{1, 3, 4, -9, 0, 2, 5}
	if len(out) != len(want) {
		t.Fatalf("got %v, want %v", out, want)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("got %v, want %v", out, want)
		}
	}
	if st := o.Stats(); st.Late != 1 || st.MaxLate != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzReorder pushes items of arbitrary times through windows and bounds
// of arbitrary sizes: every item comes out once; those not marked late in
// order; a late one behind what came out before it; never more than
// MaxItems held.
func FuzzReorder(f *testing.F) {
	f.Add([]byte{5, 3, 5, 3, 4, 1, 16}, uint8(10), uint8(4))
	f.Add([]byte{0, 255, 1, 254, 2, 253}, uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, times []byte, window, maxItems uint8) {
		type out struct {
			t    int64
			i    int
			late bool
		}
		var got []out
		var o *Reorder[int]
		ts := make([]int64, len(times))
		o = NewReorder(OrderOptions{Window: time.Duration(window) + 1, MaxItems: int(maxItems) + 1}, func(i int, late bool) error {
			got = append(got, out{ts[i], i, late})
			if o.Len() > int(maxItems)+1 {
				t.Fatalf("%d items held, MaxItems %d", o.Len(), int(maxItems)+1)
			}
			return nil
		})
		for i, b := range times {
			ts[i] = int64(b)
			if err := o.Push(ts[i], i); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Flush(); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(times) || o.Len() != 0 {
			t.Fatalf("%d items out of %d, %d held", len(got), len(times), o.Len())
		}
		seen := make([]bool, len(times))
		var last int64 = -1
		late := 0
		for _, g := range got {
			if seen[g.i] {
				t.Fatalf("item %d twice", g.i)
			}
			seen[g.i] = true
			if g.late {
				late++
				if g.t >= last {
					t.Fatalf("item %d (t %d) late but not behind %d", g.i, g.t, last)
				}
				continue
			}
			if g.t < last {
				t.Fatalf("item %d (t %d) after %d, not marked late", g.i, g.t, last)
			}
			last = g.t
		}
		if uint64(late) != o.Stats().Late {
			t.Fatalf("%d late, Stats %+v", late, o.Stats())
		}
	})
}

// TestTimeOrderHandlerErrorContinue: under Continue, handler errors of
// events delivered from the window at the end are counted and reported
// one by one, and every event is still delivered; under Stop the first
// ends the replay.
func TestTimeOrderHandlerErrorContinue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, dir, 3)
	for _, policy := range []Policy{Continue, Stop} {
		var reported []error
		r, err := Open(dir, Options{OnHandlerError: policy, Report: func(err error) { reported = append(reported, err) }})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		// The recording spans less than the window: every event comes from
		// the final flush; the last three fail.
		r.HandleDecodedInOrder(OrderOptions{}, func(d *Decoded) error {
			n++
			if n > info.Events-3 {
				return errors.New("boom")
			}
			return nil
		})
		st, err := r.Run(context.Background())
		var he *HandlerError
		switch policy {
		case Continue:
			if err != nil || n != info.Events || st.HandlerErrors != 3 || len(reported) != 3 || !errors.As(reported[2], &he) {
				t.Fatalf("Continue: Run %v, %d of %d events delivered, %d handler errors, reported %v", err, n, info.Events, st.HandlerErrors, reported)
			}
		case Stop:
			if !errors.As(err, &he) || n != info.Events-2 || st.HandlerErrors != 1 || len(reported) != 0 {
				t.Fatalf("Stop: Run %v, %d of %d events delivered, %d handler errors", err, n, info.Events, st.HandlerErrors)
			}
		}
	}
}
