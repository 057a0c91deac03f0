package store

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestStreamLayoutStored: a stream's layout is in every segment's metadata
// (readers of any segment see it), byte for byte; one longer than
// MaxLayoutSize is refused by Create.
func TestStreamLayoutStored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := testMeta()
	layout := bytes.Repeat([]byte{0xeb, 0x9f, 0, 1}, 1000)
	meta.Streams[0].Layout = layout
	w, err := Create(dir, meta, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4096)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		for j := range raw { // incompressible, so that segments fill
			raw[j] = byte(rnd.Uint32())
		}
		if err := w.Append(&Batch{Stream: "exec", Kind: KindRingbuf, Events: []Event{{Raw: raw}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 2 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	for _, s := range segs {
		db, err := openSegmentRO(s.path)
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			sm, err := readSegMeta(tx)
			if err != nil {
				return err
			}
			if !bytes.Equal(sm.meta.Streams[0].Layout, layout) || sm.meta.Streams[1].Layout != nil {
				t.Errorf("%s: layouts of %d and %d bytes", s.path, len(sm.meta.Streams[0].Layout), len(sm.meta.Streams[1].Layout))
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	meta.Streams[0].Layout = make([]byte, MaxLayoutSize+1)
	if _, err := Create(filepath.Join(t.TempDir(), "big"), meta, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "stream exec: layout of 1048577 bytes") {
		t.Fatalf("oversized layout: %v", err)
	}
}
