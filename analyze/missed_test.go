package analyze

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/store"
)

// TestLossesTableKernelMissed: the losses table carries kernel_missed (the
// runs of a stream's programs the kernel skipped) as increments and running
// totals, and the recording table lists the streams whose kernel_missed was
// not counted (0 there means unknown).
func TestLossesTableKernelMissed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	meta := store.Meta{RecordingID: "missed", Started: t0, Streams: []store.StreamInfo{
		{Name: "counted", Map: "a", Kind: store.KindRingbuf, KernelMissedCounted: true},
		{Name: "uncounted", Map: "b", Kind: store.KindRingbuf},
	}}
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i, missed := range []uint64{0, 4, 4, 11} {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		b := &store.Batch{Stream: "counted", Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte("e"), Timestamp: at, CPU: -1}},
			Loss: store.Loss{KernelMissed: missed}}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		if err := w.AppendLoss("uncounted", at, store.Loss{UserDropped: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AppendLoss("counted", t0.Add(5*time.Millisecond), store.Loss{KernelMissed: 12}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := export(t, dir, Options{})
	db := openDB(t, out)
	var rows int
	var sum, total uint64
	if err := db.QueryRow(`SELECT count(*), sum(kernel_missed), max(kernel_missed_total) FROM losses WHERE stream = 'counted'`).Scan(&rows, &sum, &total); err != nil {
		t.Fatal(err)
	}
	// Rows where the count rose: 4, 11, 12.
	if rows != 3 || sum != 12 || total != 12 {
		t.Fatalf("counted: %d rows, kernel_missed sums to %d, total %d; want 3, 12, 12", rows, sum, total)
	}
	if n := one[int](t, db, `SELECT count(*) FROM losses WHERE stream = 'uncounted' AND kernel_missed_total != 0`); n != 0 {
		t.Fatalf("uncounted: %d rows with kernel_missed", n)
	}
	if got := one[string](t, db, `SELECT array_to_string(kernel_missed_uncounted, ',') FROM recording`); got != "uncounted" {
		t.Fatalf("recording.kernel_missed_uncounted = %q, want uncounted", got)
	}
}
