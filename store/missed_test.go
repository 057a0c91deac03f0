package store

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKernelMissedRoundTrip: format 3 stores Loss.KernelMissed in batches
// and loss points (compressed or not), and the stream's
// KernelMissedCounted in the metadata; Verify and Info see the latest
// count; a record without misses is written as in format 2; a writer of
// format 2 refuses a count it cannot hold.
func TestKernelMissedRoundTrip(t *testing.T) {
	for _, uncompressed := range []bool{true, false} {
		dir := filepath.Join(t.TempDir(), "rec")
		meta := testMeta()
		meta.Streams[0].KernelMissedCounted = true
		w, err := Create(dir, meta, WriterOptions{Sync: SyncNever, Uncompressed: uncompressed})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		var want []*Batch
		var points []LossPoint
		for i := 0; i < 40; i++ {
			b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
			b.Loss.KernelMissed = uint64(i / 3) // 0 for the first three: no flag
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, cloneBatch(b))
			if i%8 == 0 {
				l := Loss{RingbufDropped: uint64(i), KernelMissed: uint64(i * 5)}
				if err := w.AppendLoss("exec", testBase.Add(time.Duration(i)*time.Millisecond), l); err != nil {
					t.Fatal(err)
				}
				points = append(points, LossPoint{Stream: "exec", Loss: l})
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var gotPoints []LossPoint
		got := readAll(t, dir, ReaderOptions{OnLoss: func(p LossPoint) { gotPoints = append(gotPoints, p) }})
		if len(got) != len(want) || len(gotPoints) != len(points) {
			t.Fatalf("read %d batches, %d loss points; want %d, %d", len(got), len(gotPoints), len(want), len(points))
		}
		for i := range want {
			batchesEqual(t, got[i], want[i])
		}
		for i := range points {
			if gotPoints[i].Loss != points[i].Loss {
				t.Fatalf("loss point %d: %+v, want %+v", i, gotPoints[i].Loss, points[i].Loss)
			}
		}
		rep, err := Verify(dir)
		if err != nil || !rep.OK() {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		sum, err := Info(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Meta.Streams[0].KernelMissedCounted || sum.Meta.Streams[1].KernelMissedCounted {
			t.Fatalf("KernelMissedCounted: %+v", sum.Meta.Streams)
		}
		for _, st := range sum.Streams {
			// The latest counters of each stream: batch 39 (exec) and 38 (sys).
			if wantMissed := map[string]uint64{"exec": 39 / 3, "sys": 38 / 3}[st.Name]; st.Loss.KernelMissed != wantMissed {
				t.Fatalf("info: stream %s: kernel_missed %d, want %d", st.Name, st.Loss.KernelMissed, wantMissed)
			}
		}
	}

	// A record without misses has no flagMissed: the bytes of format 2.
	b := &Batch{Stream: "exec", Kind: KindRingbuf, Events: []Event{{Raw: []byte("x"), CPU: -1}}, Loss: Loss{UserDropped: 2}}
	rec, _, _, err := appendBatchRecord(nil, nil, b, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if rec[9]&flagMissed != 0 {
		t.Fatal("flagMissed set without misses")
	}
	if lr := appendLossRecord(nil, &LossPoint{Loss: Loss{UserDropped: 2}}, 0); lr[9] != 0 {
		t.Fatalf("loss record flags %#x without misses", lr[9])
	}

	dir := filepath.Join(t.TempDir(), "rec2")
	w, err := Create(dir, testMeta(), WriterOptions{Sync: SyncNever, format: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b.Loss.KernelMissed = 1
	if err := w.Append(b); err == nil || !strings.Contains(err.Error(), "format 2 cannot hold kernel_missed") {
		t.Fatalf("format 2 writer took a batch with misses: %v", err)
	}
	if err := w.AppendLoss("exec", testBase, Loss{KernelMissed: 1}); err == nil {
		t.Fatal("format 2 writer took a loss point with misses")
	}
}
