package record

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestRecordRetentionAccounting records with retention keeping two
// segments: the summary says what retention deleted, and what is kept
// plus what was deleted is every event recorded.
func TestRecordRetentionAccounting(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"bash", "-c", "for i in $(seq 300); do /bin/true; done"},
		CommandStdout: io.Discard, CommandStderr: io.Discard,
		Store: store.WriterOptions{FlushInterval: 10 * time.Millisecond, MaxSegmentBytes: 32 << 10, KeepSegments: 2, Uncompressed: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin("exec"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sum.Streams {
		if !s.HasEmitted || !s.Balanced() || s.Lost() != 0 {
			t.Errorf("stream %s: emitted %d (counted: %v), recorded %d, lost %d", s.Name, s.Emitted, s.HasEmitted, s.Recorded, s.Lost())
		}
	}
	if sum.Deleted == nil || sum.Deleted.Events == 0 {
		t.Fatalf("retention deleted nothing (%d events in %d segments): the test proves nothing", sum.Events(), sum.Segments)
	}
	if sum.Segments != 2 {
		t.Errorf("%d segments kept, want 2", sum.Segments)
	}
	info, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, r := *sum.Deleted, *info.Deleted
	if info.Events+d.Events != sum.Events() || d.Segments != r.Segments || d.LastSeq != r.LastSeq || d.Events != r.Events || !d.To.Equal(r.To) {
		t.Fatalf("%d events kept + %d deleted != %d recorded (deletion records: summary %+v, recording %+v)",
			info.Events, d.Events, sum.Events(), d, r)
	}
	t.Logf("%d events recorded, %d deleted in %d segments", sum.Events(), sum.Deleted.Events, sum.Deleted.Segments)
}
