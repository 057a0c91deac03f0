package store

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestRingbufEvents: with ReaderOptions.RingbufEvents, ring buffer
// batches come in Batch.Ringbuf with the raw bytes and timestamps they
// have in Events without it (batches with one shared timestamp and with
// one per event), perf buffer batches are unchanged, and so are the
// errors on a damaged recording and the batches a time range selects.
func TestRingbufEvents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 256 << 10, Sync: SyncNever})
	check := func(what string, opts ReaderOptions) {
		for _, procs := range []int{1, 2} {
			plain, plainErrs := readWith(t, dir, procs, opts)
			opts.RingbufEvents = true
			ring, ringErrs := readWith(t, dir, procs, opts)
			opts.RingbufEvents = false
			if len(plain) != len(ring) || len(plainErrs) != len(ringErrs) || len(plain) == 0 {
				t.Fatalf("%s: %d batches %d errors, with RingbufEvents %d batches %d errors", what, len(plain), len(plainErrs), len(ring), len(ringErrs))
			}
			for i := range plainErrs {
				if plainErrs[i] != ringErrs[i] {
					t.Fatalf("%s: error %d: %q, with RingbufEvents %q", what, i, plainErrs[i], ringErrs[i])
				}
			}
			var ringBatches, perfBatches int
			for i, p := range plain {
				r := ring[i]
				if p.Kind != KindRingbuf {
					perfBatches++
					if r.Ringbuf != nil {
						t.Fatalf("%s: perf buffer batch %d has Ringbuf set", what, p.Seq)
					}
					batchesEqual(t, r, p)
					continue
				}
				ringBatches++
				if len(r.Events) != 0 || len(r.Ringbuf) != len(p.Events) {
					t.Fatalf("%s: batch %d: %d Events and %d Ringbuf events, want 0 and %d", what, p.Seq, len(r.Events), len(r.Ringbuf), len(p.Events))
				}
				for j := range r.Ringbuf {
					g, w := &r.Ringbuf[j], &p.Events[j]
					if !bytes.Equal(g.Raw, w.Raw) || !g.Timestamp.Equal(w.Timestamp) {
						t.Fatalf("%s: batch %d event %d: got %v %d bytes, want %v %d bytes", what, p.Seq, j, g.Timestamp, len(g.Raw), w.Timestamp, len(w.Raw))
					}
				}
				r.Ringbuf, r.Events = nil, p.Events
				batchesEqual(t, r, p)
			}
			if ringBatches == 0 || perfBatches == 0 {
				t.Fatalf("%s: %d ring and %d perf buffer batches", what, ringBatches, perfBatches)
			}
		}
	}
	check("intact", ReaderOptions{})
	check("time range", ReaderOptions{From: testBase.Add(500_500_000), To: testBase.Add(1_200_000_000)})

	flipBytes(t, dir, 7)
	check("damaged", ReaderOptions{})
}

// TestAppendRefusesRingbuf: a batch read with RingbufEvents is refused by
// Append with an error that says why, instead of being stored empty.
func TestAppendRefusesRingbuf(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "rec"), testMeta(), WriterOptions{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := &Batch{Stream: "exec", Kind: KindRingbuf, Ringbuf: []RingbufEvent{{Raw: []byte{1}}}}
	if err := w.Append(b); err == nil || !strings.Contains(err.Error(), "Ringbuf") {
		t.Fatalf("append of Ringbuf events: %v", err)
	}
}
