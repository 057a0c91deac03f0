package replay

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/record"
)

// TestLiveRecordThenReplay records built-in tracers live (a ring buffer and
// a perf buffer tracer, and the syscalls tracer for volume) with the
// recorder's tee handler fingerprinting every batch as it is delivered,
// then replays the recording and compares the fingerprints batch by batch;
// the decoded replay shows the workload. Needs root and a BPF kernel.
func TestLiveRecordThenReplay(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	var fps bytes.Buffer
	rec, err := record.New(record.Options{Dir: dir, Fingerprints: &fps,
		Command: []string{"/bin/sh", "-c", "for i in 1 2 3 4 5; do /bin/true; done; /bin/sh -c 'exit 3'; :"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"exec", "exit", "syscalls"} {
		if err := rec.AddBuiltin(name); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	live := strings.Split(strings.TrimSpace(fps.String()), "\n")
	if len(live) < 2 {
		t.Fatalf("live run delivered %d batches", len(live))
	}
	compareFingerprints(t, replayFingerprints(t, dir), live)

	// Decoded through the tracers: the workload is there.
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var trues, code3 int
	r.HandleDecoded(func(d *Decoded) error {
		if d.Err != nil {
			t.Errorf("%s batch %d: %v", d.Stream.Name, d.Seq, d.Err)
			return nil
		}
		line := string(tracers.AppendLine(nil, d.Event))
		if strings.Contains(line, " exec: filename=/bin/true") {
			trues++
		}
		if strings.Contains(line, " exit: exit_code=3 ") {
			code3++
		}
		return nil
	})
	st, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if trues != 5 || code3 != 1 {
		t.Errorf("decoded replay: %d execs of /bin/true (want 5), %d exits with code 3 (want 1); %d events", trues, code3, st.Events)
	}
}
