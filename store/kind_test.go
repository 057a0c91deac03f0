package store

import (
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBatchOfAnotherKindReported: a batch whose kind is not the one its
// stream declares is reported as damage, naming stream and kinds, and not
// delivered (it used to reach replay, which dropped it without a word);
// Append refuses to write one.
func TestBatchOfAnotherKindReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 50, WriterOptions{})
	perf := 0
	for _, b := range want {
		if b.Kind == KindPerfbuf {
			perf++
		}
	}
	if perf == 0 || perf == len(want) {
		t.Fatalf("%d perf batches of %d: want both kinds", perf, len(want))
	}
	// Declare the perf stream a ring buffer.
	segs, _ := listSegments(dir)
	db, err := bolt.Open(segs[0].path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		var m Meta
		if err := json.Unmarshal(mb.Get(keyMeta), &m); err != nil {
			return err
		}
		for i := range m.Streams {
			m.Streams[i].Kind = KindRingbuf
		}
		j, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return mb.Put(keyMeta, j)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, reported := 0, 0
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !strings.Contains(err.Error(), "batch of kind perfbuf in stream \"sys\", which is declared ringbuf") {
				t.Errorf("unexpected error: %v", err)
			}
			reported++
			continue
		}
		if b.Kind != KindRingbuf {
			t.Errorf("batch %d of kind %s delivered", b.Seq, b.Kind)
		}
		got++
	}
	if got != len(want)-perf || reported != perf {
		t.Errorf("%d batches delivered, %d reported; want %d and %d", got, reported, len(want)-perf, perf)
	}

	w, err := Create(filepath.Join(t.TempDir(), "rec"), testMeta(), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Append(&Batch{Stream: "exec", Kind: KindPerfbuf, Events: []Event{{Raw: []byte{1}}}}); err == nil || !strings.Contains(err.Error(), "declared ringbuf") {
		t.Errorf("Append of a perf batch to a ring buffer stream: %v", err)
	}
}
